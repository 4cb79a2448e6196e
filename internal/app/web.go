package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"stoa.im/stoa/internal/certs"
	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/mod/register"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/web"
	"stoa.im/stoa/internal/xmpp/jid"
)

// registrationModes returns the [register] mode of each host, which the
// web pages follow (the register feature enforces it on every sign-up).
func registrationModes(f *config.File) func(host string) string {
	rc, ok := f.Section(register.Feature.Name).(register.Config)
	if !ok {
		return func(string) string { return web.ModeClosed }
	}
	return func(host string) string {
		mode := rc.Mode
		for _, o := range rc.Hosts {
			if j, err := jid.Parse(o.Host); err == nil && j.Domain() == host && o.Mode != "" {
				mode = o.Mode
			}
		}
		return mode
	}
}

// startWeb builds the web listener and opens it; nothing is served until
// its Serve. It returns nil when [http] listen is empty.
func startWeb(f *config.File, cfg web.Config, srv *server.Server, cs *certs.Store, secret []byte, log *slog.Logger) (*web.Server, error) {
	if cfg.Listen == "" {
		return nil, nil
	}
	w, err := web.New(web.Options{
		Config: cfg, Server: srv, Certs: cs, Secret: secret, Logger: log, Mode: registrationModes(f),
	})
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	if err := w.Listen(); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	return w, nil
}

// stopWeb shuts the web listener down within d.
func stopWeb(w *web.Server, d time.Duration, log *slog.Logger) {
	if w == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := w.Shutdown(ctx); err != nil {
		log.Warn("web listener did not stop in time", "err", err)
	}
}
