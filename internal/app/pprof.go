package app

import (
	"net/http"
	"net/http/pprof"
)

// servePprof adds Go's profiler to the metrics listener ([metrics] pprof):
// go tool pprof http://127.0.0.1:5280/debug/pprof/profile?seconds=30 for
// CPU, .../debug/pprof/heap for memory (docs/benchmarks.md).
func servePprof(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
