package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"stoa.im/stoa/internal/adminsock"
)

const mamPurgeHelp = "Deletes archived messages (XEP-0313) archived before DATE (2024-01-31 or 2024-01-31T12:00:00Z) or older than DUR (e.g. 90d), " +
	"of every account or, with --user, of one account; --user alone deletes that account's whole archive. " +
	"Expired messages are also removed continuously by the server ([mam] expire_after); this command is for one-off clean-ups. " +
	"It deletes in bounded batches, so live traffic goes on while it runs." + inviteTargetHelp

// runMamPurge is `stoa mam purge`.
func runMamPurge(c *call) error {
	fs := c.flags()
	cfgPath := fs.String("c", "", "`FILE`: the server's configuration")
	dataDir := fs.String("data", "", "`DIR`: the data directory of a 'stoa dev' server")
	before := fs.String("before", "", "`DATE`: delete messages archived before it")
	olderThan := fs.String("older-than", "", "`DURATION`: delete messages older than it, e.g. 90d")
	user := fs.String("user", "", "`JID`: only this account's archive")
	if _, err := c.parse(fs, 0, 0); err != nil {
		return err
	}
	if *before != "" && *olderThan != "" {
		return usageError{"give either --before or --older-than, not both"}
	}
	if *before == "" && *olderThan == "" && *user == "" {
		return usageError{"say what to purge: --before DATE, --older-than DURATION, or --user JID; run 'stoa mam purge --help'"}
	}
	t, err := userTarget(c, *cfgPath, *dataDir)
	if err != nil {
		return err
	}
	args := map[string]string{}
	for k, v := range map[string]string{"before": *before, "older_than": *olderThan, "user": *user} {
		if v != "" {
			args[k] = v
		}
	}
	ctx, stop := signal.NotifyContext(c.ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	resp, note, err := execute(ctx, c, t, adminsock.Request{Cmd: "mam.purge", Args: args})
	if err != nil {
		return err
	}
	if !resp.OK {
		return errors.New(resp.Error + note)
	}
	fmt.Fprintln(c.stdout, resp.Message+note)
	return nil
}
