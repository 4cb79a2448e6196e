package main

import (
	"os"
	"strings"

	"stoa.im/stoa/internal/adminsock"
)

const abuseTargetHelp = " The command goes through the running server's admin socket (DATA_DIR/stoa.sock), so it takes effect at once; " +
	"when the server is not running it opens the database itself and says so. Give the server's configuration with -c FILE, " +
	"or a `stoa dev` data directory with --data DIR."

// abuseCommands are the account-state and report queue commands.
func abuseCommands() []command {
	return []command{
		{name: "account show", args: "JID (-c FILE | --data DIR)", short: "Show whether an account is active, restricted or suspended.",
			help: "Prints the state of the account JID: active, or restricted or suspended with since when, by whom, until when and why." + abuseTargetHelp,
			run:  runAbuse("account.show")},
		{name: "account list", args: "[DOMAIN] (-c FILE | --data DIR)", short: "List restricted and suspended accounts.",
			help: "Prints the accounts of DOMAIN, or of every hosted domain, that are restricted or suspended, one per line." + abuseTargetHelp,
			run:  runAbuse("account.list")},
		{name: "account restrict", args: "JID [--reason TEXT] [--expires DUR] (-c FILE | --data DIR)", short: "Restrict an account (stricter limits on strangers).",
			help: "Restricts the account JID: it may message and send contact requests to fewer people outside its roster per hour " +
				"([limits.unsolicited] restricted_*). With --expires (e.g. 7d) the restriction ends by itself." + abuseTargetHelp,
			run: runAbuse("account.restrict")},
		{name: "account suspend", args: "JID [--reason TEXT] [--expires DUR] (-c FILE | --data DIR)", short: "Suspend an account: end its sessions, refuse its logins.",
			help: "Suspends the account JID: its sessions end at once and its logins are refused with a text that gives --reason. " +
				"With --expires (e.g. 24h) the suspension ends by itself. Nothing is deleted; 'stoa account unsuspend' undoes it." + abuseTargetHelp,
			run: runAbuse("account.suspend")},
		{name: "account unsuspend", args: "JID (-c FILE | --data DIR)", short: "Make a suspended or restricted account active again.",
			help: "Lifts a suspension or restriction of the account JID." + abuseTargetHelp, run: runAbuse("account.unsuspend")},
		{name: "reports list", args: "[--state open|resolved|all] [--offender JID] [--limit N] (-c FILE | --data DIR)", short: "List abuse reports.",
			help: "Lists the abuse reports (XEP-0377 reports users sent with a block, firewall reports), newest first, one per line: " +
				"number, time, reporter, offender, reason and the start of the text. Open reports by default." + abuseTargetHelp,
			run: runAbuse("reports.list")},
		{name: "reports show", args: "ID (-c FILE | --data DIR)", short: "Show one abuse report in full.",
			help: "Prints everything about report ID: reporter, offender, reason, text, the reported messages' archive ids, evidence, forwarding and resolution." + abuseTargetHelp,
			run:  runAbuse("reports.show")},
		{name: "reports resolve", args: "ID [--note TEXT] (-c FILE | --data DIR)", short: "Mark an abuse report resolved.",
			help: "Marks report ID resolved, with --note saying what was done (e.g. \"suspended the account\")." + abuseTargetHelp,
			run:  runAbuse("reports.resolve")},
	}
}

// operator names who runs a command, for the "by" of account states.
func operator() string {
	if u := os.Getenv("SUDO_USER"); u != "" {
		return "cli (" + u + ")"
	}
	if u := os.Getenv("USER"); u != "" {
		return "cli (" + u + ")"
	}
	return "cli"
}

func runAbuse(cmd string) func(c *call) error {
	return func(c *call) error {
		fs := c.flags()
		sf := addServerFlags(fs)
		flags := map[string]*string{}
		minArgs, maxArgs := 1, 1
		switch cmd {
		case "account.restrict", "account.suspend":
			flags["reason"] = fs.String("reason", "", "`TEXT`: why (a suspended user sees it when logging in)")
			flags["expires"] = fs.String("expires", "", "`DURATION` after which the state ends by itself, e.g. 24h or 7d")
		case "account.list":
			minArgs = 0
		case "reports.list":
			minArgs, maxArgs = 0, 0
			flags["state"] = fs.String("state", "", "`STATE`: open (default), resolved or all")
			flags["offender"] = fs.String("offender", "", "`JID`: only reports about this address")
			flags["limit"] = fs.String("limit", "", "`N`: at most N reports (default 100)")
		case "reports.resolve":
			flags["note"] = fs.String("note", "", "`TEXT`: what was done")
		}
		pos, err := c.parse(fs, minArgs, maxArgs)
		if err != nil {
			return err
		}
		args := map[string]string{}
		for k, v := range flags {
			if *v != "" {
				args[k] = *v
			}
		}
		switch {
		case cmd == "account.list":
			if len(pos) == 1 {
				args["domain"] = pos[0]
			}
		case strings.HasPrefix(cmd, "account."):
			args["jid"] = pos[0]
			if cmd != "account.show" {
				args["by"] = operator()
			}
		case cmd == "reports.show":
			args["id"] = pos[0]
		case cmd == "reports.resolve":
			args["id"] = pos[0]
			args["by"] = operator()
		}
		// Listings print their lines on standard output and a summary on
		// standard error; the other commands print their message first.
		list := cmd == "account.list" || cmd == "reports.list"
		return runAdmin(c, sf, adminsock.Request{Cmd: cmd, Args: args}, adminOutput{
			readOnly:  list || cmd == "account.show" || cmd == "reports.show",
			msgStdout: !list,
			msgFirst:  !list,
		})
	}
}
