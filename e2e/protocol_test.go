package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/vclass/vclass/auth"
)

// rawConn speaks the protocol by hand, to send what a client library would not.
type rawConn struct {
	t    *testing.T
	ctx  context.Context
	conn *websocket.Conn
}

func dialRaw(t *testing.T, srv *mediaServer) *rawConn {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, srv.WS, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(1 << 20)
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(d)
		_ = conn.SetWriteDeadline(d)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawConn{t: t, ctx: ctx, conn: conn}
}

type rawResponse struct {
	Response bool            `json:"response"`
	ID       uint64          `json:"id"`
	OK       bool            `json:"ok"`
	Data     json.RawMessage `json:"data"`
	Error    *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// send writes text and returns the next response (skipping notifications).
func (r *rawConn) send(text string) rawResponse {
	r.t.Helper()
	if err := r.conn.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
		r.t.Fatal(err)
	}
	for {
		_, data, err := r.conn.ReadMessage()
		if err != nil {
			r.t.Fatalf("read after %.60q: %v", text, err)
		}
		var res rawResponse
		if err := json.Unmarshal(data, &res); err != nil {
			r.t.Fatalf("server sent non-JSON %q", data)
		}
		if res.Response {
			return res
		}
	}
}

// nextNotification skips to the next notification of method and returns its data.
func (r *rawConn) nextNotification(method string) json.RawMessage {
	r.t.Helper()
	for {
		_, data, err := r.conn.ReadMessage()
		if err != nil {
			r.t.Fatalf("waiting for %s: %v", method, err)
		}
		var n struct {
			Method string          `json:"method"`
			Data   json.RawMessage `json:"data"`
		}
		if json.Unmarshal(data, &n) == nil && n.Method == method {
			return n.Data
		}
	}
}

func (r *rawConn) expectError(text, code string) {
	r.t.Helper()
	res := r.send(text)
	if res.OK || res.Error == nil || res.Error.Code != code {
		r.t.Errorf("%.80s: got ok=%v error=%+v, want error %s", text, res.OK, res.Error, code)
	}
}

func (r *rawConn) expectOK(text string) rawResponse {
	r.t.Helper()
	res := r.send(text)
	if !res.OK {
		r.t.Fatalf("%.80s: error %+v", text, res.Error)
	}
	return res
}

// Malformed, out-of-order and invalid requests get error replies with the
// documented codes, and the connection keeps working.
func TestProtocolErrors(t *testing.T) {
	srv := startMedia(t, loopbackConfig(22400, 22409, ""))
	c := dialRaw(t, srv)
	c.expectError(`{not json`, "badRequest")
	c.expectError(`{"request": true, "method": "ping"}`, "badRequest") // no id
	c.expectError(`{"request": true, "id": 1, "method": "fly"}`, "badRequest")
	c.expectError(`{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "r"}}`, "notJoined")
	c.expectError(`{"request": true, "id": 3, "method": "join", "data": {"displayName": ""}}`, "badRequest")
	c.expectError(`{"request": true, "id": 4, "method": "join", "data": {"displayName": "a", "sources": ["smell:nose"]}}`, "badRequest")
	c.expectError(`{"request": true, "id": 5, "method": "join", "data": {"displayName": "a", "colour": "red"}}`, "badRequest")
	c.expectOK(`{"request": true, "id": 6, "method": "join", "data": {"displayName": "a", "sources": ["video:cam"]}}`)
	c.expectError(`{"request": true, "id": 7, "method": "join", "data": {"displayName": "a"}}`, "alreadyJoined")
	c.expectError(`{"request": true, "id": 8, "method": "produce", "data": {"offer": "v=0"}}`, "notInRoom")
	c.expectError(`{"request": true, "id": 9, "method": "joinRoom", "data": {"roomId": "../etc"}}`, "badRequest")
	c.expectOK(`{"request": true, "id": 10, "method": "joinRoom", "data": {"roomId": "errors"}}`)
	c.expectError(`{"request": true, "id": 11, "method": "joinRoom", "data": {"roomId": "errors"}}`, "alreadyInRoom")
	c.expectError(`{"request": true, "id": 12, "method": "produce", "data": {"offer": "this is not SDP", "producers": []}}`, "badSdp")
	c.expectError(`{"request": true, "id": 13, "method": "answer", "data": {"sdp": "v=0", "version": 7}}`, "badRequest")
	c.expectError(`{"request": true, "id": 14, "method": "closeProducer", "data": {"producerId": "nope"}}`, "unknownProducer")
	c.expectError(`{"request": true, "id": 15, "method": "resumeConsumer", "data": {"consumerId": "nope"}}`, "unknownConsumer")
	c.expectError(`{"request": true, "id": 16, "method": "sendMessage", "data": {"text": "   "}}`, "badRequest")
	c.expectError(`{"request": true, "id": 17, "method": "iceCandidate", "data": {"transport": "sideways", "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}}}`, "badRequest")
	c.expectOK(`{"request": true, "id": 18, "method": "sendMessage", "data": {"text": "still here"}}`)
	c.expectOK(`{"request": true, "id": 19, "method": "ping"}`)
}

// A message over the size limit closes the connection with 1009.
func TestProtocolMessageTooBig(t *testing.T) {
	srv := startMedia(t, loopbackConfig(22410, 22419, ""))
	c := dialRaw(t, srv)
	big := `{"request": true, "id": 1, "method": "sendMessage", "data": {"text": "` + strings.Repeat("x", 300<<10) + `"}}`
	_ = c.conn.WriteMessage(websocket.TextMessage, []byte(big))
	_, _, err := c.conn.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Errorf("read after a message too big: %v, want close 1009", err)
	}
	// The server is fine afterwards.
	c2 := dialRaw(t, srv)
	c2.expectOK(`{"request": true, "id": 1, "method": "ping"}`)
}

// AllowEmptyTickets false (as in the deployment's file): a join without a
// ticket is refused with unauthorized, and counted.
func TestJoinWithoutTicketRefused(t *testing.T) {
	cfg := strings.Replace(loopbackConfig(22420, 22429, ""), `"AllowEmptyTickets": true`, `"AllowEmptyTickets": "false"`, 1)
	srv := startMedia(t, cfg)
	c := dialRaw(t, srv)
	c.expectError(`{"request": true, "id": 1, "method": "join", "data": {"displayName": "a"}}`, "unauthorized")
	c.expectError(`{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "r"}}`, "notJoined")
	if _, body := srv.get(t, "/metrics"); !containsMetric(body, `vclass_join_failures_total{reason="unauthorized"} 1`) {
		t.Errorf("the refusal is not counted in /metrics")
	}
}

// A client whose old connection the server still thinks alive (a network
// change it has not noticed yet) resumes its peer on a new connection; the
// old connection is closed.
func TestResumeTakesOverALiveConnection(t *testing.T) {
	srv := startMedia(t, loopbackConfig(22430, 22439, ""))
	old := dialRaw(t, srv)
	var joined struct {
		PeerID      string `json:"peerId"`
		ResumeToken string `json:"resumeToken"`
	}
	res := old.expectOK(`{"request": true, "id": 1, "method": "join", "data": {"displayName": "ann"}}`)
	if err := json.Unmarshal(res.Data, &joined); err != nil {
		t.Fatal(err)
	}
	old.expectOK(`{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "takeover"}}`)

	// A wrong token is a fresh join, not a takeover.
	fresh := dialRaw(t, srv)
	res = fresh.expectOK(`{"request": true, "id": 1, "method": "join", "data": {"displayName": "ann", "resume": {"peerId": "` + joined.PeerID + `", "token": "wrong"}}}`)
	if strings.Contains(string(res.Data), `"resumed":true`) || strings.Contains(string(res.Data), joined.PeerID) {
		t.Errorf("a wrong token resumed the peer: %s", res.Data)
	}
	fresh2 := dialRaw(t, srv)
	res = fresh2.expectOK(`{"request": true, "id": 1, "method": "join", "data": {"displayName": "ann", "resume": {"peerId": "` + joined.PeerID + `", "token": "` + joined.ResumeToken + `"}}}`)
	var resumed struct {
		PeerID  string `json:"peerId"`
		Resumed bool   `json:"resumed"`
		RoomID  string `json:"roomId"`
	}
	_ = json.Unmarshal(res.Data, &resumed)
	if !resumed.Resumed || resumed.PeerID != joined.PeerID || resumed.RoomID != "takeover" {
		t.Errorf("resume answer %s", res.Data)
	}
	_ = old.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := old.conn.ReadMessage()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Error("the old connection is still open after the resume")
		}
		if err != nil {
			break
		}
	}
	fresh2.expectOK(`{"request": true, "id": 2, "method": "sendMessage", "data": {"text": "back"}}`)
}

// A client flooding requests gets tooManyRequests, and its connection stays usable.
func TestRequestFloodIsLimited(t *testing.T) {
	srv := startMedia(t, loopbackConfig(22440, 22449, ""))
	c := dialRaw(t, srv)
	limited := 0
	for i := 1; i <= 300; i++ {
		res := c.send(fmt.Sprintf(`{"request": true, "id": %d, "method": "ping"}`, i))
		if !res.OK && res.Error != nil && res.Error.Code == "tooManyRequests" {
			limited++
		}
	}
	if limited == 0 {
		t.Error("300 requests at once were all served")
	}
	t.Logf("%d of 300 refused", limited)
}

// With a ticket secret: a valid ticket admits to its room only, with the
// name and role it says; forged or expired tickets are refused.
func TestJoinWithTickets(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	cfg := strings.Replace(loopbackConfig(22450, 22459, ""), `"AllowEmptyTickets": true`,
		`"AllowEmptyTickets": false, "Secret": "`+secret+`"`, 1)
	srv := startMedia(t, cfg)
	mint := func(room string, role auth.Role, ttl time.Duration) string {
		tk, err := auth.Mint(secret, auth.Claims{Room: room, Name: "Teacher Ann", Role: role,
			RegisteredClaims: jwt.RegisteredClaims{Subject: "u-" + string(role)}}, time.Now(), ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	join := func(ticket string) string {
		return `{"request": true, "id": 1, "method": "join", "data": {"displayName": "I am admin", "ticket": "` + ticket + `"}}`
	}
	bad := dialRaw(t, srv)
	bad.expectError(join(mint("math", auth.RoleAdmin, -time.Minute)), "unauthorized")
	bad.expectError(join(mint("math", auth.RoleAdmin, time.Hour)+"x"), "unauthorized")

	wrongRoom := dialRaw(t, srv)
	wrongRoom.expectOK(join(mint("math", auth.RoleAdmin, time.Hour)))
	wrongRoom.expectError(`{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "physics"}}`, "unauthorized")

	teacher := dialRaw(t, srv)
	teacher.expectOK(join(mint("math", auth.RoleAdmin, time.Hour)))
	teacher.expectOK(`{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "math"}}`)
	student := dialRaw(t, srv)
	student.expectOK(join(mint("math", auth.RoleNormal, time.Hour)))
	res := student.expectOK(`{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "math"}}`)
	var room struct {
		Peers []struct {
			DisplayName string `json:"displayName"`
			Role        string `json:"role"`
		} `json:"peers"`
	}
	_ = json.Unmarshal(res.Data, &room)
	if len(room.Peers) != 1 || room.Peers[0].Role != "admin" || room.Peers[0].DisplayName != "Teacher Ann" {
		t.Errorf("the student sees %+v, want the teacher with the ticket's name and role", room.Peers)
	}
	if _, body := srv.get(t, "/metrics"); !containsMetric(body, `vclass_join_failures_total{reason="unauthorized"} 3`) {
		t.Errorf("refusals not counted:\n%s", body)
	}

	// A resumed connection is held to the ticket as the first was: after
	// leaving, it may enter the ticket's room only, with the ticket's role.
	var held struct {
		PeerID      string `json:"peerId"`
		ResumeToken string `json:"resumeToken"`
	}
	first := dialRaw(t, srv)
	_ = json.Unmarshal(first.expectOK(join(mint("math", auth.RoleAdmin, time.Hour))).Data, &held)
	first.expectOK(`{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "math"}}`)
	resumed := dialRaw(t, srv)
	res = resumed.expectOK(`{"request": true, "id": 1, "method": "join", "data": {"displayName": "x", "resume": {"peerId": "` + held.PeerID + `", "token": "` + held.ResumeToken + `"}}}`)
	if !strings.Contains(string(res.Data), `"resumed":true`) {
		t.Fatalf("resume answer %s", res.Data)
	}
	resumed.expectOK(`{"request": true, "id": 2, "method": "leaveRoom"}`)
	resumed.expectError(`{"request": true, "id": 3, "method": "joinRoom", "data": {"roomId": "physics"}}`, "unauthorized")
	res = resumed.expectOK(`{"request": true, "id": 4, "method": "joinRoom", "data": {"roomId": "math"}}`)
	_ = json.Unmarshal(res.Data, &room)
	// The teacher's connection was replaced by `first` (same ticket subject).
	if len(room.Peers) != 1 || room.Peers[0].Role != "normal" {
		t.Errorf("back in math the resumed peer sees %+v, want the student", room.Peers)
	}
	// The student saw the teacher replaced by `first` (leave, join), then
	// `first`'s peer leave and come back through the resumed connection.
	for !strings.Contains(string(student.nextNotification("peerLeaveRoom")), held.PeerID) {
	}
	if got := student.nextNotification("peerJoinRoom"); !strings.Contains(string(got), held.PeerID) || !strings.Contains(string(got), `"role":"admin"`) {
		t.Errorf("the resumed peer came back as %s, want its ticket's role admin", got)
	}
}

// One live connection per user per room: a second join with a ticket of
// the same user replaces the first, which is told why.
func TestSameUserReplacesOldConnection(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	cfg := strings.Replace(loopbackConfig(22460, 22469, ""), `"AllowEmptyTickets": true`,
		`"AllowEmptyTickets": false, "Secret": "`+secret+`"`, 1)
	srv := startMedia(t, cfg)
	ticket, err := auth.Mint(secret, auth.Claims{Room: "math", Role: auth.RoleNormal, Name: "Ann",
		RegisteredClaims: jwt.RegisteredClaims{Subject: "user-7"}}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	join := `{"request": true, "id": 1, "method": "join", "data": {"displayName": "x", "ticket": "` + ticket + `"}}`
	enter := `{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "math"}}`
	first := dialRaw(t, srv)
	first.expectOK(join)
	first.expectOK(enter)
	second := dialRaw(t, srv)
	second.expectOK(join)
	res := second.expectOK(enter)
	if strings.Contains(string(res.Data), `"displayName":"Ann"`) {
		t.Errorf("the new connection still sees the old one in the room: %s", res.Data)
	}
	// The old connection is told why, then closed.
	reason := disconnectReason(first)
	if reason != "replaced" {
		t.Errorf("the old connection got disconnect reason %q, want replaced", reason)
	}
}
