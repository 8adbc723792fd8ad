package signaling

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/internal/limit"
	"github.com/vclass/vclass/room"
)

// APIParams configure the portal API.
type APIParams struct {
	Rooms *room.Manager
	// Keys are the bearer keys the portal authenticates with; none turns
	// the API off.
	Keys []string
	// TicketSecret signs the tickets the API mints ("" = it mints none).
	TicketSecret string
	// Cluster, when set, makes the API answer for the rooms of every node.
	Cluster ClusterAPI
	// MaxBody bounds a request body (default 64 KiB; 413 beyond).
	MaxBody int64
	// PerIP, when set, bounds the requests an address makes a second (429
	// beyond); TrustedProxies say whose X-Forwarded-For to believe.
	PerIP          *limit.PerIP
	TrustedProxies []netip.Prefix
	// Refused hears of each request refused by PerIP (for metrics).
	Refused func()
}

// api is the portal's HTTP API under /api/v1/ (docs/api.md).
type api struct {
	p APIParams
}

// maxTicketTTL bounds what a minted ticket may live.
const maxTicketTTL = 24 * time.Hour

// NewAPI routes the portal API; every request needs a bearer key.
func NewAPI(p APIParams) http.Handler {
	if p.MaxBody <= 0 {
		p.MaxBody = 64 << 10
	}
	a := &api{p: p}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/rooms", a.listAll)
	mux.HandleFunc("POST /api/v1/rooms", a.createRouted)
	mux.HandleFunc("GET /api/v1/rooms/{room}", a.routed(a.getRoom))
	mux.HandleFunc("DELETE /api/v1/rooms/{room}", a.routed(a.closeRoom))
	mux.HandleFunc("DELETE /api/v1/rooms/{room}/peers/{peer}", a.routed(a.kickPeer))
	mux.HandleFunc("DELETE /api/v1/rooms/{room}/peers/{peer}/sources/{source}", a.routed(a.closeSource))
	mux.HandleFunc("POST /api/v1/rooms/{room}/peers/{peer}/sources/{source}/mute", a.routed(a.muteSource(true)))
	mux.HandleFunc("POST /api/v1/rooms/{room}/peers/{peer}/sources/{source}/unmute", a.routed(a.muteSource(false)))
	mux.HandleFunc("POST /api/v1/tickets", a.mintTicket)
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, _ *http.Request) {
		apiError(w, http.StatusNotFound, "notFound", "no such endpoint")
	})
	return a.authenticate(mux)
}

// authenticate lets through the requests within the address's rate, with a
// body within MaxBody and a valid key.
func (a *api) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.p.PerIP != nil {
			if ok, wait := a.p.PerIP.Allow(limit.ClientIP(r, a.p.TrustedProxies), time.Now()); !ok {
				if a.p.Refused != nil {
					a.p.Refused()
				}
				limit.Refuse(w, wait, "too many API requests from this address; retry later")
				return
			}
		}
		if !limit.BoundBody(w, r, a.p.MaxBody) {
			return
		}
		if len(a.p.Keys) == 0 {
			apiError(w, http.StatusForbidden, "apiDisabled", "the portal API is off: set VCLASS_API_KEY (or AuthSettings.ApiKey)")
			return
		}
		given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !slices.ContainsFunc(a.p.Keys, func(k string) bool {
			return subtle.ConstantTimeCompare([]byte(given), []byte(k)) == 1
		}) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vclass"`)
			apiError(w, http.StatusUnauthorized, "unauthorized", "a valid bearer API key is required")
			return
		}
		next.ServeHTTP(w, r)
	})
}

type roomSummary struct {
	ID string `json:"id"`
	room.Settings
	Created time.Time `json:"created"`
	Peers   int       `json:"peers"`
}

type roomDetail struct {
	roomSummary
	PeerList []room.PeerInfo `json:"peerList"`
}

func summarize(r *room.Room, peers []room.PeerInfo) roomSummary {
	return roomSummary{ID: r.ID(), Settings: r.Settings(), Created: r.Created(), Peers: len(peers)}
}

// localSummaries are this node's rooms.
func (a *api) localSummaries() []roomSummary {
	out := []roomSummary{}
	for _, r := range a.p.Rooms.Rooms() {
		out = append(out, summarize(r, r.Peers()))
	}
	return out
}

func (a *api) createRoom(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID string `json:"id"`
		room.Settings
	}
	if !decodeBody(w, r, &req) {
		return
	}
	if !validRoomID(req.ID) {
		apiError(w, http.StatusBadRequest, "badRequest", "id must be "+roomIDRule)
		return
	}
	rm, err := a.p.Rooms.CreateRoom(req.ID, req.Settings)
	switch {
	case errors.Is(err, room.ErrRoomExists):
		apiError(w, http.StatusConflict, "roomExists", "the room is live already")
	case errors.Is(err, room.ErrBadRequest):
		apiError(w, http.StatusBadRequest, "badRequest", "serveMode must be Open, Pull or Invite; limits 0 or more")
	case errors.Is(err, room.ErrShuttingDown):
		apiError(w, http.StatusServiceUnavailable, "shuttingDown", "the server is shutting down")
	case errors.Is(err, room.ErrNodeFull):
		apiError(w, http.StatusServiceUnavailable, "nodeFull", err.Error())
	case err != nil:
		apiError(w, http.StatusInternalServerError, "internal", "could not create the room")
	default:
		apiJSON(w, http.StatusCreated, summarize(rm, nil))
	}
}

// decodeBody reads a JSON body strictly (authenticate bounded its size),
// answering 413 or 400 when it cannot.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// Something after the object: the body is not the request (and a
		// cluster's createRouted, which reads it whole, would not have
		// found its id).
		if _, after := dec.Token(); after != io.EOF {
			err = errors.Join(errors.New("more than one JSON value"), after)
		}
	}
	if err != nil {
		if limit.BodyTooLarge(w, err) {
			return false
		}
		apiError(w, http.StatusBadRequest, "badRequest", "bad JSON: "+err.Error())
		return false
	}
	return true
}

func (a *api) getRoom(w http.ResponseWriter, r *http.Request) {
	rm := a.p.Rooms.Room(r.PathValue("room"))
	if rm == nil {
		apiError(w, http.StatusNotFound, "roomNotFound", "no such room")
		return
	}
	peers := rm.Peers()
	apiJSON(w, http.StatusOK, roomDetail{roomSummary: summarize(rm, peers), PeerList: peers})
}

func (a *api) closeRoom(w http.ResponseWriter, r *http.Request) {
	if !a.p.Rooms.CloseRoom(r.PathValue("room"), "roomClosed") {
		apiError(w, http.StatusNotFound, "roomNotFound", "no such room")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) kickPeer(w http.ResponseWriter, r *http.Request) {
	rm := a.p.Rooms.Room(r.PathValue("room"))
	if rm == nil {
		apiError(w, http.StatusNotFound, "roomNotFound", "no such room")
		return
	}
	if !rm.Kick(r.PathValue("peer"), "kicked") {
		apiError(w, http.StatusNotFound, "peerNotFound", "no such peer in the room")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) closeSource(w http.ResponseWriter, r *http.Request) {
	a.onSource(w, r, func(rm *room.Room, peer, source string) bool { return rm.CloseSource(peer, source) })
}

func (a *api) muteSource(muted bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a.onSource(w, r, func(rm *room.Room, peer, source string) bool { return rm.MuteSource(peer, source, muted) })
	}
}

// onSource runs act on the source named by the path.
func (a *api) onSource(w http.ResponseWriter, r *http.Request, act func(rm *room.Room, peer, source string) bool) {
	rm := a.p.Rooms.Room(r.PathValue("room"))
	if rm == nil {
		apiError(w, http.StatusNotFound, "roomNotFound", "no such room")
		return
	}
	if !act(rm, r.PathValue("peer"), r.PathValue("source")) {
		apiError(w, http.StatusNotFound, "sourceNotFound", "that peer publishes no such source")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) mintTicket(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Room       string    `json:"room"`
		Sub        string    `json:"sub"`
		Name       string    `json:"name"`
		Role       auth.Role `json:"role"`
		Sources    []string  `json:"sources"`
		TTLSeconds int       `json:"ttlSeconds"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	// Bounded before it becomes a Duration: a large count of seconds would
	// overflow into any value, a valid one too.
	ttl := time.Hour
	switch {
	case req.TTLSeconds < 0 || req.TTLSeconds > int(maxTicketTTL/time.Second):
		ttl = -1 // refused below
	case req.TTLSeconds > 0:
		ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	switch {
	case !validRoomID(req.Room):
		apiError(w, http.StatusBadRequest, "badRequest", "room must be "+roomIDRule)
		return
	case req.Sub == "":
		apiError(w, http.StatusBadRequest, "badRequest", "sub (the portal's user id) is required")
		return
	case !req.Role.Valid():
		apiError(w, http.StatusBadRequest, "badRequest", "role must be admin, normal or recorder")
		return
	case ttl <= 0 || ttl > maxTicketTTL:
		apiError(w, http.StatusBadRequest, "badRequest", "ttlSeconds must be 1 to 86400")
		return
	}
	for _, s := range req.Sources {
		if !sourcePattern.MatchString(s) {
			apiError(w, http.StatusBadRequest, "badRequest", "bad source "+s)
			return
		}
	}
	if a.p.TicketSecret == "" {
		apiError(w, http.StatusConflict, "noTicketSecret", "no ticket secret is configured (VCLASS_AUTH_SECRET)")
		return
	}
	now := time.Now()
	ticket, err := auth.Mint(a.p.TicketSecret, auth.Claims{
		Room: req.Room, Name: req.Name, Role: req.Role, Sources: req.Sources,
		RegisteredClaims: jwt.RegisteredClaims{Subject: req.Sub},
	}, now, ttl)
	if err != nil {
		apiError(w, http.StatusInternalServerError, "internal", "could not sign the ticket")
		return
	}
	apiJSON(w, http.StatusCreated, map[string]any{"ticket": ticket, "expiresAt": now.Add(ttl).UTC().Truncate(time.Second)})
}

func apiJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code, message string) {
	apiJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}
