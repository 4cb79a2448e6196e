package adminsock

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Limits of one admin connection.
const (
	maxLine     = 1 << 20         // bytes in one request line
	idleTimeout = 5 * time.Minute // between requests
	dialTimeout = 2 * time.Second // probing a stale socket
)

// Server serves the admin socket.
type Server struct {
	path string
	ln   *net.UnixListener
	acc  Accounts
	log  *slog.Logger

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Listen creates the socket at path (mode 0600); nothing is served until
// Serve. A socket file left by a server that is gone is removed; if a
// server still answers there, Listen fails, so the socket also keeps two
// nodes off one data directory.
func Listen(path string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("adminsock: listening on %s: %w", path, err)
	}
	// Close removes the file; the directory (data_dir, mode 0700) keeps
	// others out during the instant before the chmod.
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("adminsock: %w", err)
	}
	return &Server{path: path, ln: ln, log: log.With("feature", "adminsock"), conns: map[net.Conn]struct{}{}}, nil
}

// removeStale removes a socket file nobody listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("adminsock: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("adminsock: %s exists and is not a socket; move it away", path)
	}
	c, err := net.DialTimeout("unix", path, dialTimeout)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("adminsock: another stoa is already running with this data directory (it answers on %s); stop it first", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("adminsock: checking %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("adminsock: removing the stale socket: %w", err)
	}
	return nil
}

// Listening reports whether a server answers on the socket at path.
func Listening(path string) bool {
	c, err := net.DialTimeout("unix", path, dialTimeout)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Serve runs the commands of the connections it accepts on acc, in a
// goroutine, until Close. Call it once.
func (s *Server) Serve(ctx context.Context, acc Accounts) {
	s.acc = acc
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					s.log.Error("accept failed; admin socket stopped", "err", err)
				}
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				_ = c.Close()
				return
			}
			s.conns[c] = struct{}{}
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				s.serveConn(ctx, c)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				_ = c.Close()
			}()
		}
	}()
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	enc := json.NewEncoder(c)
	for {
		// Under mu, so that Close's deadline is never overwritten.
		s.mu.Lock()
		closed := s.closed
		if !closed {
			_ = c.SetReadDeadline(time.Now().Add(idleTimeout))
		}
		s.mu.Unlock()
		if closed || !sc.Scan() {
			if errors.Is(sc.Err(), bufio.ErrTooLong) {
				_ = enc.Encode(Response{Error: fmt.Sprintf("request longer than %d bytes", maxLine)})
			}
			return
		}
		var req Request
		var resp Response
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			resp = Response{Error: "bad request: " + err.Error()}
		} else {
			// Arguments hold passwords: log the command only.
			s.log.Info("admin command", "cmd", req.Cmd)
			resp = Exec(ctx, s.acc, req)
		}
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := enc.Encode(resp); err != nil {
			return
		}
	}
}

// Close stops accepting, ends idle connections once their current command
// has been answered, waits for them, and removes the socket file.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	err := s.ln.Close() // removes the socket file
	for c := range s.conns {
		// Unblock reads waiting for the next request; a command already
		// running finishes and its answer is written.
		_ = c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	s.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("adminsock: %w", err)
	}
	return nil
}
