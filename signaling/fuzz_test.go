package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vclass/vclass/config"
	"github.com/vclass/vclass/room"
	"github.com/vclass/vclass/sfu"
	"github.com/vclass/vclass/signaling/wire"
)

// fuzzMaxMessage is the fuzz server's message limit: small, so that inputs
// reach the close for a message too big.
const fuzzMaxMessage = 8 << 10

// fuzzMaxMessages bounds the messages of one input.
const fuzzMaxMessages = 16

// fuzzWait bounds every wait for the server (a response, a session's end).
const fuzzWait = 5 * time.Second

// documentedErrors are the codes docs/protocol.md lists per method, beyond
// badRequest and tooManyRequests, which any request may get.
var documentedErrors = map[string][]string{
	"join":                       {codeAlreadyJoined, codeUnauthorized, codeShuttingDown},
	"joinRoom":                   {codeNotJoined, codeAlreadyInRoom, codeRoomFull, codeNoRoom, codeRedirect, codeClusterDown, codeShuttingDown, codeUnauthorized},
	"produce":                    {codeNotInRoom, codeSourceNotAllowed, codeSourceBusy, codeBadSDP, codeRoomFull},
	"answer":                     {codeNotInRoom, codeBadSDP, codeStaleVersion},
	"iceCandidate":               {codeNotInRoom},
	"restartIce":                 {codeNotInRoom},
	"closeProducer":              {codeNotInRoom, codeUnknownProducer},
	"pauseProducer":              {codeNotInRoom, codeUnknownProducer},
	"resumeProducer":             {codeNotInRoom, codeUnknownProducer},
	"pauseConsumer":              {codeNotInRoom, codeUnknownConsumer},
	"resumeConsumer":             {codeNotInRoom, codeUnknownConsumer},
	"setConsumerPreferredLayers": {codeNotInRoom, codeUnknownConsumer},
	"setConsumerView":            {codeNotInRoom, codeUnknownConsumer},
	"sendMessage":                {codeNotInRoom},
	"leaveRoom":                  {codeNotInRoom},
	"pull":                       {codeNotInRoom, codeUnknownPeer},
	"invite":                     {codeNotInRoom, codeForbidden, codeUnknownPeer},
	"deinvite":                   {codeNotInRoom, codeForbidden, codeUnknownPeer},
	"mutePeer":                   {codeNotInRoom, codeForbidden, codeUnknownPeer, codeUnknownProducer},
	"requestProduce":             {codeNotInRoom, codeForbidden},
	"ping":                       {},
}

// fuzzServer is one signaling server over loopback for a whole fuzz run.
type fuzzServer struct {
	srv   *Server
	rooms *room.Manager
	url   string
}

func newFuzzServer(f *testing.F) *fuzzServer {
	engine, err := sfu.NewEngine(sfu.EngineParams{
		RTC: config.RTC{
			MinPort: 29600, MaxPort: 29699,
			Listen: []config.Listen{{IP: "127.0.0.1", AnnouncedIP: "127.0.0.1"}},
		},
		Codecs: []config.Codec{
			{Kind: "audio", MimeType: "audio/opus", ClockRate: 48000, Channels: 2},
			{Kind: "video", MimeType: "video/VP8", ClockRate: 90000},
		},
	})
	if err != nil {
		f.Fatal(err)
	}
	// Rooms close soon after their last peer, so that the rooms an input
	// names do not pile up over a run.
	rooms := room.NewManager(room.Params{Engine: engine, ServeMode: config.ServeOpen, EmptyGrace: 100 * time.Millisecond})
	// A peer whose connection the server closed (a message too big) is
	// kept for a resume, briefly.
	srv := NewServer(Params{Rooms: rooms, AllowEmptyTickets: true, MaxMessage: fuzzMaxMessage, ResumeWindow: 50 * time.Millisecond})
	hs := httptest.NewServer(srv)
	f.Cleanup(func() {
		hs.Close()
		rooms.Drain("serverShutdown")
		engine.Close()
	})
	return &fuzzServer{srv: srv, rooms: rooms, url: "ws" + strings.TrimPrefix(hs.URL, "http")}
}

// FuzzSignalingMessages sends the real server, over a fresh WebSocket, a
// few text (or binary) messages cut from the input at newlines, after an
// optional valid join (and joinRoom). Every message gets exactly one
// response, in order: a frame that is not a well-formed request gets
// badRequest with its id when it had one; a request gets its id back and,
// when refused, a code docs/protocol.md names for its method, never
// internal. The server closes the connection only for a message over the
// limit (1009); otherwise a ping after the input still works. When the
// client has closed, the session ends and its peer has left.
func FuzzSignalingMessages(f *testing.F) {
	for _, seed := range fuzzSignalingSeeds() {
		f.Add(seed.prelude, seed.binary, seed.messages)
	}
	fs := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, prelude uint8, binary uint16, raw string) {
		c := fs.dial(t)
		switch prelude % 3 {
		case 2:
			c.mustOK(`{"request": true, "id": 1, "method": "join", "data": {"displayName": "fuzz", "sources": ["audio:mic", "video:cam", "video:screen"]}}`)
			c.mustOK(`{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "fuzz"}}`)
		case 1:
			c.mustOK(`{"request": true, "id": 1, "method": "join", "data": {"displayName": "fuzz"}}`)
		}
		open := true
		for i, msg := range strings.SplitN(raw, "\n", fuzzMaxMessages) {
			if open = c.exchange(msg, binary&(1<<i) != 0); !open {
				break
			}
		}
		if open {
			c.mustOK(`{"request": true, "id": 4000000000, "method": "ping"}`)
		} else {
			// The server is fine afterwards.
			c2 := fs.dial(t)
			c2.mustOK(`{"request": true, "id": 1, "method": "ping"}`)
			c2.closeAndWait()
		}
		c.closeAndWait()
		if open {
			// Closed properly by the client: its peers left at once.
			for _, r := range fs.rooms.Rooms() {
				for _, p := range r.Peers() {
					if slices.Contains(c.peerIDs, p.PeerID) {
						c.fatalf("peer %s is still in room %s after its connection closed", p.PeerID, r.ID())
					}
				}
			}
		}
	})
}

// fuzzConn is the test's end of one connection.
type fuzzConn struct {
	t    *testing.T
	fs   *fuzzServer
	conn *websocket.Conn
	log  []string // what was sent, for failures
	// peerIDs are the ids joins on this connection were given.
	peerIDs []string
}

func (fs *fuzzServer) dial(t *testing.T) *fuzzConn {
	d := websocket.Dialer{HandshakeTimeout: fuzzWait}
	conn, _, err := d.Dial(fs.url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	conn.SetReadLimit(1 << 20)
	return &fuzzConn{t: t, fs: fs, conn: conn}
}

func (c *fuzzConn) fatalf(format string, a ...any) {
	c.t.Helper()
	c.t.Fatalf("%s\nsent: %q", fmt.Sprintf(format, a...), c.log)
}

// fuzzResponse is a response as a client reads it, with what the
// envelope's fields were on the wire.
type fuzzResponse struct {
	Response *bool          `json:"response"`
	ID       *uint64        `json:"id"`
	OK       *bool          `json:"ok"`
	Data     map[string]any `json:"data"`
	Error    *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// send writes one frame.
func (c *fuzzConn) send(msg string, binary bool) {
	c.t.Helper()
	typ := websocket.TextMessage
	if binary {
		typ = websocket.BinaryMessage
	}
	c.log = append(c.log, msg)
	_ = c.conn.SetWriteDeadline(time.Now().Add(fuzzWait))
	if err := c.conn.WriteMessage(typ, []byte(msg)); err != nil {
		c.fatalf("write: %v", err)
	}
}

// next reads up to the next response; every frame on the way must be a
// notification. A close comes back as the error.
func (c *fuzzConn) next() (fuzzResponse, error) {
	c.t.Helper()
	// One deadline for the response, however many notifications come first.
	_ = c.conn.SetReadDeadline(time.Now().Add(fuzzWait))
	for {
		typ, data, err := c.conn.ReadMessage()
		if err != nil {
			return fuzzResponse{}, err
		}
		if typ != websocket.TextMessage {
			c.fatalf("the server sent a frame of type %d", typ)
		}
		var env struct {
			Notification bool   `json:"notification"`
			Method       string `json:"method"`
		}
		if err := json.Unmarshal(data, &env); err != nil {
			c.fatalf("the server sent a frame that is not JSON: %q", data)
		}
		if env.Notification {
			if env.Method == "" || env.Method == "disconnect" {
				c.fatalf("the server sent notification %s", data)
			}
			continue
		}
		var res fuzzResponse
		if err := json.Unmarshal(data, &res); err != nil || res.Response == nil || !*res.Response || res.OK == nil {
			c.fatalf("the server sent %s: neither a notification nor a response (%v)", data, err)
		}
		if *res.OK == (res.Error != nil) || (res.Error != nil && res.Error.Code == "") {
			c.fatalf("response %s: ok and error disagree", data)
		}
		if id, ok := res.Data["peerId"].(string); ok && *res.OK {
			c.peerIDs = append(c.peerIDs, id)
		}
		return res, nil
	}
}

func (c *fuzzConn) mustOK(msg string) {
	c.t.Helper()
	c.send(msg, false)
	res, err := c.next()
	if err != nil {
		c.fatalf("%s: %v", msg, err)
	}
	if !*res.OK {
		c.fatalf("%s: error %+v", msg, *res.Error)
	}
}

// exchange sends one message and checks its response; false when the
// server closed the connection (as documented) instead.
func (c *fuzzConn) exchange(msg string, binary bool) bool {
	c.t.Helper()
	c.send(msg, binary)
	res, err := c.next()
	if err != nil {
		var ce *websocket.CloseError
		if len(msg) > fuzzMaxMessage && errors.As(err, &ce) && ce.Code == websocket.CloseMessageTooBig {
			return false
		}
		c.fatalf("after a message of %d bytes: %v", len(msg), err)
	}
	if len(msg) > fuzzMaxMessage {
		c.fatalf("a message of %d bytes (the limit is %d) got a response", len(msg), fuzzMaxMessage)
	}
	id, method, wellFormed := envelope(msg)
	if binary {
		id, wellFormed = 0, false
	}
	gotID := uint64(0)
	if res.ID != nil {
		gotID = *res.ID
	}
	if gotID != id || (res.ID != nil && id == 0) {
		c.fatalf("response id %v to %q, want %d", res.ID, msg, id)
	}
	code := ""
	if res.Error != nil {
		code = res.Error.Code
	}
	allowed, known := documentedErrors[method]
	switch {
	case !wellFormed || !known:
		if code != codeBadRequest {
			c.fatalf("%q got code %q, want badRequest", msg, code)
		}
	case code == codeInternal:
		c.fatalf("%q: internal error (%s)", msg, res.Error.Message)
	case code != "" && code != codeBadRequest && code != codeTooManyRequests && !slices.Contains(allowed, code):
		c.fatalf("%q got code %q, which docs/protocol.md does not list for %s", msg, code, method)
	}
	return true
}

// envelope reads a message as docs/protocol.md describes a request: a JSON
// object with request true, an integer id (positive) and a string method.
// id is what could be read of the id (0: none).
func envelope(msg string) (id uint64, method string, wellFormed bool) {
	var env struct {
		Request bool   `json:"request"`
		ID      uint64 `json:"id"`
		Method  string `json:"method"`
	}
	if json.Unmarshal([]byte(msg), &env) != nil {
		return 0, "", false
	}
	return env.ID, env.Method, env.Request && env.ID != 0 && env.Method != ""
}

// closeAndWait closes the connection as a browser tab does and waits for
// the server to end the session.
func (c *fuzzConn) closeAndWait() {
	c.t.Helper()
	_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(fuzzWait))
	_ = c.conn.SetReadDeadline(time.Now().Add(fuzzWait))
	for {
		if _, _, err := c.conn.ReadMessage(); err != nil {
			break
		}
	}
	_ = c.conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), fuzzWait)
	defer cancel()
	c.fs.srv.Wait(ctx)
	if ctx.Err() != nil {
		c.fatalf("the session did not end within %v of the close", fuzzWait)
	}
}

type signalingSeed struct {
	prelude  uint8
	binary   uint16
	messages string
}

func fuzzSignalingSeeds() []signalingSeed {
	lines := func(msgs ...string) string { return strings.Join(msgs, "\n") }
	offer := strings.Join([]string{
		"v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0",
		"m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0", "a=ice-ufrag:fuzz", "a=ice-pwd:fuzzfuzzfuzzfuzzfuzzfuzz",
		"a=fingerprint:sha-256 " + strings.TrimSuffix(strings.Repeat("AB:", 32), ":"), "a=setup:actpass",
		"a=mid:0", "a=sendonly", "a=rtcp-mux", "a=rtpmap:111 opus/48000/2", "a=ssrc:1 cname:fuzz", "",
	}, "\r\n")
	offerJSON, _ := json.Marshal(offer)
	return []signalingSeed{
		{0, 0, lines(`{not json`, `{"request": true, "method": "ping"}`, `{"request": true, "id": 1, "method": "fly"}`,
			`{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "r"}}`, `[]`, ``, `null`,
			`{"request": true, "id": -1, "method": "ping"}`, `{"request": "yes", "id": 3, "method": "ping"}`)},
		{0, 0, lines(`{"request": true, "id": 3, "method": "join", "data": {"displayName": ""}}`,
			`{"request": true, "id": 4, "method": "join", "data": {"displayName": "a", "sources": ["smell:nose"]}}`,
			`{"request": true, "id": 5, "method": "join", "data": {"displayName": "a", "colour": "red"}}`,
			`{"request": true, "id": 6, "method": "join", "data": {"displayName": "a", "sources": ["video:cam"], "resume": {"peerId": "x", "token": "y"}}}`,
			`{"request": true, "id": 7, "method": "join", "data": {"displayName": "a"}}`,
			`{"request": true, "id": 8, "method": "joinRoom", "data": {"roomId": "../etc"}}`,
			`{"request": true, "id": 9, "method": "joinRoom", "data": {"roomId": "seed"}}`,
			`{"request": true, "id": 10, "method": "leaveRoom"}`, `{"request": true, "id": 11, "method": "leaveRoom"}`)},
		{2, 0, lines(`{"request": true, "id": 12, "method": "produce", "data": {"offer": "this is not SDP", "producers": []}}`,
			`{"request": true, "id": 13, "method": "produce", "data": {"offer": `+string(offerJSON)+`, "producers": [{"mid": "0", "source": "audio:mic"}]}}`,
			`{"request": true, "id": 14, "method": "produce", "data": {"offer": `+string(offerJSON)+`, "producers": [{"mid": "0", "source": "audio:mic"}], "repeat": true}}`,
			`{"request": true, "id": 15, "method": "answer", "data": {"sdp": "v=0", "version": 7}}`,
			`{"request": true, "id": 16, "method": "closeProducer", "data": {"producerId": "nope"}}`,
			`{"request": true, "id": 17, "method": "resumeConsumer", "data": {"consumerId": "nope"}}`,
			`{"request": true, "id": 18, "method": "iceCandidate", "data": {"transport": "send", "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}}}`,
			`{"request": true, "id": 19, "method": "iceCandidate", "data": {"transport": "sideways", "candidate": null}}`,
			`{"request": true, "id": 20, "method": "restartIce", "data": {}}`)},
		{2, 0, lines(`{"request": true, "id": 21, "method": "setConsumerPreferredLayers", "data": {"consumerId": "c", "spatialLayer": 9}}`,
			`{"request": true, "id": 22, "method": "setConsumerView", "data": {"consumerId": "c", "width": -1, "height": 5, "visible": false}}`,
			`{"request": true, "id": 23, "method": "sendMessage", "data": {"text": "   "}}`,
			`{"request": true, "id": 24, "method": "sendMessage", "data": {"text": "hello"}}`,
			`{"request": true, "id": 25, "method": "pull", "data": {"peerId": "nobody", "sources": ["video:cam"]}}`,
			`{"request": true, "id": 26, "method": "invite", "data": {"peerId": "nobody", "sources": []}}`,
			`{"request": true, "id": 27, "method": "deinvite", "data": {"peerId": "nobody", "sources": ["audio:mic"]}}`,
			`{"request": true, "id": 28, "method": "mutePeer", "data": {"peerId": "nobody", "source": "audio:mic", "muted": true}}`,
			`{"request": true, "id": 29, "method": "requestProduce", "data": {"sources": ["video:cam"]}}`,
			`{"request": true, "id": 30, "method": "pauseProducer", "data": {"producerId": 5}}`)},
		{1, 0x2, lines(`{"request": true, "id": 31, "method": "ping"}`, `{"request": true, "id": 32, "method": "ping"}`,
			`{"request": true, "id": 33, "method": "ping", "data": "`+strings.Repeat("x", fuzzMaxMessage)+`"}`)},
	}
}

// FuzzDecodeRequest feeds the strict decoder of request data (decode) and
// the envelope (wire.Message) any bytes: decode either fills the request
// or refuses with badRequest, never panics; what it accepts encodes back
// to data it accepts again as the same request, and an envelope read once
// encodes the same way every time.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"offer": "v=0", "producers": [{"mid": "0", "source": "audio:mic"}], "repeat": true}`,
		`{"sdp": "v=0", "version": 3}`,
		`{"transport": "send", "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}`,
		`{"transport": "recv", "candidate": null}`,
		`{"producerId": "p", "consumerId": "c"}`,
		`{"consumerId": "c", "spatialLayer": 2}`,
		`{"consumerId": "c", "width": 640, "height": 360, "visible": false}`,
		`{"peerId": "p", "sources": ["video:cam"]}`,
		`{"peerId": "p", "source": "audio:mic", "muted": true}`,
		`{"text": "hello"}`,
		`{"request": true, "id": 7, "method": "ping", "data": {"a": [1, 2.5e3, null, "\u00e9"]}}`,
		`{"response": true, "id": 7, "ok": false, "error": {"code": "badRequest", "message": "m"}}`,
		``, `null`, `[]`, `{"text": 5}`, `{"unknown": 1}`, `{"spatialLayer": 1e400}`, `{"width": 9223372036854775808}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode[produceRequest](t, data)
		checkDecode[answerRequest](t, data)
		checkDecode[candidateRequest](t, data)
		checkDecode[idRequest](t, data)
		checkDecode[preferredLayersRequest](t, data)
		checkDecode[viewRequest](t, data)
		checkDecode[peerSourcesRequest](t, data)
		checkDecode[mutePeerRequest](t, data)
		checkDecode[sourcesRequest](t, data)
		checkDecode[textRequest](t, data)

		var msg wire.Message
		if json.Unmarshal(data, &msg) != nil {
			return
		}
		once, err := json.Marshal(msg)
		if err != nil {
			t.Fatalf("an envelope read from %q does not encode: %v", data, err)
		}
		var again wire.Message
		if err := json.Unmarshal(once, &again); err != nil {
			t.Fatalf("the envelope encoded as %s does not read back: %v", once, err)
		}
		if twice, _ := json.Marshal(again); string(twice) != string(once) {
			t.Fatalf("an envelope encodes as %s, then as %s", once, twice)
		}
		if msg.Succeeded() != (msg.OK != nil && *msg.OK) {
			t.Fatalf("Succeeded() = %v for ok %v", msg.Succeeded(), msg.OK)
		}
	})
}

// checkDecode decodes data as a T the way its handler does.
func checkDecode[T any](t *testing.T, data []byte) {
	t.Helper()
	var req T
	err := decode(data, &req)
	if err != nil {
		if w := toWire(err); w.Code != codeBadRequest {
			t.Fatalf("decode(%q) into %T: code %q, want badRequest", data, req, w.Code)
		}
		return
	}
	enc, err := json.Marshal(req)
	if err != nil {
		t.Fatalf("%T decoded from %q does not encode: %v", req, data, err)
	}
	var again T
	if err := decode(enc, &again); err != nil {
		t.Fatalf("%T encoded as %s is refused: %v", req, enc, err)
	}
	if !reflect.DeepEqual(req, again) {
		t.Fatalf("%T from %q is %+v; encoded as %s it reads back as %+v", req, data, req, enc, again)
	}
}
