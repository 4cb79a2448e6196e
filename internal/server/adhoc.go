package server

import (
	"context"
	"fmt"

	"stoa.im/stoa/internal/xmpp/form"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Ad-hoc commands (XEP-0050). Features declare commands with Setup.AdHoc;
// the adhoc feature (internal/mod/adhoc) lists them in service discovery
// under the node http://jabber.org/protocol/commands of each host, checks
// access, keeps the multi-stage sessions (sessionid, execute, next, prev,
// complete, cancel) and renders the protocol. A command handler only sees
// typed requests and returns typed responses:
//
//	s.AdHoc(server.Command{
//		Node: "urn:example:hello", Name: "Say hello", Access: server.LocalUsers,
//		Handler: func(ctx context.Context, req *server.CommandRequest) (*server.CommandResponse, error) {
//			if req.Form == nil { // first stage: ask
//				f := form.New(form.TypeForm, "Hello").Add(form.Field{Var: "name", Label: "Your name", Required: true})
//				return server.CommandForm(f), nil
//			}
//			return server.CommandInfo("Hello, " + req.Form.Value("name")), nil
//		},
//	})

// NSCommands is the ad-hoc commands namespace (XEP-0050).
const NSCommands = "http://jabber.org/protocol/commands"

// CommandAccess says who may list and run a command.
type CommandAccess uint8

// Access levels.
const (
	// AdminOnly: the configured administrators ([server] admins).
	AdminOnly CommandAccess = iota + 1
	// LocalUsers: accounts of the hosts this server serves (and admins).
	LocalUsers
	// Anyone: any entity, including users of other servers.
	Anyone
)

func (a CommandAccess) String() string {
	switch a {
	case AdminOnly:
		return "admin"
	case LocalUsers:
		return "local"
	case Anyone:
		return "anyone"
	}
	return "unknown"
}

// CommandAction is an action of the requester (XEP-0050 §4.1).
type CommandAction string

// Actions. A handler never sees ActionCancel (the adhoc feature ends the
// session) nor a bare ActionExecute after the first stage (it is resolved
// to the stage's default action).
const (
	ActionExecute  CommandAction = "execute"
	ActionNext     CommandAction = "next"
	ActionPrev     CommandAction = "prev"
	ActionComplete CommandAction = "complete"
	ActionCancel   CommandAction = "cancel"
)

// CommandHandler runs one stage of a command. It returns the response, or
// an error: a *stanza.Error is sent as is (see BadPayload); any other
// error is logged and answered with internal-server-error. An error does
// not end the session: the requester may submit the stage again.
type CommandHandler func(ctx context.Context, req *CommandRequest) (*CommandResponse, error)

// Command is one ad-hoc command.
type Command struct {
	// Node identifies the command; unique across the server (XEP-0133
	// commands use http://jabber.org/protocol/admin#<name>).
	Node string
	// Name is the label clients show.
	Name    string
	Access  CommandAccess
	Handler CommandHandler
}

// CommandRequest is one stage of a command session.
type CommandRequest struct {
	// From is the requester's full JID; Host the domain the command was
	// sent to.
	From jid.JID
	Host string
	Node string
	// SessionID is the XEP-0050 sessionid of this execution.
	SessionID string
	// Action is ActionExecute on the first stage, then ActionNext,
	// ActionPrev or ActionComplete.
	Action CommandAction
	// Stage counts the stages: 0 on the first call, +1 after next or
	// complete, -1 after prev (never below 0).
	Stage int
	// Form is the submitted data form, nil when none was sent.
	Form *form.Form
	// Payload is the <command/> element as received (for payloads other
	// than data forms).
	Payload *xml.Element
	// Lang is the requester's xml:lang ("" when not given).
	Lang string
	// State is what the handler returned as CommandResponse.State at the
	// previous stage (nil on the first stage).
	State any
	// Origin is the requester's local session, nil for remote requesters.
	Origin *Session
}

// CommandNoteType is the severity of a note (XEP-0050 §6.3).
type CommandNoteType string

// Note types.
const (
	NoteInfo  CommandNoteType = "info"
	NoteWarn  CommandNoteType = "warn"
	NoteError CommandNoteType = "error"
)

// CommandNote is a human-readable note in a response.
type CommandNote struct {
	Type CommandNoteType
	Text string
}

// CommandResponse is what a stage returns.
type CommandResponse struct {
	// Completed ends the session (status completed). Otherwise the
	// session keeps executing and waits for the requester's next stage.
	Completed bool
	// Form is the data form to show: a form to fill in while executing,
	// a result form (or none) when completed.
	Form  *form.Form
	Notes []CommandNote
	// Actions are the actions allowed at the next stage while executing
	// (ActionNext, ActionPrev, ActionComplete); empty means only
	// ActionComplete (a single-stage form). Default is the action
	// 'execute' stands for; "" means the last of Actions.
	Actions []CommandAction
	Default CommandAction
	// Payload holds extra payload elements, after the form.
	Payload []*xml.Element
	// State is handed back as CommandRequest.State at the next stage.
	State any
}

// CommandForm returns an executing response showing f, with the allowed
// next actions (none: a one-stage form completed by submitting it).
func CommandForm(f *form.Form, actions ...CommandAction) *CommandResponse {
	return &CommandResponse{Form: f, Actions: actions}
}

// CommandResult returns a completed response carrying a result form (may
// be nil) and notes.
func CommandResult(f *form.Form, notes ...CommandNote) *CommandResponse {
	return &CommandResponse{Completed: true, Form: f, Notes: notes}
}

// CommandInfo returns a completed response with one info note.
func CommandInfo(format string, args ...any) *CommandResponse {
	return CommandResult(nil, CommandNote{Type: NoteInfo, Text: fmt.Sprintf(format, args...)})
}

// CommandFailed returns a completed response with one error note: the
// command ran to its end but did not succeed (XEP-0050 §3.4).
func CommandFailed(format string, args ...any) *CommandResponse {
	return CommandResult(nil, CommandNote{Type: NoteError, Text: fmt.Sprintf(format, args...)})
}

// BadPayload returns the error for a submission that cannot be accepted
// (a required field missing, a malformed value): bad-request with the
// XEP-0050 bad-payload condition and text saying what to fix.
func BadPayload(format string, args ...any) *stanza.Error {
	e := stanza.Errorf(stanza.BadRequest, format, args...)
	e.App = xml.New(NSCommands, "bad-payload")
	return e
}

type commandEntry struct {
	Command
	feature string
}

type commandRegistry struct {
	list []commandEntry
	m    map[string]int // node -> index in list
}

// AdHoc registers an ad-hoc command. It panics if the node is already
// taken or the command is incomplete (a programming error).
func (s *Setup) AdHoc(c Command) {
	r := &s.srv.commands
	switch {
	case c.Node == "" || c.Name == "" || c.Handler == nil:
		panic(fmt.Sprintf("server: %s: ad-hoc command %q needs a node, a name and a handler", s.feature, c.Node))
	case c.Access < AdminOnly || c.Access > Anyone:
		panic(fmt.Sprintf("server: %s: ad-hoc command %q has no access level", s.feature, c.Node))
	}
	if r.m == nil {
		r.m = make(map[string]int)
	}
	if i, dup := r.m[c.Node]; dup {
		panic(fmt.Sprintf("server: ad-hoc command %q registered by both %s and %s", c.Node, r.list[i].feature, s.feature))
	}
	r.m[c.Node] = len(r.list)
	r.list = append(r.list, commandEntry{Command: c, feature: s.feature})
}

// Commands returns the registered ad-hoc commands in registration order.
func (srv *Server) Commands() []Command {
	out := make([]Command, len(srv.commands.list))
	for i, e := range srv.commands.list {
		out[i] = e.Command
	}
	return out
}

// LookupCommand returns the command registered for node.
func (srv *Server) LookupCommand(node string) (Command, bool) {
	i, ok := srv.commands.m[node]
	if !ok {
		return Command{}, false
	}
	return srv.commands.list[i].Command, true
}

// CommandFeature returns the name of the feature that registered node.
func (srv *Server) CommandFeature(node string) string {
	if i, ok := srv.commands.m[node]; ok {
		return srv.commands.list[i].feature
	}
	return ""
}

// MayRunCommand reports whether from may list and run c.
func (srv *Server) MayRunCommand(c Command, from jid.JID) bool {
	switch c.Access {
	case Anyone:
		return true
	case LocalUsers:
		return srv.IsAdmin(from) || (from.Local() != "" && srv.hosts[from.Domain()] != nil)
	case AdminOnly:
		return srv.IsAdmin(from)
	}
	return false
}
