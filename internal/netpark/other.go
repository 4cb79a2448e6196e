//go:build !linux

package netpark

import "errors"

const supported = false

type pollerSys struct{}

var errUnsupported = errors.New("netpark: not supported on this system")

func (*pollerSys) open() error                { return errUnsupported }
func (*pollerSys) register(int, uint64) error { return errUnsupported }
func (*pollerSys) unregister(int)             {}
func (*pollerSys) run(func(uint64)) error     { return errUnsupported }
func (*pollerSys) close() error               { return nil }
