// Package adhoc runs ad-hoc commands (XEP-0050 version 1.3.0) on the
// server's domains: the commands features declare with Setup.AdHoc
// (XEP-0133 administration, invitations, ...).
//
// The command list is the disco#items of the node
// http://jabber.org/protocol/commands of each host, and holds only the
// commands the requester may run (XEP-0050 §2.2 lets the list differ per
// requester); disco#info on a command it may not run is forbidden. A
// command runs in a session (sessionid) owned by the requester's full JID:
// each stage's response says which actions (next, prev, complete) are
// allowed, 'execute' stands for the stage's default action, and cancel
// ends the session. Sessions expire after session_timeout without a
// stage; a requester has at most 16 open at once.
package adhoc

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/form"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// NS is the ad-hoc commands namespace.
const NS = server.NSCommands

// Session limits.
const (
	maxPerRequester = 16
	maxSessions     = 10000
)

// Feature is the ad-hoc commands feature.
var Feature = server.Feature{
	Name: "adhoc",
	Doc:  "Runs ad-hoc commands (forms any client can show): server administration for admins, invitations and other commands for users.",
	XEPs: []server.XEP{
		{N: 50, Name: "Ad-Hoc Commands", Version: "1.3.0", Status: server.Complete},
		{N: 4, Name: "Data Forms", Version: "2.13.1", Status: server.Complete},
	},
	Defaults: Config{SessionTimeout: config.Duration(10 * time.Minute)},
	Setup:    setup,
}

// Config is the [adhoc] table.
type Config struct {
	SessionTimeout config.Duration `toml:"session_timeout" min:"10s" help:"A command session with no new stage for this long is forgotten; its next stage gets session-expired."`
}

type session struct {
	id, node string
	owner    jid.JID // full JID of the requester
	stage    int
	state    any
	actions  []server.CommandAction // allowed at the next stage
	def      server.CommandAction   // what 'execute' stands for
	expires  time.Time
	busy     bool
}

type feature struct {
	srv     *server.Server
	log     *slog.Logger
	timeout time.Duration
	now     func() time.Time
	runs    *prometheus.CounterVec

	mu       sync.Mutex
	sessions map[string]*session
	perOwner map[string]int // bare JID -> open sessions
}

func setup(s *server.Setup, cfg any) error {
	c, ok := cfg.(Config)
	if !ok {
		return fmt.Errorf("adhoc: config is %T, want adhoc.Config", cfg)
	}
	f := &feature{
		srv: s.Server(), log: s.Logger(), timeout: time.Duration(c.SessionTimeout), now: time.Now,
		sessions: make(map[string]*session), perOwner: make(map[string]int),
	}
	f.runs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stoa", Subsystem: "adhoc", Name: "stages_total",
		Help: "Ad-hoc command stages by command node and outcome: executing (a form was shown), completed, failed (completed with an error note), canceled, error (a stanza error), forbidden.",
	}, []string{"node", "outcome"})
	if err := s.Metrics().Register(f.runs); err != nil {
		return fmt.Errorf("adhoc: registering metrics: %w", err)
	}
	d := s.Disco()
	d.ServerFeature(NS)
	d.ServerNode(server.DiscoNode{
		Match: func(node string) bool {
			if node == NS {
				return true
			}
			_, ok := f.srv.LookupCommand(node)
			return ok
		},
		Info:  f.nodeInfo,
		Items: f.nodeItems,
	})
	s.HandleIQ(server.ToServer, "set", NS, "command", f.execute)
	server.On(s, server.SessionClosed, server.PrioObserve, func(_ context.Context, sess *server.Session) error {
		f.dropOwner(sess.JID())
		return nil
	})
	return nil
}

// nodeInfo answers disco#info on the command list node and on each
// command (XEP-0050 §2.2).
func (f *feature) nodeInfo(_ context.Context, from jid.JID, _, node string) (server.DiscoInfo, error) {
	if node == NS {
		return server.DiscoInfo{
			Identities: []server.Identity{{Category: "automation", Type: "command-list", Name: "Commands"}},
			Features:   []string{NS},
		}, nil
	}
	c, _ := f.srv.LookupCommand(node)
	if !f.srv.MayRunCommand(c, from) {
		return server.DiscoInfo{}, stanza.NewError(stanza.Forbidden, "This command is not available to you.")
	}
	return server.DiscoInfo{
		Identities: []server.Identity{{Category: "automation", Type: "command-node", Name: c.Name}},
		Features:   []string{NS, form.NS},
	}, nil
}

// nodeItems lists the commands from may run; a command node has no items.
func (f *feature) nodeItems(_ context.Context, from jid.JID, host, node string) ([]server.DiscoItem, error) {
	if node != NS {
		c, _ := f.srv.LookupCommand(node)
		if !f.srv.MayRunCommand(c, from) {
			return nil, stanza.NewError(stanza.Forbidden, "This command is not available to you.")
		}
		return nil, nil
	}
	var out []server.DiscoItem
	for _, c := range f.srv.Commands() {
		if f.srv.MayRunCommand(c, from) {
			out = append(out, server.DiscoItem{JID: host, Node: c.Node, Name: c.Name})
		}
	}
	return out, nil
}

// cmdError returns a stanza error with a XEP-0050 §6.4 specific condition.
func cmdError(c stanza.Condition, specific, text string) *stanza.Error {
	e := stanza.NewError(c, text)
	e.App = xml.New(NS, specific)
	return e
}

func validAction(a server.CommandAction) bool {
	switch a {
	case server.ActionExecute, server.ActionNext, server.ActionPrev, server.ActionComplete, server.ActionCancel:
		return true
	}
	return false
}

// execute handles <iq type='set'><command/></iq> to a host.
func (f *feature) execute(ctx context.Context, iq *server.Stanza) (*xml.Element, error) {
	cmd := iq.Payload()
	node := cmd.Attr("node")
	if node == "" {
		return nil, stanza.NewError(stanza.BadRequest, "The command has no node; list the commands with disco#items on node "+NS+".")
	}
	c, ok := f.srv.LookupCommand(node)
	if !ok {
		return nil, stanza.Errorf(stanza.ItemNotFound, "There is no command %q here.", node)
	}
	if !f.srv.MayRunCommand(c, iq.From) {
		f.runs.WithLabelValues(node, "forbidden").Inc()
		f.srv.CountDenied("adhoc_forbidden")
		f.log.Info("ad-hoc command refused", "policy", "adhoc_forbidden", "node", node, "from", iq.From.String(), "access", c.Access.String())
		return nil, stanza.NewError(stanza.Forbidden, "This command is not available to you.")
	}
	action := server.CommandAction(cmd.Attr("action"))
	if action == "" {
		action = server.ActionExecute
	}
	if !validAction(action) {
		return nil, cmdError(stanza.BadRequest, "malformed-action", fmt.Sprintf("Unknown action %q (use execute, next, prev, complete or cancel).", action))
	}
	sub, err := form.Find(cmd)
	if err != nil {
		return nil, cmdError(stanza.BadRequest, "bad-payload", "The data form is malformed: "+err.Error())
	}

	sid := cmd.Attr("sessionid")
	var s *session
	if sid == "" {
		if action == server.ActionCancel {
			return f.render(node, "", "canceled", nil), nil
		}
		// Any other action without a session starts one (XEP-0050 §3.3).
		if s, err = f.open(node, iq.From); err != nil {
			return nil, err
		}
		action = server.ActionExecute
	} else {
		if s, err = f.resume(sid, node, iq.From); err != nil {
			return nil, err
		}
		if action == server.ActionCancel {
			f.close(s)
			f.runs.WithLabelValues(node, "canceled").Inc()
			return f.render(node, s.id, "canceled", nil), nil
		}
		if action, err = s.resolve(action); err != nil {
			f.release(s)
			return nil, err
		}
	}

	stage := s.stage
	switch action {
	case server.ActionNext, server.ActionComplete:
		stage++
	case server.ActionPrev:
		stage = max(stage-1, 0)
	}
	if sub != nil && sub.Type == form.TypeCancel {
		sub.Type = form.TypeSubmit // XEP-0050 §3.5.1
	}
	req := &server.CommandRequest{
		From: iq.From, Host: iq.To.Domain(), Node: node, SessionID: s.id,
		Action: action, Stage: stage, Form: sub, Payload: cmd,
		Lang: iq.El.Lang(), State: s.state, Origin: iq.Origin,
	}
	resp, err := c.Handler(ctx, req)
	if err == nil && resp == nil {
		err = fmt.Errorf("adhoc: command %s returned no response", node)
	}
	if err != nil {
		f.runs.WithLabelValues(node, "error").Inc()
		if sid == "" {
			f.close(s) // a first stage that failed leaves no session behind
		} else {
			f.release(s)
		}
		return nil, err
	}
	if resp.Completed {
		f.close(s)
		outcome := "completed"
		for _, n := range resp.Notes {
			if n.Type == server.NoteError {
				outcome = "failed"
			}
		}
		f.runs.WithLabelValues(node, outcome).Inc()
		f.log.Info("ad-hoc command completed", "node", node, "from", iq.From.String(), "outcome", outcome, "sid", s.id)
		return f.render(node, s.id, "completed", resp), nil
	}
	f.advance(s, stage, resp)
	f.runs.WithLabelValues(node, "executing").Inc()
	return f.render(node, s.id, "executing", resp), nil
}

// resolve maps the requester's action to one the stage allows
// (XEP-0050 §3.4): 'execute' is the stage's default.
func (s *session) resolve(a server.CommandAction) (server.CommandAction, error) {
	if a == server.ActionExecute {
		return s.def, nil
	}
	if slices.Contains(s.actions, a) {
		return a, nil
	}
	// COMPAT(clients that always press "next"): a single-stage form
	// allows only complete; next means the same there.
	if a == server.ActionNext && !slices.Contains(s.actions, server.ActionNext) && slices.Contains(s.actions, server.ActionComplete) {
		return server.ActionComplete, nil
	}
	return "", cmdError(stanza.BadRequest, "bad-action", fmt.Sprintf("The action %q is not allowed at this stage (allowed: %v).", a, s.actions))
}

// open starts a session for node owned by owner.
func (f *feature) open(node string, owner jid.JID) (*session, error) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sweepLocked(now)
	bare := owner.Bare().String()
	if f.perOwner[bare] >= maxPerRequester {
		return nil, stanza.Errorf(stanza.ResourceConstraint, "You have %d command sessions open; finish or cancel one first.", maxPerRequester)
	}
	if len(f.sessions) >= maxSessions {
		return nil, stanza.NewError(stanza.ResourceConstraint, "The server has too many command sessions open; try again in a few minutes.")
	}
	s := &session{
		id: server.NewSessionID(), node: node, owner: owner,
		expires: now.Add(f.timeout), busy: true,
	}
	f.sessions[s.id] = s
	f.perOwner[bare]++
	return s, nil
}

// resume finds an open session and marks it busy.
func (f *feature) resume(id, node string, from jid.JID) (*session, error) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sessions[id]
	// A session of another requester is reported as expired: that says
	// nothing about other people's sessions.
	if s == nil || !s.owner.Equal(from) || now.After(s.expires) {
		if s != nil && s.owner.Equal(from) {
			f.closeLocked(s)
		}
		return nil, cmdError(stanza.NotAllowed, "session-expired", "This command session has ended or expired; start the command again.")
	}
	if s.node != node {
		return nil, cmdError(stanza.BadRequest, "bad-sessionid", "This session id belongs to another command.")
	}
	if s.busy {
		return nil, stanza.NewError(stanza.UnexpectedRequest, "The previous stage of this command is still running; wait for its answer.")
	}
	s.busy = true
	s.expires = now.Add(f.timeout)
	return s, nil
}

func (f *feature) advance(s *session, stage int, resp *server.CommandResponse) {
	actions := resp.Actions
	if len(actions) == 0 {
		actions = []server.CommandAction{server.ActionComplete}
	}
	def := resp.Default
	if def == "" || def == server.ActionExecute {
		def = actions[len(actions)-1]
	}
	f.mu.Lock()
	s.stage, s.state, s.actions, s.def = stage, resp.State, actions, def
	s.expires = f.now().Add(f.timeout)
	s.busy = false
	f.mu.Unlock()
	resp.Actions, resp.Default = actions, def
}

func (f *feature) release(s *session) {
	f.mu.Lock()
	s.busy = false
	f.mu.Unlock()
}

func (f *feature) close(s *session) {
	f.mu.Lock()
	f.closeLocked(s)
	f.mu.Unlock()
}

func (f *feature) closeLocked(s *session) {
	if f.sessions[s.id] != s {
		return
	}
	delete(f.sessions, s.id)
	bare := s.owner.Bare().String()
	if f.perOwner[bare]--; f.perOwner[bare] <= 0 {
		delete(f.perOwner, bare)
	}
}

// sweepLocked forgets expired sessions that are not running.
func (f *feature) sweepLocked(now time.Time) {
	for _, s := range f.sessions {
		if !s.busy && now.After(s.expires) {
			f.closeLocked(s)
		}
	}
}

// dropOwner forgets the sessions of a requester whose session ended.
func (f *feature) dropOwner(owner jid.JID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.perOwner[owner.Bare().String()] == 0 {
		return
	}
	for _, s := range f.sessions {
		if !s.busy && s.owner.Equal(owner) {
			f.closeLocked(s)
		}
	}
}

// render builds the <command/> answer.
func (f *feature) render(node, sid, status string, resp *server.CommandResponse) *xml.Element {
	el := xml.New(NS, "command").SetAttr("node", node).SetAttr("sessionid", sid).SetAttr("status", status)
	el.SetAttrNS(xml.NSXML, "lang", "en")
	if resp == nil {
		return el
	}
	if status == "executing" {
		a := xml.New(NS, "actions").SetAttr("execute", string(resp.Default))
		for _, act := range resp.Actions {
			a.Append(xml.New(NS, string(act)))
		}
		el.Append(a)
	}
	for _, n := range resp.Notes {
		t := n.Type
		if t == "" {
			t = server.NoteInfo
		}
		el.Append(&xml.Element{Space: NS, Local: "note", Attrs: []xml.Attr{{Local: "type", Value: string(t)}}, Text: n.Text})
	}
	if resp.Form != nil {
		el.Append(resp.Form.Element())
	}
	el.Append(resp.Payload...)
	return el
}
