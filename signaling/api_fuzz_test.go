package signaling

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/config"
	"github.com/vclass/vclass/room"
)

const (
	fuzzAPIKey       = "fuzz-api-key-fuzz-api-key-fuzz-api-key"
	fuzzTicketSecret = "fuzz-ticket-secret-fuzz-ticket-secret"
	fuzzMaxRequests  = 16
)

// localCluster is a cluster of one node: every room is here. It takes the
// API through its cluster paths (createRouted reads the body twice).
type localCluster struct{}

func (localCluster) RoomNode(context.Context, string) (string, error)  { return "", nil }
func (localCluster) PlaceNode(context.Context, string) (string, error) { return "", nil }
func (localCluster) OtherNodes(context.Context) ([]string, error)      { return nil, nil }

var _ ClusterAPI = localCluster{}

// nopSink is a client that hears nothing.
type nopSink struct{}

func (nopSink) Notify(string, any) {}
func (nopSink) Close()             {}

// FuzzPortalAPI sends the portal API requests cut from the input at
// newlines, each "METHOD PATH BODY" (a method starting with "-" goes with
// a wrong key; "JOIN room peer" puts a peer in a room, as a client would).
// No answer is a 5xx; every 4xx carries a JSON error with a code and a
// message; after each request the API's room list is the manager's, each
// room's detail agrees with the list, a room created is there with the
// settings asked for, a room deleted or a peer kicked is gone, a refused
// create made no room, and a minted ticket verifies with what was asked.
func FuzzPortalAPI(f *testing.F) {
	for _, seed := range []string{
		"POST /api/v1/rooms {\"id\": \"math\", \"serveMode\": \"Invite\", \"maxPeers\": 2}\nGET /api/v1/rooms \nGET /api/v1/rooms/math \nDELETE /api/v1/rooms/math \nGET /api/v1/rooms/math ",
		"POST /api/v1/rooms {\"id\": \"a\"}\nPOST /api/v1/rooms {\"id\": \"a\"}\nPOST /api/v1/rooms {\"id\": \"../x\"}\nPOST /api/v1/rooms {\"id\": \"b\", \"serveMode\": \"Lecture\"}\nPOST /api/v1/rooms {\"id\": \"c\", \"maxPeers\": -1}\nPOST /api/v1/rooms {\"id\": \"d\", \"colour\": 1}\nPOST /api/v1/rooms [\nPOST /api/v1/rooms {\"id\": \"e\"} {}",
		"JOIN math p1\nJOIN math p2\nDELETE /api/v1/rooms/math/peers/p1 \nDELETE /api/v1/rooms/math/peers/p1 \nDELETE /api/v1/rooms/nope/peers/p2 \nGET /api/v1/rooms/math ",
		"JOIN math p1\nPOST /api/v1/rooms/math/peers/p1/sources/audio:mic/mute \nPOST /api/v1/rooms/math/peers/p1/sources/audio:mic/unmute \nDELETE /api/v1/rooms/math/peers/p1/sources/video:cam \nPUT /api/v1/rooms/math {}",
		"POST /api/v1/tickets {\"room\": \"math\", \"sub\": \"u-1\", \"name\": \"Ann\", \"role\": \"admin\", \"sources\": [\"video:cam\"], \"ttlSeconds\": 600}\nPOST /api/v1/tickets {\"room\": \"math\", \"sub\": \"\", \"role\": \"admin\"}\nPOST /api/v1/tickets {\"room\": \"math\", \"sub\": \"u\", \"role\": \"teacher\"}\nPOST /api/v1/tickets {\"room\": \"math\", \"sub\": \"u\", \"role\": \"normal\", \"ttlSeconds\": 86401}\nPOST /api/v1/tickets {\"room\": \"math\", \"sub\": \"u\", \"role\": \"recorder\", \"ttlSeconds\": 9223372036}",
		"-GET /api/v1/rooms \n-POST /api/v1/rooms {\"id\": \"x\"}\nGET /api/v1/nothing \nGET /api/v1/rooms/%zz \nGET /api/v1/rooms/a/../b \nDELETE /api/v1/rooms/ ",
	} {
		f.Add(false, seed)
		f.Add(true, seed)
	}
	f.Fuzz(func(t *testing.T, clustered bool, raw string) {
		af := newAPIFuzz(t, clustered)
		defer af.rooms.Drain("serverShutdown")
		for _, line := range strings.SplitN(raw, "\n", fuzzMaxRequests) {
			af.do(line)
			af.checkState(line)
		}
	})
}

// apiFuzz plays one input.
type apiFuzz struct {
	t       *testing.T
	rooms   *room.Manager
	handler http.Handler
	log     []string
}

func newAPIFuzz(t *testing.T, clustered bool) *apiFuzz {
	rooms := room.NewManager(room.Params{ServeMode: config.ServeOpen, EmptyGrace: time.Minute})
	p := APIParams{Rooms: rooms, Keys: []string{fuzzAPIKey}, TicketSecret: fuzzTicketSecret}
	if clustered {
		p.Cluster = localCluster{}
	}
	// Mounted as NewHandler mounts it.
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", NewAPI(p))
	return &apiFuzz{t: t, rooms: rooms, handler: mux}
}

func (af *apiFuzz) fatalf(format string, a ...any) {
	af.t.Helper()
	af.t.Fatalf("%s\nrequests: %q", fmt.Sprintf(format, a...), af.log)
}

// do sends one request and checks its answer.
func (af *apiFuzz) do(line string) {
	af.t.Helper()
	af.log = append(af.log, line)
	method, rest, _ := strings.Cut(line, " ")
	path, body, _ := strings.Cut(rest, " ")
	if method == "JOIN" {
		// As joinRoom would: a room id it takes, a peer id of its own.
		roomID, peerID := path, strings.TrimSpace(body)
		if validRoomID(roomID) && roomIDPattern.MatchString(peerID) {
			_, _, _ = af.rooms.Join(roomID, room.PeerParams{ID: peerID, DisplayName: "fuzz", Sources: []string{"audio:mic"}, Sink: nopSink{}})
		}
		return
	}
	key := fuzzAPIKey
	if wrong, ok := strings.CutPrefix(method, "-"); ok {
		method, key = wrong, "not-the-key"
	}
	if !strings.HasPrefix(path, "/api/v1/") {
		path = "/api/v1/" + strings.TrimPrefix(path, "/")
	}
	req, err := http.NewRequest(method, "http://vclass.test"+path, strings.NewReader(body))
	if err != nil {
		return // not a request a client could send
	}
	req.Header.Set("Authorization", "Bearer "+key)
	roomsBefore := af.roomIDs()
	rec := httptest.NewRecorder()
	af.handler.ServeHTTP(rec, req)
	res := rec.Result()
	status := res.StatusCode
	switch {
	case status >= 500:
		af.fatalf("%s %s: %d %s", method, path, status, rec.Body)
	case status >= 400:
		af.checkError(method, path, rec)
		if key != fuzzAPIKey && status != http.StatusUnauthorized {
			af.fatalf("%s %s with a wrong key: %d, want 401", method, path, status)
		}
	case status >= 300:
		// The mux cleans paths (a/../b, //) with a redirect.
		if res.Header.Get("Location") == "" {
			af.fatalf("%s %s: %d without a Location", method, path, status)
		}
		return
	case key != fuzzAPIKey:
		af.fatalf("%s %s with a wrong key: %d", method, path, status)
	}
	if key != fuzzAPIKey {
		if after := af.roomIDs(); !slices.Equal(after, roomsBefore) {
			af.fatalf("%s %s with a wrong key: the rooms %v became %v", method, path, roomsBefore, after)
		}
		return
	}
	af.checkAnswer(method, req.URL.Path, body, status, rec.Body.Bytes(), roomsBefore)
}

// checkError: a 4xx is a JSON error with a code and a message.
func (af *apiFuzz) checkError(method, path string, rec *httptest.ResponseRecorder) {
	af.t.Helper()
	var e struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		af.fatalf("%s %s: %d with Content-Type %q: %s", method, path, rec.Code, ct, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == nil || e.Error.Code == "" || e.Error.Message == "" {
		af.fatalf("%s %s: %d with body %s, want a JSON error (%v)", method, path, rec.Code, rec.Body, err)
	}
}

// checkAnswer checks what a request did against what it asked.
func (af *apiFuzz) checkAnswer(method, path, body string, status int, answer []byte, roomsBefore []string) {
	af.t.Helper()
	segs := strings.Split(strings.TrimPrefix(path, "/api/v1/"), "/")
	switch {
	case method == http.MethodPost && path == "/api/v1/rooms":
		af.checkCreate(body, status, answer, roomsBefore)
	case method == http.MethodPost && path == "/api/v1/tickets":
		af.checkTicket(body, status, answer)
	case method == http.MethodDelete && len(segs) == 2 && segs[0] == "rooms" && status < 300:
		if af.rooms.Room(segs[1]) != nil {
			af.fatalf("DELETE %s: %d, and the room is still there", path, status)
		}
	case method == http.MethodDelete && len(segs) == 4 && segs[0] == "rooms" && segs[2] == "peers" && status < 300:
		if r := af.rooms.Room(segs[1]); r != nil && slices.ContainsFunc(r.Peers(), func(p room.PeerInfo) bool { return p.PeerID == segs[3] }) {
			af.fatalf("DELETE %s: %d, and the peer is still there", path, status)
		}
	}
	if status == http.StatusNotFound && len(segs) >= 2 && segs[0] == "rooms" && strings.Contains(string(answer), `"roomNotFound"`) {
		if af.rooms.Room(segs[1]) != nil {
			af.fatalf("%s %s: roomNotFound, yet room %q is live", method, path, segs[1])
		}
	}
}

// checkCreate: a room made is there as asked; a refusal made none; only
// one JSON object with known fields, a valid id, mode and limits passes.
func (af *apiFuzz) checkCreate(body string, status int, answer []byte, roomsBefore []string) {
	af.t.Helper()
	var want struct {
		ID            string           `json:"id"`
		ServeMode     config.ServeMode `json:"serveMode"`
		MaxPeers      int              `json:"maxPeers"`
		MaxPublishers int              `json:"maxPublishers"`
	}
	valid := strictJSON(body, &want) && validRoomID(want.ID) &&
		(want.ServeMode == "" || want.ServeMode.Valid()) && want.MaxPeers >= 0 && want.MaxPublishers >= 0
	if status != http.StatusCreated {
		if after := af.roomIDs(); !slices.Equal(after, roomsBefore) {
			af.fatalf("POST /api/v1/rooms %s: %d, yet the rooms %v became %v", body, status, roomsBefore, after)
		}
		if valid && (status != http.StatusConflict || !slices.Contains(roomsBefore, want.ID)) {
			af.fatalf("POST /api/v1/rooms %s: %d for a good request", body, status)
		}
		return
	}
	if !valid {
		af.fatalf("POST /api/v1/rooms %s: 201 for a bad request", body)
	}
	var got roomSummary
	if err := json.Unmarshal(answer, &got); err != nil {
		af.fatalf("POST /api/v1/rooms: 201 with %s: %v", answer, err)
	}
	if want.ServeMode == "" {
		want.ServeMode = config.ServeOpen
	}
	r := af.rooms.Room(want.ID)
	if r == nil || got.ID != want.ID || got.ServeMode != want.ServeMode || got.MaxPeers != want.MaxPeers ||
		got.MaxPublishers != want.MaxPublishers || r.Settings() != got.Settings {
		af.fatalf("POST /api/v1/rooms %s: answered %s; the room live is %v", body, answer, r)
	}
}

// checkTicket: a ticket minted verifies, with the claims asked for and
// the lifetime asked for (1 to 86400 s, 3600 by default).
func (af *apiFuzz) checkTicket(body string, status int, answer []byte) {
	af.t.Helper()
	var want struct {
		Room       string    `json:"room"`
		Sub        string    `json:"sub"`
		Name       string    `json:"name"`
		Role       auth.Role `json:"role"`
		Sources    []string  `json:"sources"`
		TTLSeconds *int64    `json:"ttlSeconds"`
	}
	ttl := int64(3600)
	valid := strictJSON(body, &want) && validRoomID(want.Room) && want.Sub != "" && want.Role.Valid() &&
		!slices.ContainsFunc(want.Sources, func(s string) bool { return !sourcePattern.MatchString(s) })
	if valid && want.TTLSeconds != nil && *want.TTLSeconds != 0 {
		ttl = *want.TTLSeconds
		valid = ttl >= 1 && ttl <= 86400
	}
	if status != http.StatusCreated {
		if valid {
			af.fatalf("POST /api/v1/tickets %s: %d for a good request", body, status)
		}
		return
	}
	if !valid {
		af.fatalf("POST /api/v1/tickets %s: 201 for a bad request: %s", body, answer)
	}
	var got struct {
		Ticket    string    `json:"ticket"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
	if err := json.Unmarshal(answer, &got); err != nil {
		af.fatalf("POST /api/v1/tickets: 201 with %s: %v", answer, err)
	}
	c, err := auth.NewVerifier(fuzzTicketSecret).Verify(got.Ticket, time.Now())
	if err != nil {
		af.fatalf("POST /api/v1/tickets %s: the ticket does not verify: %v", body, err)
	}
	if c.Room != want.Room || c.Subject != want.Sub || c.Name != want.Name || c.Role != want.Role || !slices.Equal(c.Sources, want.Sources) {
		af.fatalf("POST /api/v1/tickets %s: claims %+v", body, c)
	}
	if life := time.Until(c.ExpiresAt.Time); life > time.Duration(ttl)*time.Second || life < time.Duration(ttl)*time.Second-time.Minute {
		af.fatalf("POST /api/v1/tickets %s: the ticket lives %v, want %d s", body, life, ttl)
	}
}

// strictJSON decodes body as exactly one JSON object with known fields.
func strictJSON(body string, v any) bool {
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(v) != nil {
		return false
	}
	_, err := dec.Token()
	return err == io.EOF && bytes.TrimSpace([]byte(body))[0] == '{'
}

// roomIDs are the manager's rooms, sorted.
func (af *apiFuzz) roomIDs() []string {
	var ids []string
	for _, r := range af.rooms.Rooms() {
		ids = append(ids, r.ID())
	}
	slices.Sort(ids)
	return ids
}

// checkState: the API lists the manager's rooms, sorted, each once, with
// its peer count, and each room's detail agrees.
func (af *apiFuzz) checkState(line string) {
	af.t.Helper()
	get := func(path string) (int, []byte) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+fuzzAPIKey)
		rec := httptest.NewRecorder()
		af.handler.ServeHTTP(rec, req)
		return rec.Code, rec.Body.Bytes()
	}
	status, body := get("/api/v1/rooms")
	var list struct {
		Rooms []roomSummary `json:"rooms"`
	}
	if err := json.Unmarshal(body, &list); status != http.StatusOK || err != nil {
		af.fatalf("after %q: GET /api/v1/rooms: %d %s", line, status, body)
	}
	var ids []string
	for _, s := range list.Rooms {
		ids = append(ids, s.ID)
		r := af.rooms.Room(s.ID)
		if r == nil {
			af.fatalf("after %q: room %q is listed, not live", line, s.ID)
		}
		status, body := get("/api/v1/rooms/" + s.ID)
		var d roomDetail
		if err := json.Unmarshal(body, &d); status != http.StatusOK || err != nil || d.ID != s.ID || d.Peers != len(d.PeerList) ||
			d.Peers != s.Peers || d.Settings != s.Settings || d.Settings != r.Settings() {
			af.fatalf("after %q: room %q is listed as %+v; its detail is %d %s", line, s.ID, s, status, body)
		}
	}
	if want := af.roomIDs(); !slices.Equal(ids, want) {
		af.fatalf("after %q: the API lists rooms %v; live are %v", line, ids, want)
	}
}
