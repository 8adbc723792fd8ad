package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const apiKey = "portal-key-0123456789abcdef0123456789"

// apiCall makes one portal API request with key ("" = none).
func apiCall(t *testing.T, srv *mediaServer, method, path, key, body string) (int, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, srv.URL+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	var out map[string]any
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("%s %s: not JSON: %s", method, path, data)
		}
	}
	return res.StatusCode, out
}

func errorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// The portal mints a ticket, a client joins with it, the portal sees the
// room and its peers, kicks a peer and closes the room; without the key
// nothing is answered but 401.
func TestPortalAPI(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	cfg := strings.Replace(loopbackConfig(22470, 22479, ""), `"AllowEmptyTickets": true`,
		`"AllowEmptyTickets": false, "Secret": "`+secret+`", "ApiKey": "`+apiKey+`"`, 1)
	srv := startMedia(t, cfg)

	for _, tt := range []struct{ method, path string }{
		{"GET", "/api/v1/rooms"}, {"GET", "/api/v1/rooms/math"}, {"DELETE", "/api/v1/rooms/math"},
		{"DELETE", "/api/v1/rooms/math/peers/p"}, {"POST", "/api/v1/tickets"}, {"GET", "/api/v1/nothing"},
	} {
		for _, key := range []string{"", "wrong-key"} {
			if code, body := apiCall(t, srv, tt.method, tt.path, key, `{}`); code != 401 || errorCode(body) != "unauthorized" {
				t.Errorf("%s %s with key %q: %d %v, want 401 unauthorized", tt.method, tt.path, key, code, body)
			}
		}
	}

	code, body := apiCall(t, srv, "POST", "/api/v1/tickets", apiKey, `{"room": "math", "sub": "t-1", "name": "Teacher", "role": "admin"}`)
	if code != 201 {
		t.Fatalf("mint: %d %v", code, body)
	}
	ticket, _ := body["ticket"].(string)
	if code, body := apiCall(t, srv, "POST", "/api/v1/tickets", apiKey, `{"room": "math", "sub": "t-1", "role": "king"}`); code != 400 {
		t.Errorf("mint with a bad role: %d %v", code, body)
	}

	c := dialRaw(t, srv)
	res := c.expectOK(`{"request": true, "id": 1, "method": "join", "data": {"displayName": "x", "ticket": "` + ticket + `"}}`)
	var joined struct {
		PeerID string `json:"peerId"`
	}
	_ = json.Unmarshal(res.Data, &joined)
	c.expectOK(`{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "math"}}`)

	code, body = apiCall(t, srv, "GET", "/api/v1/rooms", apiKey, "")
	if rooms, _ := body["rooms"].([]any); code != 200 || len(rooms) != 1 {
		t.Errorf("list: %d %v", code, body)
	}
	code, body = apiCall(t, srv, "GET", "/api/v1/rooms/math", apiKey, "")
	peers, _ := body["peerList"].([]any)
	if code != 200 || len(peers) != 1 || peers[0].(map[string]any)["role"] != "admin" || peers[0].(map[string]any)["displayName"] != "Teacher" {
		t.Errorf("detail: %d %v", code, body)
	}
	if code, body := apiCall(t, srv, "GET", "/api/v1/rooms/nope", apiKey, ""); code != 404 || errorCode(body) != "roomNotFound" {
		t.Errorf("unknown room: %d %v", code, body)
	}
	if code, _ := apiCall(t, srv, "DELETE", "/api/v1/rooms/math/peers/"+joined.PeerID, apiKey, ""); code != 204 {
		t.Errorf("kick: %d", code)
	}
	if reason := disconnectReason(c); reason != "kicked" {
		t.Errorf("kicked peer told %q", reason)
	}

	d := dialRaw(t, srv)
	d.expectOK(`{"request": true, "id": 1, "method": "join", "data": {"displayName": "x", "ticket": "` + ticket + `"}}`)
	d.expectOK(`{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "math"}}`)
	if code, _ := apiCall(t, srv, "DELETE", "/api/v1/rooms/math", apiKey, ""); code != 204 {
		t.Errorf("close room: %d", code)
	}
	if reason := disconnectReason(d); reason != "roomClosed" {
		t.Errorf("peer of a closed room told %q", reason)
	}
	if code, _ := apiCall(t, srv, "GET", "/api/v1/rooms/math", apiKey, ""); code != 404 {
		t.Errorf("closed room still answers %d", code)
	}
}

// Without a configured key the API is off, whatever the request says.
func TestPortalAPIOff(t *testing.T) {
	srv := startMedia(t, loopbackConfig(22480, 22489, ""))
	if code, body := apiCall(t, srv, "GET", "/api/v1/rooms", "anything", ""); code != 403 || errorCode(body) != "apiDisabled" {
		t.Errorf("API without a key configured: %d %v", code, body)
	}
}

// disconnectReason reads until the connection closes and returns the
// reason of the disconnect notification it got.
func disconnectReason(c *rawConn) string {
	reason := ""
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			return reason
		}
		var n struct {
			Method string `json:"method"`
			Data   struct {
				Reason string `json:"reason"`
			} `json:"data"`
		}
		if json.Unmarshal(data, &n) == nil && n.Method == "disconnect" {
			reason = n.Data.Reason
		}
	}
}

// The portal mutes, unmutes and closes a peer's source.
func TestPortalAPISources(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	cfg := strings.Replace(loopbackConfig(22490, 22499, ""), `"AllowEmptyTickets": true`,
		`"AllowEmptyTickets": true, "Secret": "`+secret+`", "ApiKey": "`+apiKey+`"`, 1)
	srv := startMedia(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	student := joinParticipant(t, ctx, srv.WS, "src", "student", true)
	watcher := joinParticipant(t, ctx, srv.WS, "src", "watcher", false)
	notes := make(chan string, 64)
	for _, m := range []string{"consumerPaused", "consumerResumed", "consumerClosed"} {
		watcher.c.On(m, func(json.RawMessage) { notes <- m })
	}
	key := student.c.PeerID + "/video:cam"
	waitFor(t, 10*time.Second, "the watcher receiving the camera", func() bool { return watcher.count(key) > 0 })
	base := "/api/v1/rooms/src/peers/" + student.c.PeerID + "/sources/video:cam"
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-notes:
			if got != want {
				t.Errorf("watcher got %s, want %s", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("watcher never got %s", want)
		}
	}
	for _, step := range []struct{ method, path, note string }{
		{"POST", base + "/mute", "consumerPaused"},
		{"POST", base + "/unmute", "consumerResumed"},
		{"DELETE", base, "consumerClosed"},
	} {
		if code, body := apiCall(t, srv, step.method, step.path, apiKey, ""); code != 204 {
			t.Fatalf("%s %s: %d %v", step.method, step.path, code, body)
		}
		expect(step.note)
	}
	if code, body := apiCall(t, srv, "DELETE", base, apiKey, ""); code != 404 || errorCode(body) != "sourceNotFound" {
		t.Errorf("closing it again: %d %v", code, body)
	}
}

// The portal creates a room ahead of the class with its own ServeMode
// and a peer limit; the limit refuses the next peer with roomFull.
func TestPortalAPICreateRoom(t *testing.T) {
	cfg := strings.Replace(loopbackConfig(22500, 22509, ""), `"AllowEmptyTickets": true`,
		`"AllowEmptyTickets": true, "ApiKey": "`+apiKey+`"`, 1)
	srv := startMedia(t, cfg)
	code, body := apiCall(t, srv, "POST", "/api/v1/rooms", apiKey, `{"id": "exam", "serveMode": "Invite", "maxPeers": 1}`)
	if code != 201 || body["serveMode"] != "Invite" || body["maxPeers"] != float64(1) {
		t.Fatalf("create: %d %v", code, body)
	}
	if code, body := apiCall(t, srv, "POST", "/api/v1/rooms", apiKey, `{"id": "exam"}`); code != 409 || errorCode(body) != "roomExists" {
		t.Errorf("create twice: %d %v", code, body)
	}
	if code, body := apiCall(t, srv, "POST", "/api/v1/rooms", apiKey, `{"id": "x", "serveMode": "Lecture"}`); code != 400 {
		t.Errorf("bad mode: %d %v", code, body)
	}
	first := dialRaw(t, srv)
	first.expectOK(`{"request": true, "id": 1, "method": "join", "data": {"displayName": "a"}}`)
	res := first.expectOK(`{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "exam"}}`)
	if !strings.Contains(string(res.Data), `"serveMode":"Invite"`) {
		t.Errorf("the room's own mode is not used: %s", res.Data)
	}
	second := dialRaw(t, srv)
	second.expectOK(`{"request": true, "id": 1, "method": "join", "data": {"displayName": "b"}}`)
	second.expectError(`{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "exam"}}`, "roomFull")
}
