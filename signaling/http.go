package signaling

import (
	"net/http"
	"sync/atomic"
)

// HTTPParams assemble the HTTP surface of vclass-media.
type HTTPParams struct {
	Server  *Server
	Metrics *Metrics
	Web     http.Handler // the browser client, served at /
	Ready   *atomic.Bool // false while starting and draining
	API     http.Handler // the portal API, served under /api/v1/
}

// NewHandler routes /ws, /healthz, /readyz, /metrics and the web client.
func NewHandler(p HTTPParams) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /ws", p.Server)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if p.Ready != nil && !p.Ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", p.Metrics.Handler())
	if p.API != nil {
		mux.Handle("/api/v1/", p.API)
	}
	if p.Web != nil {
		mux.Handle("/", p.Web)
	}
	return mux
}
