package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"stoa.im/stoa/internal/server"
)

// metricsServer is the internal HTTP listener: /metrics and /healthz.
type metricsServer struct {
	ln   net.Listener
	http *http.Server
	log  *slog.Logger
	wg   sync.WaitGroup
}

func listenMetrics(addr string, pprof bool, srv *server.Server, log *slog.Logger) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("app: metrics: listening on %s: %w (change [metrics] listen, or set it to \"\" to turn it off)", addr, err)
	}
	log = log.With("feature", "metrics")
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(srv.Registry(), promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		MaxRequestsInFlight: 4,
		Timeout:             30 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	if pprof {
		servePprof(mux) // pprof.go
	}
	return &metricsServer{
		ln:  ln,
		log: log,
		http: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
	}, nil
}

func (m *metricsServer) addr() net.Addr { return m.ln.Addr() }

func (m *metricsServer) serve() {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.http.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("metrics listener stopped", "err", err)
		}
	}()
}

// shutdown stops the listener, waiting for requests in flight until ctx ends.
func (m *metricsServer) shutdown(ctx context.Context) error {
	err := m.http.Shutdown(ctx)
	if err != nil {
		_ = m.http.Close()
	}
	m.wg.Wait()
	return err
}
