package main

import (
	"strconv"

	"stoa.im/stoa/internal/adminsock"
)

const inviteTargetHelp = " The command goes through the running server's admin socket (DATA_DIR/stoa.sock); when the server is not running " +
	"it opens the database itself and says so. Give the server's configuration with -c FILE, or a `stoa dev` data directory with --data DIR."

func inviteCreateHelp() string {
	return "Creates an invitation and prints its web page (when [http] is on) and its xmpp: link, one per line on standard output. " +
		"Without options it is an account invitation: whoever opens it may create one account on the host and choose the name. " +
		"--user NAME reserves that name for the invitee. --contact JID makes a contact invitation of that account: the invitee may sign up " +
		"and becomes its contact (or, with an account elsewhere, just its contact). --reset JID makes a password-reset link for that account " +
		"(it needs the web listener). The link expires after --expires (default: [invite] expiry, or reset_expiry for reset links)." + inviteTargetHelp
}

func runInvite(cmd string) func(c *call) error {
	return func(c *call) error {
		fs := c.flags()
		sf := addServerFlags(fs)
		args := map[string]string{}
		var minArgs, maxArgs int
		var user, contact, reset, expires, host, note *string
		var uses *int
		switch cmd {
		case "invite.create":
			user = fs.String("user", "", "`NAME`: reserve this username for the invitee")
			contact = fs.String("contact", "", "`JID`: a contact invitation of this account")
			reset = fs.String("reset", "", "`JID`: a password-reset link for this account")
			expires = fs.String("expires", "", "`DURATION` the link stays valid, e.g. 12h or 7d")
			uses = fs.Int("uses", 0, "`N`: accounts one account invitation may create (default 1)")
			host = fs.String("host", "", "`DOMAIN` of the account invitation (needed when the server has several)")
			note = fs.String("note", "", "`TEXT` to remember the invitation by (shown by 'stoa invite list')")
		case "invite.list":
			maxArgs = 1
		case "invite.revoke":
			minArgs, maxArgs = 1, 1
		}
		pos, err := c.parse(fs, minArgs, maxArgs)
		if err != nil {
			return err
		}
		switch cmd {
		case "invite.create":
			for k, v := range map[string]*string{"user": user, "contact": contact, "reset": reset, "expires": expires, "host": host, "note": note} {
				if *v != "" {
					args[k] = *v
				}
			}
			if *uses != 0 {
				args["uses"] = strconv.Itoa(*uses)
			}
		case "invite.list":
			if len(pos) == 1 {
				args["host"] = pos[0]
			}
		case "invite.revoke":
			args["token"] = pos[0]
		}
		// Revoking prints its result on standard output; creating and
		// listing print a summary on standard error after the lines.
		revoke := cmd == "invite.revoke"
		return runAdmin(c, sf, adminsock.Request{Cmd: cmd, Args: args}, adminOutput{
			readOnly:  cmd == "invite.list",
			msgStdout: revoke,
			trim:      !revoke,
		})
	}
}
