// Command stoa is the stoa XMPP server: it runs the server (serve, dev)
// and administers it (user, check, config, features). Run `stoa --help`
// for the list of commands and `stoa COMMAND --help` for one.
//
// Exit codes: 0 success, 1 failure, 2 usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
// Otherwise the module version or VCS revision from the build info is used.
var version string

// command is one entry of the command table.
type command struct {
	name  string // words, e.g. "user add"
	args  string // synopsis after the name
	short string // one line for the command list
	help  string // paragraphs for `stoa NAME --help`
	run   func(c *call) error
}

// commands is the command table, in the order `stoa --help` lists it.
// Command groups kept in their own files (sign-up administration, account
// states and reports) are spliced in where they belong.
func commands() []command {
	return slices.Concat([]command{
		{name: "dev", args: "[--data DIR] [--domain DOMAIN] [--listen IP]", short: "Run a development server on this machine with no configuration.",
			help: "Runs a complete server for DOMAIN (default localhost) with its data, a generated CA and a server certificate in DIR " +
				"(default ./stoa-dev), listening on IP (default 127.0.0.1): port 5222 (STARTTLS), 5223 (direct TLS) and 5280 (metrics). " +
				"It prints the CA to trust and how to add users and connect. The configuration it runs with is written to DIR/dev.toml.",
			run: runDev},
		{name: "serve", args: "-c FILE", short: "Run the server.",
			help: "Runs the server with the configuration FILE until SIGTERM or SIGINT, then shuts down gracefully. " +
				"SIGHUP re-reads the certificates and the configuration (options marked reloadable take effect; the log says which changes need a restart).",
			run: runServe},
		{name: "user add", args: "JID (-c FILE | --data DIR) [--password-stdin]", short: "Create an account.",
			help: userHelp("Creates the account JID.", true), run: runUser("user.add")},
		{name: "user passwd", args: "JID (-c FILE | --data DIR) [--password-stdin]", short: "Set an account's password.",
			help: userHelp("Sets the password of the account JID.", true), run: runUser("user.passwd")},
		{name: "user del", args: "JID (-c FILE | --data DIR)", short: "Delete an account and its data.",
			help: userHelp("Deletes the account JID and everything stored for it; its sessions end at once.", false), run: runUser("user.del")},
		{name: "user list", args: "[DOMAIN] (-c FILE | --data DIR)", short: "List accounts.",
			help: userHelp("Lists the accounts of DOMAIN, or of every hosted domain, one per line.", false), run: runUser("user.list")},
		{name: "invite create", args: "[--user NAME | --contact JID | --reset JID] [--expires DUR] [--uses N] [--host DOMAIN] (-c FILE | --data DIR)",
			short: "Create an invitation or a password-reset link.", help: inviteCreateHelp(), run: runInvite("invite.create")},
		{name: "invite list", args: "[DOMAIN] (-c FILE | --data DIR)", short: "List valid invitations.",
			help: "Lists the valid invitations of DOMAIN, or of every hosted domain: token, kind, host, reserved address, creator, uses, expiry." + inviteTargetHelp,
			run:  runInvite("invite.list")},
		{name: "invite revoke", args: "TOKEN (-c FILE | --data DIR)", short: "Delete an invitation.",
			help: "Deletes the invitation TOKEN so that nobody can use it any more." + inviteTargetHelp, run: runInvite("invite.revoke")},
	}, registerCommands(), abuseCommands(), []command{
		{name: "mam purge", args: "[--before DATE | --older-than DUR] [--user JID] (-c FILE | --data DIR)", short: "Delete old archived messages.",
			help: mamPurgeHelp, run: runMamPurge},
		{name: "firewall check", args: "[FILE...] [-c FILE]", short: "Check firewall rule files.", help: firewallCheckHelp, run: runFirewallCheck},
		{name: "firewall reload", args: "(-c FILE | --data DIR)", short: "Make the running server reload its firewall rules.", help: firewallReloadHelp, run: runFirewallReload},
		{name: "check config", args: "-c FILE", short: "Check a configuration file.",
			help: "Loads FILE with every option of this version and prints \"ok\", or one line per problem (file:line: key: problem) and exits with status 1.",
			run:  runCheckConfig},
		{name: "check dns", args: "-c FILE", short: "Check the SRV records and addresses of each hosted domain.",
			help: "Looks up _xmpp-server, _xmpps-server, _xmpp-client and _xmpps-client SRV records of every host in FILE (RFC 6120, XEP-0368) " +
				"and the addresses they point to, and compares the ports with the configured listeners. Prints one line per record " +
				"(host: ok|warning|error: what), and exits with status 1 if anything would keep clients or other servers from connecting.",
			run: runCheckDNS},
		{name: "check certs", args: "-c FILE", short: "Check the certificate of each hosted domain.",
			help: "Checks the certificate served for every host in FILE as other servers will: the chain up to a trusted root (the system's " +
				"plus [s2s] ca_file), the names (RFC 6125), the validity period and the key usages. Prints one line per finding " +
				"(host: ok|warning|error: what), and exits with status 1 on an error.",
			run: runCheckCerts},
		{name: "config describe", args: "", short: "Print the default configuration, commented.",
			help: "Prints a complete configuration file with every option at its default value and its documentation in comments. " +
				"Start from it, set server.hosts and [[tls.certificates]], and delete what you do not change.",
			run: runConfigDescribe},
		{name: "config docs", args: "", short: "Print the configuration reference (Markdown).",
			help: "Prints the configuration reference in Markdown, as in docs/configuration.md.", run: runConfigDocs},
		{name: "features", args: "[--hooks] [--markdown]", short: "List the features, their XEPs and support status.",
			help: "Lists the server's features in registry order with the specifications they implement and how completely. " +
				"With --hooks, also prints each pipeline stage's hooks in execution order.",
			run: runFeatures},
		{name: "version", args: "", short: "Print the version.", help: "Prints stoa's version and the Go version it was built with.", run: runVersion},
	})
}

func userHelp(what string, password bool) string {
	s := what + " The command goes through the running server's admin socket (DATA_DIR/stoa.sock), so changes take effect at once. " +
		"When the server is not running it opens the database itself and runs the same server code, and says so. " +
		"Give the server's configuration with -c FILE, or a `stoa dev` data directory with --data DIR."
	if password {
		s += " The password is read twice from the terminal without echo; with --password-stdin, the first line of standard input is used instead (for scripts)."
	}
	return s
}

// Errors that choose the exit status.
type usageError struct{ msg string } // exit 2

func (e usageError) Error() string { return e.msg }

type exitError struct{ code int } // already reported; exit with code

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// call is one invocation of a command.
type call struct {
	cmd     *command
	args    []string
	stdin   *os.File
	stdout  io.Writer
	stderr  io.Writer
	ctx     context.Context
	version string
}

// flags returns the command's flag set; parse it with c.parse.
func (c *call) flags() *flag.FlagSet {
	fs := flag.NewFlagSet("stoa "+c.cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// errHelp is returned by parse after printing the help.
var errHelp = errors.New("help shown")

// parse parses flags anywhere among the arguments (std flag stops at the
// first positional one) and checks the count of positional arguments.
func (c *call) parse(fs *flag.FlagSet, minArgs, maxArgs int) ([]string, error) {
	var pos []string
	args := c.args
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.printHelp(c.stdout, fs)
				return nil, errHelp
			}
			return nil, usageError{fmt.Sprintf("%v; run 'stoa %s --help'", err, c.cmd.name)}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) < minArgs || len(pos) > maxArgs {
		want := fmt.Sprintf("%d arguments", minArgs)
		switch {
		case minArgs == 0 && maxArgs == 0:
			want = "no arguments"
		case minArgs == maxArgs && minArgs == 1:
			want = "one argument"
		case minArgs == 0 && maxArgs == 1:
			want = "at most one argument"
		}
		return nil, usageError{fmt.Sprintf("expected %s, got %d; usage: stoa %s %s", want, len(pos), c.cmd.name, c.cmd.args)}
	}
	return pos, nil
}

func (c *call) printHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: stoa %s %s\n\n", c.cmd.name, c.cmd.args)
	for _, l := range wrap(c.cmd.help, 78) {
		fmt.Fprintln(w, l)
	}
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintln(w, "\nFlags:")
			first = false
		}
		arg, usage := flag.UnquoteUsage(f)
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		line := "  " + dash + f.Name
		if arg != "" {
			line += " " + arg
		}
		if f.DefValue != "" && f.DefValue != "false" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, usage)
	})
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit status.
func run(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 {
		printUsage(stderr, cmds, "")
		return 2
	}
	if isHelp(args[0]) || args[0] == "help" {
		printUsage(stdout, cmds, "")
		return 0
	}
	cmd, rest := find(cmds, args)
	if cmd == nil {
		// A group such as "user" alone or with --help.
		group := args[0]
		if slices.ContainsFunc(cmds, func(c command) bool { return strings.HasPrefix(c.name, group+" ") }) {
			if len(args) > 1 && isHelp(args[1]) {
				printUsage(stdout, cmds, group)
				return 0
			}
			if len(args) > 1 {
				fmt.Fprintf(stderr, "stoa: unknown command \"%s %s\"; run 'stoa %s --help'\n", group, args[1], group)
			} else {
				printUsage(stderr, cmds, group)
			}
			return 2
		}
		fmt.Fprintf(stderr, "stoa: unknown command %q; run 'stoa --help'\n", args[0])
		return 2
	}
	c := &call{cmd: cmd, args: rest, stdin: stdin, stdout: stdout, stderr: stderr, ctx: context.Background(), version: versionString()}
	err := cmd.run(c)
	var ue usageError
	var ee exitError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "stoa %s: %s\n", cmd.name, ue.msg)
		return 2
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintf(stderr, "stoa %s: %s\n", cmd.name, oneLine(err.Error()))
		return 1
	}
}

func isHelp(s string) bool { return s == "-h" || s == "-help" || s == "--help" }

// find returns the command whose words start args, and the rest.
func find(cmds []command, args []string) (*command, []string) {
	for i := range cmds {
		words := strings.Fields(cmds[i].name)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			return &cmds[i], args[len(words):]
		}
	}
	return nil, nil
}

func printUsage(w io.Writer, cmds []command, group string) {
	if group == "" {
		fmt.Fprint(w, "stoa is an XMPP server.\n\nUsage: stoa COMMAND [arguments]\n\nCommands:\n")
	} else {
		fmt.Fprintf(w, "Usage: stoa %s COMMAND [arguments]\n\nCommands:\n", group)
	}
	width := 0
	for _, c := range cmds {
		width = max(width, len(c.name))
	}
	for _, c := range cmds {
		if group != "" && !strings.HasPrefix(c.name, group+" ") {
			continue
		}
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.short)
	}
	fmt.Fprint(w, "\nRun 'stoa COMMAND --help' for the arguments and flags of a command.\n")
}

// oneLine joins a multi-line error message.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// wrap splits text into lines of at most width bytes.
func wrap(text string, width int) []string {
	var lines []string
	var cur strings.Builder
	for _, word := range strings.Fields(text) {
		if cur.Len() > 0 && cur.Len()+1+len(word) > width {
			lines = append(lines, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(word)
	}
	if cur.Len() > 0 {
		lines = append(lines, cur.String())
	}
	return lines
}

// versionString is the version shown by `stoa version` and XEP-0092.
func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}
