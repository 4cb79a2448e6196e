// Package adminsock is the admin socket of a running node: a unix socket
// (mode 0600) in the data directory that speaks one JSON request per line
// and answers with one JSON response per line:
//
//	{"cmd":"user.add","args":{"jid":"alice@example.org","password":"..."}}
//	{"ok":true,"message":"created alice@example.org"}
//	{"ok":false,"error":"alice@example.org: the account already exists"}
//
// The command line (`stoa user ...`) goes through it when the server runs,
// so a change takes the same code path as an in-band one: deleting an
// account kicks its live sessions at once. When no server listens, Call
// returns an error matching ErrNotRunning and the command line runs the
// same commands with Exec on a server built over the store.
package adminsock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"stoa.im/stoa/internal/xmpp/jid"
)

// Via is the AccountEvent.Via of changes made through the admin socket
// or the command line.
const Via = "cli"

// Request is one command.
type Request struct {
	Cmd  string            `json:"cmd"`
	Args map[string]string `json:"args,omitempty"`
}

// Response is the answer to one Request.
type Response struct {
	OK      bool     `json:"ok"`
	Message string   `json:"message,omitempty"`
	Error   string   `json:"error,omitempty"`
	Users   []string `json:"users,omitempty"` // user.list
	Lines   []string `json:"lines,omitempty"` // further output of feature commands, one per line
}

// Accounts is what the commands need from the server; *server.Server
// implements it.
type Accounts interface {
	Hosts() []string
	AccountJID(s string) (jid.JID, error)
	CreateUser(ctx context.Context, j jid.JID, password, via string) error
	SetPassword(ctx context.Context, j jid.JID, password, via string) error
	DeleteUser(ctx context.Context, j jid.JID, via string) error
	Users(ctx context.Context, domain string) ([]string, error)
}

// Command is one admin command.
type Command struct {
	Name string   // e.g. "user.add"
	Args []string // argument names; all required unless listed in Optional
	// Optional lists the arguments that may be left out.
	Optional []string
	Help     string
	run      func(ctx context.Context, a Accounts, args map[string]string) (Response, error)
}

// Commands returns the admin commands, in documentation order.
func Commands() []Command {
	return []Command{
		{Name: "user.add", Args: []string{"jid", "password"}, Help: "Create an account.", run: userAdd},
		{Name: "user.passwd", Args: []string{"jid", "password"}, Help: "Set an account's password.", run: userPasswd},
		{Name: "user.del", Args: []string{"jid"}, Help: "Delete an account and its data; its sessions end at once.", run: userDel},
		{Name: "user.list", Args: []string{"domain"}, Optional: []string{"domain"}, Help: "List the accounts of one domain, or of every hosted domain.", run: userList},
	}
}

// Exec runs req against a. Problems with the request or the command are
// reported in the Response (OK false), never as a Go error.
func Exec(ctx context.Context, a Accounts, req Request) Response {
	i := slices.IndexFunc(Commands(), func(c Command) bool { return c.Name == req.Cmd })
	if i < 0 {
		if resp, ok := execFeature(ctx, a, req); ok {
			return resp
		}
		names := make([]string, 0, 4)
		for _, c := range Commands() {
			names = append(names, c.Name)
		}
		return fail(fmt.Errorf("unknown command %q (known: %s)", req.Cmd, strings.Join(names, ", ")))
	}
	cmd := Commands()[i]
	for k := range req.Args {
		if !slices.Contains(cmd.Args, k) {
			return fail(fmt.Errorf("%s: unknown argument %q (arguments: %s)", cmd.Name, k, strings.Join(cmd.Args, ", ")))
		}
	}
	for _, k := range cmd.Args {
		if req.Args[k] == "" && !slices.Contains(cmd.Optional, k) {
			return fail(fmt.Errorf("%s: missing argument %q", cmd.Name, k))
		}
	}
	resp, err := cmd.run(ctx, a, req.Args)
	if err != nil {
		return fail(err)
	}
	resp.OK = true
	return resp
}

func fail(err error) Response { return Response{Error: err.Error()} }

func userAdd(ctx context.Context, a Accounts, args map[string]string) (Response, error) {
	j, err := a.AccountJID(args["jid"])
	if err != nil {
		return Response{}, err
	}
	if err := a.CreateUser(ctx, j, args["password"], Via); err != nil {
		return Response{}, err
	}
	return Response{Message: "created " + j.String()}, nil
}

func userPasswd(ctx context.Context, a Accounts, args map[string]string) (Response, error) {
	j, err := a.AccountJID(args["jid"])
	if err != nil {
		return Response{}, err
	}
	if err := a.SetPassword(ctx, j, args["password"], Via); err != nil {
		return Response{}, err
	}
	return Response{Message: "changed the password of " + j.String()}, nil
}

func userDel(ctx context.Context, a Accounts, args map[string]string) (Response, error) {
	j, err := a.AccountJID(args["jid"])
	if err != nil {
		return Response{}, err
	}
	if err := a.DeleteUser(ctx, j, Via); err != nil {
		return Response{}, err
	}
	return Response{Message: "deleted " + j.String()}, nil
}

func userList(ctx context.Context, a Accounts, args map[string]string) (Response, error) {
	domains := a.Hosts()
	if d := args["domain"]; d != "" {
		j, err := jid.Parse(d)
		if err != nil || !j.IsDomain() {
			return Response{}, fmt.Errorf("%q is not a domain name", d)
		}
		domains = []string{j.Domain()}
	}
	users := []string{}
	for _, d := range domains {
		u, err := a.Users(ctx, d)
		if err != nil {
			return Response{}, err
		}
		users = append(users, u...)
	}
	msg := fmt.Sprintf("%d accounts", len(users))
	if len(users) == 1 {
		msg = "1 account"
	}
	return Response{Message: msg, Users: users}, nil
}

// ErrNotRunning is matched (errors.Is) by the error Call returns when no
// server listens on the socket.
var ErrNotRunning = errors.New("adminsock: the server is not running")
