package web

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"stoa.im/stoa/internal/mod/invite"
	"stoa.im/stoa/internal/policy"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
)

// signupData is the data of the sign-up page.
type signupData struct {
	Host          string   // the host the account will be on
	HostLabel     string   // shown in the title
	Hosts         []string // hosts the visitor may choose
	Token         string
	InvitedBy     string // bare JID of the inviter
	Befriends     bool   // the new account and the inviter become contacts
	Reserved      string // the address an account invitation reserves
	ReservedLocal string
	Username      string
	Blocked       string // why there is no form
	Approval      bool
	Challenge     string
	MinPassword   int
	UsernameError bool
	PasswordError bool
}

// openHosts are the hosts whose mode lets anyone sign up.
func (s *Server) openHosts() []string {
	var out []string
	for _, h := range s.srv.Hosts() {
		if m := s.mode(h); m == ModeOpen || m == ModeApproval {
			out = append(out, h)
		}
	}
	return out
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	inviteOnly := false
	for _, h := range s.srv.Hosts() {
		if s.mode(h) == ModeInvite {
			inviteOnly = true
		}
	}
	s.render(w, r, http.StatusOK, "home", page{
		Title: catalogFor(r.Header.Get("Accept-Language")).T("home.title", s.siteName()),
		Data: struct {
			Open, InviteOnly bool
			Apps             appLists
		}{len(s.openHosts()) > 0, inviteOnly, appsOf(r)},
	})
}

// prepare fills in what the form shows for an optional invitation token:
// the host, the inviter, a reserved name, or why there is no form.
func (s *Server) prepare(ctx context.Context, r *http.Request, token, host string) (signupData, error) {
	msg := catalogFor(r.Header.Get("Accept-Language"))
	d := signupData{MinPassword: MinPassword}
	if token != "" {
		inv, ok, err := invite.Lookup(ctx, s.srv.Store(), token)
		if err != nil {
			return d, err
		}
		switch {
		case !ok || !inv.Valid(s.now()):
			d.Blocked = msg.T("signup.inviteInvalid")
		case !invite.AllowsRegistration(inv):
			d.Blocked = msg.T("signup.noInviteHere")
		}
		if d.Blocked == "" && s.mode(inv.Host) == ModeClosed {
			d.Blocked = msg.T("signup.closed", inv.Host)
		}
		if d.Blocked != "" {
			d.HostLabel = s.siteName()
			return d, nil
		}
		d.Token, d.Host, d.Hosts = inv.Token, inv.Host, []string{inv.Host}
		d.InvitedBy, d.Befriends = inv.Creator, inv.Subscribe && inv.Creator != ""
		if inv.Kind == store.InviteAccount && inv.JID != "" {
			d.Reserved = inv.JID
			if j, err := jid.Parse(inv.JID); err == nil {
				d.ReservedLocal = j.Local()
			}
		}
		d.HostLabel = d.Host
		d.Approval = s.mode(d.Host) == ModeApproval
		return d, nil
	}
	d.Hosts = s.openHosts()
	if len(d.Hosts) == 0 {
		d.HostLabel = s.siteName()
		d.Blocked = msg.T("signup.closed", s.siteName())
		for _, h := range s.srv.Hosts() {
			if s.mode(h) == ModeInvite {
				d.Blocked = msg.T("signup.inviteOnly", s.siteName())
			}
		}
		return d, nil
	}
	d.Host = d.Hosts[0]
	if slices.Contains(d.Hosts, host) {
		d.Host = host
	}
	d.HostLabel = d.Host
	if len(d.Hosts) > 1 {
		d.HostLabel = s.siteName()
	}
	d.Approval = s.mode(d.Host) == ModeApproval
	return d, nil
}

func (s *Server) signupForm(w http.ResponseWriter, r *http.Request) {
	d, err := s.prepare(r.Context(), r, strings.TrimSpace(r.URL.Query().Get("t")), r.URL.Query().Get("host"))
	if err != nil {
		s.internalError(w, r, "preparing the sign-up form failed", err)
		return
	}
	s.showForm(w, r, http.StatusOK, d, nil)
}

// showForm renders the sign-up form with a fresh challenge.
func (s *Server) showForm(w http.ResponseWriter, r *http.Request, code int, d signupData, errs []string) {
	msg := catalogFor(r.Header.Get("Accept-Language"))
	p := page{Title: msg.T("signup.title", d.HostLabel), Errors: errs, ErrorsTitle: msg.T("signup.errorsTitle")}
	if d.Blocked == "" {
		ch, err := s.newChallenge()
		if err != nil {
			s.internalError(w, r, "creating a challenge failed", err)
			return
		}
		d.Challenge = ch
		p.CSRF = s.csrfToken(w, r)
		p.Script = true
	}
	p.Data = d
	s.render(w, r, code, "signup", p)
}

func (s *Server) signupPost(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	msg := catalogFor(r.Header.Get("Accept-Language"))
	if err := r.ParseForm(); err != nil {
		s.message(w, r, http.StatusBadRequest, msg.T("error.title"), msg.T("err.csrf"))
		return
	}
	token := strings.TrimSpace(r.PostFormValue("t"))
	d, err := s.prepare(ctx, r, token, r.PostFormValue("host"))
	if err != nil {
		s.internalError(w, r, "preparing the sign-up form failed", err)
		return
	}
	ip := s.proxies.clientIP(r)
	d.Username = strings.TrimSpace(r.PostFormValue("username"))
	deny := func(reason string) {
		s.srv.CountDenied(reason)
		s.log.Info("web sign-up refused", "policy", reason, "ip", ip.String(), "host", d.Host, "username", d.Username)
	}
	if d.Blocked != "" {
		deny("web_signup_closed")
		s.signups.WithLabelValues("refused").Inc()
		s.showForm(w, r, http.StatusForbidden, d, nil)
		return
	}
	if !s.csrfOK(r) {
		deny("web_csrf")
		s.signups.WithLabelValues("csrf_refused").Inc()
		s.showForm(w, r, http.StatusForbidden, d, []string{msg.T("err.csrf")})
		return
	}
	if h := r.PostFormValue("host"); h != "" && !slices.Contains(d.Hosts, h) {
		s.showForm(w, r, http.StatusUnprocessableEntity, d, []string{msg.T("err.badHost")})
		return
	}

	// The form's own checks first: they cost nothing and need no new
	// proof of work.
	var errs []string
	local := d.Username
	if d.Reserved != "" {
		local = d.ReservedLocal
	}
	var account jid.JID
	switch prepped, err := policy.PrepName(local); {
	case local == "":
		errs, d.UsernameError = append(errs, msg.T("err.usernameEmpty")), true
	case err != nil:
		errs, d.UsernameError = append(errs, err.Error()), true
	default:
		account, err = jid.New(prepped, d.Host, "")
		if err != nil {
			errs, d.UsernameError = append(errs, err.Error()), true
		}
	}
	pw, pw2 := r.PostFormValue("password"), r.PostFormValue("password2")
	switch n := utf8.RuneCountInString(pw); {
	case n < MinPassword:
		errs, d.PasswordError = append(errs, msg.T("err.passwordShort", MinPassword)), true
	case n > MaxPassword:
		errs, d.PasswordError = append(errs, msg.T("err.passwordLong", MaxPassword)), true
	case pw != pw2:
		errs, d.PasswordError = append(errs, msg.T("err.passwordMismatch")), true
	}
	if len(errs) > 0 {
		deny("web_form_invalid")
		s.signups.WithLabelValues("refused").Inc()
		s.showForm(w, r, http.StatusUnprocessableEntity, d, errs)
		return
	}
	if err := s.checkPoW(ctx, r.PostFormValue("pow")); err != nil {
		var pe *powError
		if !errors.As(err, &pe) {
			s.internalError(w, r, "checking a proof of work failed", err)
			return
		}
		deny(pe.reason)
		s.signups.WithLabelValues("pow_refused").Inc()
		s.showForm(w, r, http.StatusUnprocessableEntity, d, []string{msg.T(pe.msg)})
		return
	}

	reg := &server.Registration{
		JID: account, Password: pw, IP: ip, Method: "web", Invite: d.Token,
		// The register feature's CAPTCHA policy: the proof of work above
		// is the web's CAPTCHA.
		Values: map[string]string{"captcha": "solved"},
	}
	if err := s.srv.Register(ctx, reg); err != nil {
		text, internal := refusalText(err, account, msg)
		if internal {
			s.signups.WithLabelValues("error").Inc()
			s.internalError(w, r, "web sign-up failed", err)
			return
		}
		// Register counted and logged the refusal.
		s.signups.WithLabelValues("refused").Inc()
		d.UsernameError = nameRefused(err)
		s.showForm(w, r, http.StatusUnprocessableEntity, d, []string{text})
		return
	}
	s.signups.WithLabelValues("created").Inc()
	s.log.Info("account created on the web", "jid", account.String(), "ip", ip.String(), "invite", invite.Short(d.Token))
	contact := ""
	if d.Befriends {
		contact = d.InvitedBy
	}
	s.render(w, r, http.StatusOK, "welcome", page{
		Title: msg.T("welcome.title"),
		Data: struct {
			JID, Contact string
			Approval     bool
			Apps         appLists
		}{account.String(), contact, d.Approval, appsOf(r)},
	})
}

// refusalText is what the person sees when Register refused: the
// policy's own words, or ours for the account errors. internal reports
// an error that is not a refusal (storage failures).
func refusalText(err error, account jid.JID, msg *catalog) (text string, internal bool) {
	var ref *server.Refusal
	switch {
	case errors.As(err, &ref):
		return ref.Text, false
	case errors.Is(err, server.ErrUserExists):
		return msg.T("err.exists", account.String()), false
	case errors.Is(err, server.ErrNameTaken):
		// The server's text says which name it looks like and why.
		return strings.TrimSuffix(err.Error(), ": "+server.ErrNameTaken.Error()), false
	}
	return "", true
}

// nameRefused reports whether Register refused the name itself (so the
// form marks the username field).
func nameRefused(err error) bool {
	var ref *server.Refusal
	if errors.As(err, &ref) {
		return strings.HasPrefix(ref.Reason, "name_") || ref.Reason == "invite_reserved"
	}
	return errors.Is(err, server.ErrUserExists) || errors.Is(err, server.ErrNameTaken)
}
