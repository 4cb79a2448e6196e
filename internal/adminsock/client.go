package adminsock

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"syscall"
)

// Call sends one request to the server listening on socketPath and returns
// its response. When nobody listens (no socket file, or a stale one), the
// error matches ErrNotRunning. A failed command is a Response with OK
// false, not an error.
func Call(ctx context.Context, socketPath string, req Request) (Response, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return Response{}, fmt.Errorf("%w (nothing listens on %s)", ErrNotRunning, socketPath)
		}
		if errors.Is(err, fs.ErrPermission) {
			return Response{}, fmt.Errorf("adminsock: %s: permission denied; run the command as the user the server runs as (e.g. sudo -u stoa)", socketPath)
		}
		return Response{}, fmt.Errorf("adminsock: connecting to %s: %w", socketPath, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return Response{}, callErr(ctx, err)
	}
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 4096), 64<<20)
	if !sc.Scan() {
		err := sc.Err()
		if err == nil {
			err = errors.New("the server closed the connection without answering")
		}
		return Response{}, callErr(ctx, err)
	}
	var resp Response
	if err := json.Unmarshal(sc.Bytes(), &resp); err != nil {
		return Response{}, fmt.Errorf("adminsock: bad response: %w", err)
	}
	return resp, nil
}

func callErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("adminsock: %w", ctx.Err())
	}
	return fmt.Errorf("adminsock: %w", err)
}
