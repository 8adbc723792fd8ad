package signaling

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/vclass/vclass/internal/limit"
)

// ClusterAPI is what the portal API needs of a cluster to answer for the
// rooms of every node: where a room is, where a new one goes, and the
// other nodes. Base URLs are the nodes' internal HTTP addresses.
type ClusterAPI interface {
	// RoomNode is the base URL of the other node holding room; "" when
	// this node holds it or none does.
	RoomNode(ctx context.Context, room string) (string, error)
	// PlaceNode places a new room: "" for this node, else the node's base URL.
	PlaceNode(ctx context.Context, room string) (string, error)
	// OtherNodes are the base URLs of the other live nodes.
	OtherNodes(ctx context.Context) ([]string, error)
}

// forwardedHeader marks a request one node passed to another: it is
// answered locally, never passed on again.
const forwardedHeader = "X-Vclass-Forwarded"

// clusterTimeout bounds a call to another node.
const clusterTimeout = 5 * time.Second

func forwarded(r *http.Request) bool { return r.Header.Get(forwardedHeader) != "" }

// routed serves a request about one room where the room lives.
func (a *api) routed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := a.p.Cluster
		if c == nil || forwarded(r) {
			h(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), clusterTimeout)
		base, err := c.RoomNode(ctx, r.PathValue("room"))
		cancel()
		if err != nil {
			apiError(w, http.StatusServiceUnavailable, "clusterUnavailable", "rooms of other nodes cannot be reached now: "+err.Error())
			return
		}
		if base == "" {
			h(w, r)
			return
		}
		a.forward(w, r, base)
	}
}

// forward passes the request to the node at base, as it came.
func (a *api) forward(w http.ResponseWriter, r *http.Request, base string) {
	target, err := url.Parse(base)
	if err != nil {
		apiError(w, http.StatusBadGateway, "clusterUnavailable", "bad node address "+base)
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set(forwardedHeader, "1")
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			apiError(w, http.StatusBadGateway, "clusterUnavailable", "the room's node does not answer: "+err.Error())
		},
	}
	proxy.ServeHTTP(w, r)
}

// createRouted creates a room on the node the cluster places it on.
func (a *api) createRouted(w http.ResponseWriter, r *http.Request) {
	c := a.p.Cluster
	if c == nil || forwarded(r) {
		a.createRoom(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if !limit.BodyTooLarge(w, err) {
			apiError(w, http.StatusBadRequest, "badRequest", "could not read the body")
		}
		return
	}
	var req struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &req)
	restore := func() { r.Body = io.NopCloser(strings.NewReader(string(body))) }
	restore()
	if !validRoomID(req.ID) {
		a.createRoom(w, r) // it says what is wrong
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), clusterTimeout)
	base, err := c.PlaceNode(ctx, req.ID)
	cancel()
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, "clusterUnavailable", "the cluster cannot place rooms now: "+err.Error())
		return
	}
	if base == "" {
		a.createRoom(w, r)
		return
	}
	r.ContentLength = int64(len(body))
	a.forward(w, r, base)
}

// listAll lists the rooms of every node.
func (a *api) listAll(w http.ResponseWriter, r *http.Request) {
	out := a.localSummaries()
	if c := a.p.Cluster; c != nil && !forwarded(r) {
		ctx, cancel := context.WithTimeout(r.Context(), clusterTimeout)
		defer cancel()
		nodes, err := c.OtherNodes(ctx)
		if err != nil {
			apiError(w, http.StatusServiceUnavailable, "clusterUnavailable", "the other nodes cannot be listed now: "+err.Error())
			return
		}
		for _, base := range nodes {
			rooms, err := a.fetchRooms(ctx, r, base)
			if err != nil {
				apiError(w, http.StatusBadGateway, "clusterUnavailable", "node "+base+" does not answer: "+err.Error())
				return
			}
			out = append(out, rooms...)
		}
	}
	slices.SortFunc(out, func(x, y roomSummary) int { return strings.Compare(x.ID, y.ID) })
	apiJSON(w, http.StatusOK, map[string]any{"rooms": out})
}

func (a *api) fetchRooms(ctx context.Context, in *http.Request, base string) ([]roomSummary, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/api/v1/rooms", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", in.Header.Get("Authorization"))
	req.Header.Set(forwardedHeader, "1")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, &httpStatusError{res.Status}
	}
	var body struct {
		Rooms []roomSummary `json:"rooms"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 16<<20)).Decode(&body); err != nil {
		return nil, err
	}
	return body.Rooms, nil
}

type httpStatusError struct{ status string }

func (e *httpStatusError) Error() string { return "HTTP " + e.status }
