package recorder

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vclass/vclass/config"
	"github.com/vclass/vclass/internal/limit"
)

// maxJSONBody bounds a request body: a start is a few hundred bytes.
const maxJSONBody = 64 << 10

// HandlerParams configure the HTTP surface.
type HandlerParams struct {
	Service  *Service
	Config   *config.Recorder
	Logger   *slog.Logger
	Gatherer prometheus.Gatherer // for /metrics; nil: none
}

// NewHandler serves the API of docs/recorder-openapi.yaml, /healthz and
// /metrics.
func NewHandler(p HandlerParams) http.Handler {
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	a := &api{svc: p.Service, cfg: p.Config, log: p.Logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSONResponse(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	if p.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(p.Gatherer, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("POST /api/v1/recordings", a.auth(a.start))
	mux.HandleFunc("GET /api/v1/recordings", a.auth(a.list))
	mux.HandleFunc("GET /api/v1/recordings/{id}", a.auth(a.get))
	mux.HandleFunc("DELETE /api/v1/recordings/{id}", a.auth(a.delete))
	mux.HandleFunc("POST /api/v1/recordings/{id}/stop", a.auth(a.stop))
	mux.HandleFunc("GET /api/v1/recordings/{id}/files/{name}", a.auth(a.file))
	mux.HandleFunc("/api/", a.auth(func(w http.ResponseWriter, r *http.Request, _ *config.RecorderClient) {
		apiError(w, http.StatusNotFound, "notFound", "no such API endpoint: "+r.Method+" "+r.URL.Path)
	}))
	return a.limits(mux)
}

type api struct {
	svc *Service
	cfg *config.Recorder
	log *slog.Logger
}

// limits applies the Kestrel limits of the config that make sense here,
// and the rate of each address (Service.RateLimiting).
func (a *api) limits(next http.Handler) http.Handler {
	l := a.cfg.Limits
	perIP := limit.NewPerIP(limit.Rate{PerSecond: l.RequestsPerSecondPerIP, Burst: l.BurstPerIP}, 0)
	maxBody := int64(maxJSONBody)
	if l.MaxRequestBodySize > 0 {
		maxBody = min(maxBody, l.MaxRequestBodySize)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, wait := perIP.Allow(limit.ClientIP(r, l.TrustedProxies), time.Now()); !ok {
			limit.Refuse(w, wait, "too many requests from this address; retry later")
			return
		}
		if l.MaxRequestHeaderCount > 0 && len(r.Header) > l.MaxRequestHeaderCount {
			apiError(w, http.StatusRequestHeaderFieldsTooLarge, "tooManyHeaders", fmt.Sprintf("at most %d request headers", l.MaxRequestHeaderCount))
			return
		}
		if !limit.BoundBody(w, r, maxBody) {
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// auth checks HTTP Basic credentials: the administrator (nil client) or
// one of the portal clients.
func (a *api) auth(h func(http.ResponseWriter, *http.Request, *config.RecorderClient)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if ok {
			if equal(user, a.cfg.Admin.Username) && equal(pass, a.cfg.Admin.Password) {
				h(w, r, nil)
				return
			}
			for i := range a.cfg.Clients {
				c := &a.cfg.Clients[i]
				if equal(user, c.Username) && equal(pass, c.Password) {
					h(w, r, c)
					return
				}
			}
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="vclass-recorder", charset="UTF-8"`)
		apiError(w, http.StatusUnauthorized, "unauthorized", "wrong or missing credentials (HTTP Basic)")
	}
}

// equal compares secrets in constant time, their lengths included.
func equal(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

func (a *api) start(w http.ResponseWriter, r *http.Request, c *config.RecorderClient) {
	var req StartRequest
	dec := json.NewDecoder(r.Body) // bounded by limits
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if !limit.BodyTooLarge(w, err) {
			apiError(w, http.StatusBadRequest, "badRequest", "body must be JSON like {\"room\": \"math-101\"}: "+err.Error())
		}
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		if limit.BodyTooLarge(w, err) {
			return
		}
		// A second value, or garbage, after the first: not the body of one start.
		apiError(w, http.StatusBadRequest, "badRequest", "body must be one JSON object like {\"room\": \"math-101\"}, nothing after it")
		return
	}
	if req.Client != "" {
		if c != nil {
			apiError(w, http.StatusBadRequest, "badRequest", "only the administrator names a client")
			return
		}
		if c = a.cfg.Client(req.Client); c == nil {
			apiError(w, http.StatusBadRequest, "badRequest", "no such client: "+req.Client)
			return
		}
	}
	rec, err := a.svc.Start(c, req)
	if err != nil {
		a.fail(w, err)
		return
	}
	w.Header().Set("Location", "/api/v1/recordings/"+rec.ID)
	writeJSONResponse(w, http.StatusCreated, rec)
}

func (a *api) list(w http.ResponseWriter, _ *http.Request, c *config.RecorderClient) {
	writeJSONResponse(w, http.StatusOK, map[string]any{"recordings": a.svc.List(c)})
}

func (a *api) get(w http.ResponseWriter, r *http.Request, c *config.RecorderClient) {
	rec, err := a.svc.Get(c, r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSONResponse(w, http.StatusOK, rec)
}

func (a *api) stop(w http.ResponseWriter, r *http.Request, c *config.RecorderClient) {
	rec, err := a.svc.Stop(c, r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSONResponse(w, http.StatusAccepted, rec)
}

func (a *api) delete(w http.ResponseWriter, r *http.Request, c *config.RecorderClient) {
	if err := a.svc.Delete(c, r.PathValue("id")); err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) file(w http.ResponseWriter, r *http.Request, c *config.RecorderClient) {
	path, err := a.svc.FilePath(c, r.PathValue("id"), r.PathValue("name"))
	if err != nil {
		a.fail(w, err)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		apiError(w, http.StatusNotFound, "notFound", "file is gone")
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		apiError(w, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	// A growing file is served as far as it is written (Range works on it).
	http.ServeContent(w, r, st.Name(), st.ModTime(), f)
}

// fail maps the service's errors to HTTP, in one place.
func (a *api) fail(w http.ResponseWriter, err error) {
	var full *SlotsFullError
	switch {
	case errors.As(err, &full):
		body := map[string]any{
			"code": "slotsFull", "message": full.Error(),
			"slots": full.Slots, "active": full.Active,
		}
		if full.Stopping > 0 {
			body["slotFrees"] = fmt.Sprintf("when one of the %d recordings now stopping is done, in a few seconds", full.Stopping)
			w.Header().Set("Retry-After", "5")
		} else {
			body["slotFrees"] = "when one of the active recordings is stopped (POST /api/v1/recordings/{id}/stop) or its room closes"
		}
		writeJSONResponse(w, http.StatusTooManyRequests, map[string]any{"error": body})
	case errors.Is(err, ErrNotFound):
		apiError(w, http.StatusNotFound, "notFound", "no such recording or file")
	case errors.Is(err, ErrActive):
		apiError(w, http.StatusConflict, "recordingActive", "stop the recording first; it can be deleted once it is done")
	case errors.Is(err, ErrBadRequest):
		apiError(w, http.StatusBadRequest, "badRequest", err.Error())
	case errors.Is(err, ErrSlotsUnavailable):
		apiError(w, http.StatusServiceUnavailable, "slotsUnavailable", err.Error())
	case errors.Is(err, ErrDraining):
		apiError(w, http.StatusServiceUnavailable, "shuttingDown", "the recorder is shutting down")
	default:
		a.log.Error("API request failed", "err", err)
		apiError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

func writeJSONResponse(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)+1))
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

func apiError(w http.ResponseWriter, status int, code, message string) {
	writeJSONResponse(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}
