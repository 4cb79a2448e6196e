package main

import (
	"stoa.im/stoa/internal/adminsock"
)

const registerTargetHelp = " The command goes through the running server's admin socket (DATA_DIR/stoa.sock); when the server is not running " +
	"it opens the database itself and says so. Give the server's configuration with -c FILE, or a `stoa dev` data directory with --data DIR."

// registerCommands are the sign-up administration commands.
func registerCommands() []command {
	return []command{
		{name: "register log", args: "[--since DUR] [--ip IP] [--domain DOMAIN] (-c FILE | --data DIR)", short: "Show who signed up, when, from where, how and with which invitation.",
			help: "Prints the registration log, one sign-up per line (time, address, IP, method, invitation), for the last --since (default 24h, e.g. 7d), " +
				"optionally only from one IP or for one domain. Entries stay after the account is deleted, for clean-up." + registerTargetHelp,
			run: runRegister("register.log")},
		{name: "register pending", args: "(-c FILE | --data DIR)", short: "List new accounts waiting for approval.",
			help: "Lists the accounts registered in approval mode that an admin has not approved yet." + registerTargetHelp, run: runRegister("register.pending")},
		{name: "register approve", args: "JID (-c FILE | --data DIR)", short: "Approve a new account.",
			help: "Lifts the approval restriction of JID (what remains of [register.new_accounts] period still applies)." + registerTargetHelp,
			run:  runRegister("register.approve")},
		{name: "register tombstones", args: "[DOMAIN] (-c FILE | --data DIR)", short: "List names of deleted accounts that are not given out again.",
			help: "Lists the tombstones of DOMAIN, or of every hosted domain: the address, when it was deleted and how." + registerTargetHelp,
			run:  runRegister("register.tombstones")},
		{name: "register untombstone", args: "JID (-c FILE | --data DIR)", short: "Let the name of a deleted account be registered again.",
			help: "Removes the tombstone of JID, for example to restore an account deleted by mistake. Its look-alikes are free again too." + registerTargetHelp,
			run:  runRegister("register.untombstone")},
	}
}

func runRegister(cmd string) func(c *call) error {
	return func(c *call) error {
		fs := c.flags()
		sf := addServerFlags(fs)
		var since, ip, domain *string
		minArgs, maxArgs := 0, 0
		switch cmd {
		case "register.log":
			since = fs.String("since", "", "`DURATION` to look back, e.g. 24h or 7d (default 24h)")
			ip = fs.String("ip", "", "`IP`: only sign-ups from this address")
			domain = fs.String("domain", "", "`DOMAIN`: only sign-ups on this host")
		case "register.approve", "register.untombstone":
			minArgs, maxArgs = 1, 1
		case "register.tombstones":
			maxArgs = 1
		}
		pos, err := c.parse(fs, minArgs, maxArgs)
		if err != nil {
			return err
		}
		args := map[string]string{}
		switch cmd {
		case "register.log":
			for k, v := range map[string]*string{"since": since, "ip": ip, "domain": domain} {
				if *v != "" {
					args[k] = *v
				}
			}
		case "register.approve", "register.untombstone":
			args["jid"] = pos[0]
		case "register.tombstones":
			if len(pos) == 1 {
				args["domain"] = pos[0]
			}
		}
		return runAdmin(c, sf, adminsock.Request{Cmd: cmd, Args: args}, adminOutput{trim: true})
	}
}
