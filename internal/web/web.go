// Package web is stoa's public HTTP listener: web sign-up, invitation
// landing pages and password-reset links, as plain server-rendered HTML
// that works without JavaScript except for the proof-of-work step of the
// sign-up form.
//
// Sign-up goes through server.Register, the path in-band registration
// takes, so every registration policy (mode, names, throttles, invitation
// checks) applies to both; the web adds a proof of work (ALTCHA, SHA-256,
// solved by static/pow.js) with replay protection and a minimum solve
// time, and CSRF protection on every form. Client addresses come from the
// TCP peer, or from X-Forwarded-For when the peer is a configured trusted
// proxy. The pages' texts are in messages.go, in one place for
// translation; templates and static files are embedded.
package web

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"stoa.im/stoa/internal/certs"
	"stoa.im/stoa/internal/server"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Registration modes a host may be in (the register feature's
// [register] mode).
const (
	ModeClosed   = "closed"
	ModeInvite   = "invite"
	ModeApproval = "approval"
	ModeOpen     = "open"
)

// Password length bounds of the forms.
const (
	MinPassword = 8
	MaxPassword = 1024
)

// Options configure a Server.
type Options struct {
	Config Config
	Server *server.Server
	// Certs serves HTTPS when Config.TLS is set.
	Certs *certs.Store
	// Secret is the node secret; the CSRF and proof-of-work keys are
	// derived from it.
	Secret []byte
	Logger *slog.Logger
	// Mode returns the registration mode of a host (ModeClosed, ...);
	// nil means closed everywhere (only invitations then open the form
	// if the register feature lets them).
	Mode func(host string) string
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Server is the web listener.
type Server struct {
	cfg     Config
	srv     *server.Server
	certs   *certs.Store
	log     *slog.Logger
	mode    func(string) string
	now     func() time.Time
	proxies proxies

	csrfKey []byte
	powKey  string

	publicURL    string // without trailing slash
	publicOrigin string // scheme://host of publicURL
	basePath     string // path prefix of publicURL ("" or "/chat")

	pages   map[string]*template.Template
	handler http.Handler

	requests *prometheus.CounterVec
	signups  *prometheus.CounterVec

	ln     net.Listener
	http   *http.Server
	wg     sync.WaitGroup
	cancel context.CancelFunc // set by Serve
}

// New builds the web server; nothing listens until Listen.
func New(opts Options) (*Server, error) {
	if opts.Server == nil {
		return nil, errors.New("web: no server")
	}
	if len(opts.Secret) == 0 {
		return nil, errors.New("web: no secret")
	}
	if opts.Config.TLS && opts.Certs == nil {
		return nil, errors.New("web: tls is on but no certificates were given")
	}
	nets, err := parseNets(opts.Config.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("web: trusted_proxies: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg: opts.Config, srv: opts.Server, certs: opts.Certs, log: log.With("feature", "web"),
		mode: opts.Mode, now: opts.Now, proxies: proxies{nets: nets},
		csrfKey: derive(opts.Secret, "stoa web csrf"),
		powKey:  hex.EncodeToString(derive(opts.Secret, "stoa web pow")),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.mode == nil {
		s.mode = func(string) string { return ModeClosed }
	}
	s.publicURL = PublicURLOf(opts.Config)
	if s.publicURL != "" {
		u, err := parsePublicURL(s.publicURL)
		if err != nil {
			return nil, fmt.Errorf("web: %w", err)
		}
		s.publicOrigin = u.Scheme + "://" + u.Host
		s.basePath = strings.TrimRight(u.Path, "/")
	}
	if err := s.parseTemplates(); err != nil {
		return nil, err
	}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stoa", Subsystem: "web", Name: "requests_total",
		Help: "Requests to the web listener, by page and status code.",
	}, []string{"page", "code"})
	s.signups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stoa", Subsystem: "web", Name: "signups_total",
		Help: "Web sign-up attempts by result (created, refused, pow_refused, csrf_refused, error).",
	}, []string{"result"})
	for _, c := range []**prometheus.CounterVec{&s.requests, &s.signups} {
		if err := opts.Server.Registry().Register(*c); err != nil {
			// A second listener on the same server (tests) shares them.
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("web: registering metrics: %w", err)
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, fmt.Errorf("web: registering metrics: %w", err)
			}
			*c = existing
		}
	}
	s.handler = s.routes()
	return s, nil
}

// derive returns a key for one purpose from the node secret.
func derive(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

func (s *Server) parseTemplates() error {
	funcs := template.FuncMap{
		// Replaced per request by the visitor's catalog (see render).
		"t": english.T,
	}
	s.pages = map[string]*template.Template{}
	for _, p := range []string{"home", "signup", "welcome", "invite", "reset", "message"} {
		t, err := template.New(p).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return fmt.Errorf("web: parsing template %s: %w", p, err)
		}
		s.pages[p] = t
	}
	return nil
}

// Handler is the web handler (tests serve it with httptest).
func (s *Server) Handler() http.Handler { return s.handler }

// PublicURL is the base URL of the pages.
func (s *Server) PublicURL() string { return s.publicURL }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("GET /register", s.signupForm)
	mux.HandleFunc("POST /register", s.signupPost)
	mux.HandleFunc("GET /invite/{token}", s.landing)
	mux.HandleFunc("GET /reset/{token}", s.resetForm)
	mux.HandleFunc("POST /reset/{token}", s.resetPost)
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // cannot happen: the directory is embedded
	}
	files := http.FileServerFS(static)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})))
	mux.HandleFunc("/", s.notFound)
	var h http.Handler = mux
	if s.basePath != "" {
		h = http.StripPrefix(s.basePath, h)
	}
	return s.headers(h)
}

// headers adds the security headers every response carries and counts
// the request.
func (s *Server) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
			"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()")
		if s.proxies.secure(r) {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		s.requests.WithLabelValues(pageOf(r.URL.Path, s.basePath), fmt.Sprint(rec.code)).Inc()
	})
}

// pageOf names a path for the metrics (tokens left out).
func pageOf(path, base string) string {
	p := strings.TrimPrefix(path, base)
	switch {
	case p == "/":
		return "home"
	case p == "/register":
		return "register"
	case strings.HasPrefix(p, "/invite/"):
		return "invite"
	case strings.HasPrefix(p, "/reset/"):
		return "reset"
	case strings.HasPrefix(p, "/static/"):
		return "static"
	}
	return "other"
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// page is what every template gets.
type page struct {
	Lang, Title, Site, Base, CSRF string
	Script                        bool // load pow.js
	Errors                        []string
	ErrorsTitle                   string
	Data                          any
}

// render writes a page with status code.
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, p page) {
	msg := catalogFor(r.Header.Get("Accept-Language"))
	p.Lang, p.Base = msg.lang, s.basePath
	if p.Site == "" {
		p.Site = s.siteName()
	}
	t, err := s.pages[name].Clone()
	if err == nil {
		t = t.Funcs(template.FuncMap{"t": msg.T})
		var b strings.Builder
		if err = t.ExecuteTemplate(&b, "layout", p); err == nil {
			h := w.Header()
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(code)
			_, _ = w.Write([]byte(b.String()))
			return
		}
	}
	s.log.Error("rendering a page failed", "page", name, "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

// message renders a page of a title and a few paragraphs.
func (s *Server) message(w http.ResponseWriter, r *http.Request, code int, title string, lines ...string) {
	s.render(w, r, code, "message", page{Title: title, Data: struct{ Lines []string }{lines}})
}

func (s *Server) siteName() string {
	if s.cfg.SiteName != "" {
		return s.cfg.SiteName
	}
	if hs := s.srv.Hosts(); len(hs) > 0 {
		return hs[0]
	}
	return "stoa"
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	msg := catalogFor(r.Header.Get("Accept-Language"))
	s.message(w, r, http.StatusNotFound, msg.T("notFound.title"), msg.T("notFound.text"))
}

func (s *Server) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.Error(what, "err", err, "path", r.URL.Path)
	msg := catalogFor(r.Header.Get("Accept-Language"))
	s.message(w, r, http.StatusInternalServerError, msg.T("error.title"), msg.T("err.internal"))
}

// appLists is the data of the "apps" template.
type appLists struct {
	Mine   *appGroup
	Others []appGroup
}

func appsOf(r *http.Request) appLists {
	mine, others := appsFor(r.UserAgent())
	return appLists{Mine: mine, Others: others}
}

// Listen opens the listener.
func (s *Server) Listen() error {
	if s.cfg.Listen == "" {
		return errors.New("web: no listen address")
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("web: listening on %s: %w (change [http] listen, or set it to \"\" to turn the web listener off)", s.cfg.Listen, err)
	}
	if s.cfg.TLS {
		ln = tls.NewListener(ln, s.certs.TLSConfig(tls.VersionTLS12, "h2", "http/1.1"))
	}
	s.ln = ln
	s.http = &http.Server{
		Handler:           http.MaxBytesHandler(s.handler, 64<<10),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return nil
}

// Addr is the listener's address (after Listen).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves requests and purges used proof-of-work solutions in the
// background until Shutdown.
func (s *Server) Serve(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("web listener stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(10 * time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := s.srv.Store().Nonces().Purge(ctx, s.now()); err != nil && ctx.Err() == nil {
					s.log.Warn("deleting expired proof-of-work records failed", "err", err)
				}
			}
		}
	}()
}

// Shutdown stops the listener, waiting for requests in flight until ctx
// ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.cancel != nil {
		s.cancel()
	}
	var err error
	switch {
	case s.cancel == nil && s.ln != nil:
		// Listening but never served: http.Server does not know the
		// listener.
		_ = s.ln.Close()
	case s.http != nil:
		err = s.http.Shutdown(ctx)
		if err != nil {
			_ = s.http.Close()
		}
	}
	s.wg.Wait()
	return err
}

// queryEscape is url.QueryEscape (kept here so handlers read well).
func queryEscape(s string) string { return url.QueryEscape(s) }
