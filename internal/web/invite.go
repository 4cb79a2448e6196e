package web

import (
	"errors"
	"html/template"
	"net/http"
	"time"

	"stoa.im/stoa/internal/mod/invite"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
)

// landing is an invitation's web page (XEP-0401 §3.2, XEP-0379 §3.3):
// who invites, a button with the xmpp: URI for apps that open invitation
// links, the web sign-up when the invitation allows it, and apps to
// install for the visitor's platform. The xmpp: URI is also in a Link
// header, as Prosody's pages do.
func (s *Server) landing(w http.ResponseWriter, r *http.Request) {
	msg := catalogFor(r.Header.Get("Accept-Language"))
	inv, ok, err := invite.Lookup(r.Context(), s.srv.Store(), r.PathValue("token"))
	if err != nil {
		s.internalError(w, r, "looking up an invitation failed", err)
		return
	}
	if !ok || inv.Kind == store.InviteReset || !inv.Valid(s.now()) {
		s.message(w, r, http.StatusNotFound, msg.T("invite.invalidTitle"), msg.T("invite.invalid"))
		return
	}
	uri := invite.URI(inv)
	w.Header().Set("Link", "<"+uri+">; rel=\"alternate\"")
	d := struct {
		Contact             bool
		Host                string
		Inviter, InviterJID string
		URI                 template.URL // xmpp: is not a scheme html/template trusts
		SignupURL           string
		Expires             string
		Apps                appLists
	}{
		Contact: inv.Kind == store.InviteContact, Host: inv.Host, InviterJID: inv.Creator,
		URI: template.URL(uri), Expires: inv.Expires.UTC().Format("2006-01-02 15:04 MST"), Apps: appsOf(r),
	}
	if inv.Creator != "" {
		d.Inviter = inv.Creator
		if j, err := jid.Parse(inv.Creator); err == nil {
			d.Inviter = j.Local()
		}
	}
	if invite.AllowsRegistration(inv) && s.mode(inv.Host) != ModeClosed {
		d.SignupURL = s.basePath + "/register?t=" + queryEscape(inv.Token)
	}
	title := msg.T("invite.accountTitle", inv.Host)
	if d.Contact {
		title = msg.T("invite.contactTitle", d.Inviter)
	}
	s.render(w, r, http.StatusOK, "invite", page{Title: title, Data: d})
}

// resetData is the data of the reset page.
type resetData struct {
	JID, Token  string
	MinPassword int
}

// resetInvite returns the valid reset invitation of the request's token.
func (s *Server) resetInvite(w http.ResponseWriter, r *http.Request) (store.Invite, bool) {
	msg := catalogFor(r.Header.Get("Accept-Language"))
	inv, ok, err := invite.Lookup(r.Context(), s.srv.Store(), r.PathValue("token"))
	if err != nil {
		s.internalError(w, r, "looking up a reset link failed", err)
		return store.Invite{}, false
	}
	if !ok || inv.Kind != store.InviteReset || !inv.Valid(s.now()) {
		s.message(w, r, http.StatusNotFound, msg.T("reset.invalidTitle"), msg.T("reset.invalid"))
		return store.Invite{}, false
	}
	return inv, true
}

func (s *Server) resetForm(w http.ResponseWriter, r *http.Request) {
	inv, ok := s.resetInvite(w, r)
	if !ok {
		return
	}
	s.showReset(w, r, http.StatusOK, inv, nil)
}

func (s *Server) showReset(w http.ResponseWriter, r *http.Request, code int, inv store.Invite, errs []string) {
	msg := catalogFor(r.Header.Get("Accept-Language"))
	s.render(w, r, code, "reset", page{
		Title: msg.T("reset.title", inv.JID), CSRF: s.csrfToken(w, r), Errors: errs, ErrorsTitle: msg.T("error.title"),
		Data: resetData{JID: inv.JID, Token: inv.Token, MinPassword: MinPassword},
	})
}

func (s *Server) resetPost(w http.ResponseWriter, r *http.Request) {
	msg := catalogFor(r.Header.Get("Accept-Language"))
	inv, ok := s.resetInvite(w, r)
	if !ok {
		return
	}
	if !s.csrfOK(r) {
		s.srv.CountDenied("web_csrf")
		s.showReset(w, r, http.StatusForbidden, inv, []string{msg.T("err.csrf")})
		return
	}
	pw, pw2 := r.PostFormValue("password"), r.PostFormValue("password2")
	var errs []string
	switch n := len([]rune(pw)); {
	case n < MinPassword:
		errs = append(errs, msg.T("err.passwordShort", MinPassword))
	case n > MaxPassword:
		errs = append(errs, msg.T("err.passwordLong", MaxPassword))
	case pw != pw2:
		errs = append(errs, msg.T("err.passwordMismatch"))
	}
	if len(errs) > 0 {
		s.showReset(w, r, http.StatusUnprocessableEntity, inv, errs)
		return
	}
	j, err := invite.ResetPassword(r.Context(), s.srv, inv.Token, pw, "web")
	if err != nil {
		var ref *server.Refusal
		if errors.As(err, &ref) {
			s.message(w, r, http.StatusUnprocessableEntity, msg.T("reset.invalidTitle"), ref.Text)
			return
		}
		s.internalError(w, r, "resetting a password failed", err)
		return
	}
	s.log.Info("password reset on the web", "jid", j.String(), "ip", s.proxies.clientIP(r).String(), "at", s.now().UTC().Format(time.RFC3339))
	s.message(w, r, http.StatusOK, msg.T("reset.doneTitle"), msg.T("reset.done", j.String()))
}
