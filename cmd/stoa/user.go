package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"stoa.im/stoa/internal/adminsock"
	"stoa.im/stoa/internal/app"
	"stoa.im/stoa/internal/config"
)

// target is where a user command acts: a socket, and the configuration
// to use when nothing listens there.
type target struct {
	socket string
	load   func() (*config.File, error)
}

func userTarget(c *call, cfgPath, dataDir string) (*target, error) {
	switch {
	case cfgPath != "" && dataDir != "":
		return nil, usageError{"give either -c FILE or --data DIR, not both"}
	case cfgPath != "":
		f, err := loadConfig(c, cfgPath)
		if err != nil {
			return nil, err
		}
		dir, err := filepath.Abs(config.Get[app.ServerConfig](f, "server").DataDir)
		if err != nil {
			return nil, err
		}
		return &target{socket: app.SocketPath(dir), load: func() (*config.File, error) { return f, nil }}, nil
	case dataDir != "":
		return &target{socket: app.SocketPath(dataDir), load: func() (*config.File, error) {
			p := app.DevConfigFile(dataDir)
			f, err := config.Load(p, app.Sections())
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("the server is not running and %s has no dev.toml (written by 'stoa dev'); start the server, or give its configuration with -c FILE", dataDir)
			}
			if err != nil {
				return nil, reportConfigError(c.stderr, err)
			}
			return f, nil
		}}, nil
	}
	return nil, usageError{"say which server: -c FILE (its configuration) or --data DIR (a 'stoa dev' data directory)"}
}

func runUser(cmd string) func(c *call) error {
	return func(c *call) error {
		fs := c.flags()
		cfgPath := fs.String("c", "", "`FILE`: the server's configuration")
		dataDir := fs.String("data", "", "`DIR`: the data directory of a 'stoa dev' server")
		withPassword := cmd == "user.add" || cmd == "user.passwd"
		var fromStdin *bool
		if withPassword {
			fromStdin = fs.Bool("password-stdin", false, "read the password from the first line of standard input")
		}
		minArgs := 1
		if cmd == "user.list" {
			minArgs = 0
		}
		pos, err := c.parse(fs, minArgs, 1)
		if err != nil {
			return err
		}
		t, err := userTarget(c, *cfgPath, *dataDir)
		if err != nil {
			return err
		}
		req := adminsock.Request{Cmd: cmd, Args: map[string]string{}}
		if cmd == "user.list" {
			if len(pos) == 1 {
				req.Args["domain"] = pos[0]
			}
		} else {
			req.Args["jid"] = pos[0]
		}
		if withPassword {
			pw, err := readPassword(c, pos[0], *fromStdin)
			if err != nil {
				return err
			}
			req.Args["password"] = pw
		}

		ctx, stop := signal.NotifyContext(c.ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		resp, note, err := execute(ctx, c, t, req)
		if err != nil {
			return err
		}
		if !resp.OK {
			return errors.New(resp.Error + note)
		}
		if cmd == "user.list" {
			for _, u := range resp.Users {
				fmt.Fprintln(c.stdout, u)
			}
			fmt.Fprintf(c.stderr, "%s%s\n", resp.Message, note)
			return nil
		}
		fmt.Fprintf(c.stdout, "%s%s\n", resp.Message, note)
		return nil
	}
}

// execute runs req through the admin socket, or on a server built over
// the store when no server runs; note then says so.
func execute(ctx context.Context, c *call, t *target, req adminsock.Request) (resp adminsock.Response, note string, err error) {
	resp, err = adminsock.Call(ctx, t.socket, req)
	if err == nil {
		return resp, "", nil
	}
	if !errors.Is(err, adminsock.ErrNotRunning) {
		return resp, "", err
	}
	f, err := t.load()
	if err != nil {
		return resp, "", err
	}
	log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, closeSrv, err := app.Offline(ctx, f, log, c.version)
	if err != nil {
		return resp, "", err
	}
	resp = adminsock.Exec(ctx, srv, req)
	if err := closeSrv(); err != nil {
		return resp, "", err
	}
	if req.Cmd == "user.list" {
		return resp, " (server not running; read the database directly)", nil
	}
	return resp, " (server not running; changed the database directly)", nil
}

// readPassword reads a new password: the first line of standard input
// with --password-stdin, else twice from the terminal without echo.
func readPassword(c *call, jid string, fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(c.stdin).ReadString('\n')
		if err != nil && line == "" {
			return "", fmt.Errorf("reading the password from standard input: %w (pipe it in, e.g. printf '%%s\\n' \"$PASSWORD\" | stoa ...)", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("the password read from standard input is empty")
		}
		return pw, nil
	}
	fd := int(c.stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", usageError{"standard input is not a terminal: pipe the password and add --password-stdin"}
	}
	fmt.Fprintf(c.stderr, "New password for %s: ", jid)
	a, err := term.ReadPassword(fd)
	fmt.Fprintln(c.stderr)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if len(a) == 0 {
		return "", errors.New("the password is empty; nothing changed")
	}
	fmt.Fprint(c.stderr, "Repeat it: ")
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(c.stderr)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if string(a) != string(b) {
		return "", errors.New("the passwords differ; nothing changed, try again")
	}
	return string(a), nil
}
