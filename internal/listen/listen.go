// Package listen holds what stoa's listeners share: the accept loop, which
// backs off instead of spinning when the process runs out of file
// descriptors, and stops cleanly when its listener closes.
package listen

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"syscall"
	"time"
)

// Back-off between failed accepts: it starts at minBackoff and doubles up
// to maxBackoff while the errors last.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Serve accepts connections on l until ctx ends or l is closed, and calls
// handle with each (on the accepting goroutine: handle starts the
// connection's goroutine and returns). When accepting fails for want of
// file descriptors (EMFILE, ENFILE) or with another temporary error, it
// waits and tries again, logging once per episode; any other error stops
// the loop and is logged.
func Serve(ctx context.Context, l net.Listener, log *slog.Logger, handle func(net.Conn)) {
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err == nil {
			delay = 0
			handle(c)
			continue
		}
		if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
			return
		}
		if !retryable(err) {
			log.Error("accept failed; listener stopped", "addr", l.Addr().String(), "err", err)
			return
		}
		if delay == 0 {
			delay = minBackoff
			log.Warn("accept failed; backing off (raise the file descriptor limit?)", "addr", l.Addr().String(), "err", err)
		} else if delay *= 2; delay > maxBackoff {
			delay = maxBackoff
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// retryable reports whether an accept error may pass: out of descriptors,
// or an error that says it is temporary (a connection reset before it was
// accepted, say).
func retryable(err error) bool {
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		return true
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}
