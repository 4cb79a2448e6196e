package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
)

// CSRF protection for the forms: a random cookie (HttpOnly, SameSite=Lax)
// and a hidden field holding the HMAC of the cookie under a key derived
// from the node secret. Another site can make a browser send the cookie
// (not on cross-site POSTs with Lax, but older browsers) yet cannot read
// it, so it cannot produce the field. The Origin header, when the browser
// sends one, must also be ours.

const (
	csrfCookie = "stoa_csrf"
	csrfField  = "csrf"
)

// csrfToken returns the form token for the request, setting the cookie
// first when the browser has none.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	v := ""
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 20 && len(c.Value) <= 64 {
		v = c.Value
	} else {
		var b [18]byte
		_, _ = rand.Read(b[:])
		v = base64.RawURLEncoding.EncodeToString(b[:])
		http.SetCookie(w, &http.Cookie{
			Name: csrfCookie, Value: v, Path: s.basePath + "/", HttpOnly: true,
			Secure: s.proxies.secure(r), SameSite: http.SameSiteLaxMode,
		})
	}
	return s.csrfMAC(v)
}

func (s *Server) csrfMAC(cookie string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfOK checks a submitted form's token and origin.
func (s *Server) csrfOK(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" && o != "null" && !s.sameOrigin(r, o) {
		return false
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil {
		return false
	}
	got := r.PostFormValue(csrfField)
	return got != "" && hmac.Equal([]byte(got), []byte(s.csrfMAC(c.Value)))
}

// sameOrigin reports whether origin is the public URL's origin or the
// origin the request was sent to.
func (s *Server) sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if s.publicOrigin != "" && strings.EqualFold(u.Scheme+"://"+u.Host, s.publicOrigin) {
		return true
	}
	return strings.EqualFold(u.Host, r.Host)
}
