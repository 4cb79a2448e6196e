//go:build !unix

package app

import "log/slog"

func raiseFileLimit(*slog.Logger) {}
