package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"stoa.im/stoa/internal/adminsock"
)

// serverFlags are the -c FILE and --data DIR flags that say which server
// a command acts on; see userTarget.
type serverFlags struct {
	cfgPath, dataDir *string
}

// addServerFlags declares -c and --data on fs.
func addServerFlags(fs *flag.FlagSet) serverFlags {
	return serverFlags{
		cfgPath: fs.String("c", "", "`FILE`: the server's configuration"),
		dataDir: fs.String("data", "", "`DIR`: the data directory of a 'stoa dev' server"),
	}
}

// adminOutput says how runAdmin reports a response.
type adminOutput struct {
	// readOnly commands change nothing: when the server is not running,
	// the note says the database was read rather than changed.
	readOnly bool
	// msgStdout prints the message on standard output, as the command's
	// result; otherwise it goes to standard error, as a summary after the
	// lines of a listing.
	msgStdout bool
	// msgFirst prints the message before the lines rather than after them.
	msgFirst bool
	// trim removes the spaces around the message (and its note).
	trim bool
}

// runAdmin runs req on the server that sf names, through its admin
// socket or, when it is not running, directly on its store, and prints
// the response as out says: the lines on standard output, the message
// with the note about a stopped server where out puts it. A refusal
// becomes the error.
func runAdmin(c *call, sf serverFlags, req adminsock.Request, out adminOutput) error {
	t, err := userTarget(c, *sf.cfgPath, *sf.dataDir)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	resp, note, err := execute(ctx, c, t, req)
	if err != nil {
		return err
	}
	if out.readOnly && note != "" {
		note = " (server not running; read the database directly)"
	}
	if !resp.OK {
		return errors.New(resp.Error + note)
	}
	msg := resp.Message + note
	if out.trim {
		msg = strings.TrimSpace(msg)
	}
	w := c.stderr
	if out.msgStdout {
		w = c.stdout
	}
	if out.msgFirst {
		fmt.Fprintln(w, msg)
	}
	for _, l := range resp.Lines {
		fmt.Fprintln(c.stdout, l)
	}
	if !out.msgFirst {
		fmt.Fprintln(w, msg)
	}
	return nil
}
