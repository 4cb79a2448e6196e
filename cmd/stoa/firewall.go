package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"stoa.im/stoa/internal/adminsock"
	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/mod/firewall"
)

const firewallCheckHelp = "Compiles firewall rule files the way the server does, without running them, and prints \"ok\" with the number of rules per chain, " +
	"or every problem, one per line (FILE:LINE: problem), and exits with status 1. Give the files (shell patterns allowed), or -c FILE to check " +
	"the files of that configuration's [firewall] table. The language is described in docs/firewall.md."

const firewallReloadHelp = "Makes the running server read its firewall rule files again (as SIGHUP does, without reloading anything else) and prints " +
	"how many rules are in service; on errors the running rules stay and the errors are printed. It goes through the admin socket " +
	"(DATA_DIR/stoa.sock): give the server's configuration with -c FILE, or a `stoa dev` data directory with --data DIR."

func runFirewallCheck(c *call) error {
	fs := c.flags()
	cfgPath := fs.String("c", "", "`FILE`: check the rule files of this configuration")
	pos, err := c.parse(fs, 0, 1<<20)
	if err != nil {
		return err
	}
	paths := pos
	if *cfgPath != "" {
		if len(pos) > 0 {
			return usageError{"give rule files or -c FILE, not both"}
		}
		f, err := loadConfig(c, *cfgPath)
		if err != nil {
			return err
		}
		paths = firewall.ConfiguredFiles(config.Get[firewall.Config](f, firewall.Feature.Name))
		if len(paths) == 0 {
			fmt.Fprintf(c.stdout, "ok: %s has no firewall rule files ([firewall] files is empty)\n", *cfgPath)
			return nil
		}
	}
	if len(paths) == 0 {
		return usageError{"give the rule files to check, or -c FILE; usage: stoa " + c.cmd.name + " " + c.cmd.args}
	}
	res, err := firewall.Check(paths)
	if err != nil {
		for _, l := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(c.stderr, l)
		}
		return exitError{1}
	}
	fmt.Fprintf(c.stdout, "ok: %d rules in %d file(s) (%d list file(s)); local %d, remote %d, deliver %d\n",
		res.Rules, len(res.Files), res.Lists, res.Chains["local"], res.Chains["remote"], res.Chains["deliver"])
	return nil
}

func runFirewallReload(c *call) error {
	fs := c.flags()
	cfgPath := fs.String("c", "", "`FILE`: the server's configuration")
	dataDir := fs.String("data", "", "`DIR`: the data directory of a 'stoa dev' server")
	if _, err := c.parse(fs, 0, 0); err != nil {
		return err
	}
	t, err := userTarget(c, *cfgPath, *dataDir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	resp, err := adminsock.Call(ctx, t.socket, adminsock.Request{Cmd: "firewall.reload"})
	if errors.Is(err, adminsock.ErrNotRunning) {
		return errors.New("the server is not running; the rules are read when it starts (check them with 'stoa firewall check')")
	}
	if err != nil {
		return err
	}
	if !resp.OK {
		for _, l := range strings.Split(resp.Error, "\n") {
			fmt.Fprintln(c.stderr, l)
		}
		return exitError{1}
	}
	fmt.Fprintln(c.stdout, resp.Message)
	return nil
}
