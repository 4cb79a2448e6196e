package app

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
)

// secretSize is the length of the server secret.
const secretSize = 32

// loadSecret reads the node's secret, creating it (mode 0600) on first
// start. It keys values the server derives and must keep stable across
// restarts (e.g. the fake SCRAM salts answered for unknown users).
func loadSecret(path string, log *slog.Logger) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) != secretSize {
			return nil, fmt.Errorf("app: %s holds %d bytes, not %d; it is damaged: remove it to create a new one", path, len(b), secretSize)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("the server secret is readable by other users; run: chmod 600 "+path, "path", path, "mode", fi.Mode().Perm().String())
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("app: reading the server secret: %w", err)
	}
	b = make([]byte, secretSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("app: generating the server secret: %w", err)
	}
	// O_EXCL: two processes starting at once do not overwrite each other.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadSecret(path, log)
	}
	if err != nil {
		return nil, fmt.Errorf("app: creating the server secret: %w", err)
	}
	_, werr := f.Write(b)
	serr := f.Sync()
	if cerr := f.Close(); werr == nil && serr == nil {
		werr = cerr
	} else if werr == nil {
		werr = serr
	}
	if werr != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("app: writing the server secret: %w", werr)
	}
	log.Info("created the server secret", "path", path)
	return b, nil
}
