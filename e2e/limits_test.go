package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Every limit of LimitSettings, set low through its environment variable,
// is crossed through the real door of a vclass-media process, and the
// crossing gets the documented answer. Each row speaks for its own
// address (X-Forwarded-For from loopback, a trusted proxy by default), so
// that the rows' rates do not mix.
func TestLimitsTable(t *testing.T) {
	srv := startMedia(t, loopbackConfig(27650, 27659, ""),
		"VCLASS_API_KEY="+apiKey,
		"VCLASS_LIMIT_CONNECTIONS_PER_IP=3",
		"VCLASS_LIMIT_CONNECTIONS_PER_SECOND_PER_IP=0.5",
		"VCLASS_LIMIT_CONNECTION_BURST_PER_IP=6",
		"VCLASS_LIMIT_API_REQUESTS_PER_SECOND_PER_IP=1",
		"VCLASS_LIMIT_API_REQUEST_BURST_PER_IP=5",
		"VCLASS_LIMIT_MAX_MESSAGE_BYTES=2048",
		"VCLASS_LIMIT_MESSAGES_PER_SECOND=2",
		"VCLASS_LIMIT_MESSAGE_BURST=6",
		"VCLASS_LIMIT_MAX_PEERS_PER_ROOM=2",
		"VCLASS_LIMIT_MAX_PRODUCERS_PER_PEER=2",
		"VCLASS_LIMIT_MAX_ROOMS_PER_NODE=3",
		"VCLASS_LIMIT_MAX_API_BODY_BYTES=512",
		"VCLASS_LIMIT_READ_HEADER_TIMEOUT_SECONDS=1",
		"VCLASS_LIMIT_READ_TIMEOUT_SECONDS=1",
		"VCLASS_LIMIT_WRITE_TIMEOUT_SECONDS=1",
		"VCLASS_LIMIT_IDLE_TIMEOUT_SECONDS=1",
	)
	from := func(n int) http.Header { return http.Header{"X-Forwarded-For": {fmt.Sprintf("198.51.100.%d", n)}} }

	t.Run("ConnectionsPerIp", func(t *testing.T) {
		var open []*limitConn
		for i := range 3 {
			c, res, err := dialLimited(srv, from(1))
			if err != nil {
				t.Fatalf("connection %d: %v (%s)", i+1, err, res)
			}
			open = append(open, c)
		}
		if _, res, err := dialLimited(srv, from(1)); err == nil || res.status != 429 || !strings.Contains(res.body, "connections open") || res.retryAfter == "" {
			t.Errorf("a 4th connection: err %v, answer %s", err, res)
		}
		if _, _, err := dialLimited(srv, from(2)); err != nil {
			t.Errorf("another address is refused too: %v", err)
		}
		for _, c := range open {
			c.Close()
		}
	})

	t.Run("ConnectionsPerSecondPerIp", func(t *testing.T) {
		for i := range 6 { // the burst, one connection open at a time
			c, res, err := dialLimited(srv, from(3))
			if err != nil {
				t.Fatalf("connection %d: %v (%s)", i+1, err, res)
			}
			c.Close()
		}
		_, res, err := dialLimited(srv, from(3))
		if err == nil || res.status != 429 || !strings.Contains(res.body, "new connections") || res.retryAfter != "2" {
			t.Errorf("past the burst: err %v, answer %s; want 429 with Retry-After 2 (0.5 a second)", err, res)
		}
	})

	t.Run("MaxMessageBytes", func(t *testing.T) {
		c := mustDialLimited(t, srv, from(4))
		big := `{"request": true, "id": 1, "method": "ping", "data": {"pad": "` + strings.Repeat("x", 3000) + `"}}`
		_ = c.WriteMessage(websocket.TextMessage, []byte(big))
		if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
			t.Errorf("after 3 KB: %v, want close 1009", err)
		}
	})

	t.Run("MessagesPerSecond", func(t *testing.T) {
		c := mustDialLimited(t, srv, from(5))
		limited := 0
		for i := 1; i <= 10; i++ {
			if code := c.request(t, i, "ping", "{}"); code == "tooManyRequests" {
				limited++
			}
		}
		// A burst of 6, then 2 a second: 10 at once leave 4 refused, or 3
		// when a token came back while they were answered.
		if limited < 3 || limited > 4 {
			t.Errorf("%d of 10 requests refused, want 4 (burst 6)", limited)
		}
		if code := waitServed(t, c, 20, "ping", "{}"); code != "" {
			t.Errorf("the connection is not usable after the flood: %s", code)
		}
	})

	t.Run("MaxProducersPerPeer", func(t *testing.T) {
		c := mustDialLimited(t, srv, from(6))
		code := c.request(t, 1, "join", `{"displayName": "many", "sources": ["audio:mic", "video:cam", "video:screen"]}`)
		if code != "badRequest" {
			t.Errorf("3 sources with 2 producers at most: %q, want badRequest", code)
		}
		if code := c.request(t, 2, "join", `{"displayName": "two", "sources": ["audio:mic", "video:cam"]}`); code != "" {
			t.Errorf("2 sources: %s", code)
		}
	})

	t.Run("MaxPeersPerRoom", func(t *testing.T) {
		for i := range 3 {
			c := mustDialLimited(t, srv, from(10+i))
			if code := c.request(t, 1, "join", fmt.Sprintf(`{"displayName": "p%d"}`, i)); code != "" {
				t.Fatalf("join: %s", code)
			}
			code := c.request(t, 2, "joinRoom", `{"roomId": "small"}`)
			if want := map[bool]string{true: "roomFull", false: ""}[i == 2]; code != want {
				t.Errorf("peer %d into a room of 2 at most: %q, want %q", i+1, code, want)
			}
		}
	})

	t.Run("ApiRequestsPerSecondPerIp", func(t *testing.T) {
		for i := range 5 {
			if res := apiFrom(t, srv, from(20), "GET", "/api/v1/rooms", "", apiKey); res.status != 200 {
				t.Fatalf("request %d: %s", i+1, res)
			}
		}
		res := apiFrom(t, srv, from(20), "GET", "/api/v1/rooms", "", apiKey)
		if res.status != 429 || res.retryAfter != "1" || !strings.Contains(res.body, "tooManyRequests") {
			t.Errorf("6th request: %s, want 429 with Retry-After 1", res)
		}
		// Wrong keys are refused by the rate first: guessing keys is slow.
		if res := apiFrom(t, srv, from(20), "GET", "/api/v1/rooms", "", "wrong"); res.status != 429 {
			t.Errorf("a wrong key past the rate: %s, want 429", res)
		}
	})

	t.Run("MaxApiBodyBytes", func(t *testing.T) {
		body := `{"id": "big", "serveMode": "Open"` + strings.Repeat(" ", 600) + `}`
		if res := apiFrom(t, srv, from(21), "POST", "/api/v1/rooms", body, apiKey); res.status != 413 || !strings.Contains(res.body, "bodyTooLarge") {
			t.Errorf("a 640-byte body: %s, want 413", res)
		}
	})

	t.Run("MaxRoomsPerNode", func(t *testing.T) {
		// "small" lives already; two more make three.
		for i, want := range []int{201, 201, 503} {
			res := apiFrom(t, srv, from(22+i), "POST", "/api/v1/rooms", fmt.Sprintf(`{"id": "room-%d"}`, i), apiKey)
			if res.status != want || (want == 503 && !strings.Contains(res.body, "nodeFull")) {
				t.Errorf("room %d: %s, want %d", i+2, res, want)
			}
		}
		c := mustDialLimited(t, srv, from(30))
		c.request(t, 1, "join", `{"displayName": "late"}`)
		if code := c.request(t, 2, "joinRoom", `{"roomId": "one-more"}`); code != "nodeFull" {
			t.Errorf("a 4th room by joinRoom: %q, want nodeFull", code)
		}
	})

	t.Run("ReadHeaderTimeoutSeconds", func(t *testing.T) {
		// A slowloris: headers begun, never finished.
		conn := sendRaw(t, srv, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		start := time.Now()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.ReadAll(conn)
		if took := time.Since(start); err != nil || took < 500*time.Millisecond || took > 5*time.Second {
			t.Errorf("unfinished headers: closed after %v (err %v), want about 1 s", took, err)
		}
	})

	t.Run("IdleTimeoutSeconds", func(t *testing.T) {
		conn := sendRaw(t, srv, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		r := bufio.NewReader(conn)
		res, err := http.ReadResponse(r, nil)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("healthz: %v", err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		start := time.Now()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := r.ReadByte(); !errors.Is(err, io.EOF) || time.Since(start) < 500*time.Millisecond || time.Since(start) > 5*time.Second {
			t.Errorf("an idle kept-alive connection: %v after %v, want closed after about 1 s", err, time.Since(start))
		}
	})

	t.Run("WriteTimeoutSeconds", func(t *testing.T) {
		// A client that asks for vclass.js (about 50 KB) 200 times at once
		// on one connection, with a tiny receive window, and then reads
		// nothing for 3 s: the kernel's buffers hold a few MB, so a write
		// outlasts its 1 s and the connection is cut. Reading at last, the
		// client gets fewer than 200 whole answers.
		d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048) })
			return errors.Join(err, serr)
		}}
		conn, err := d.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		const asked = 200
		_, _ = conn.Write([]byte(strings.Repeat("GET /vclass.js HTTP/1.1\r\nHost: x\r\n\r\n", asked)))
		time.Sleep(3 * time.Second) // a reader too slow for the write timeout
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		r := bufio.NewReader(conn)
		whole := 0
		for ; whole < asked; whole++ {
			res, err := http.ReadResponse(r, nil)
			if err != nil {
				break
			}
			got, err := io.Copy(io.Discard, res.Body)
			if err != nil || got != res.ContentLength {
				break
			}
		}
		if whole == asked {
			t.Errorf("a reader 3 s late got all %d answers; want the writes cut off after 1 s", asked)
		}
		t.Logf("a reader 3 s late got %d whole answers of %d", whole, asked)
	})

	t.Run("WebSocketOutlivesRequestTimeouts", func(t *testing.T) {
		// Read and write timeouts of 1 s are for requests: a class
		// lasts longer.
		c := mustDialLimited(t, srv, from(31))
		if code := c.request(t, 1, "join", `{"displayName": "long"}`); code != "" {
			t.Fatal(code)
		}
		time.Sleep(2500 * time.Millisecond) // past both timeouts, doing nothing
		if code := c.request(t, 2, "ping", "{}"); code != "" {
			t.Errorf("after 2.5 s: %s", code)
		}
	})

	t.Run("SecurityHeaders", func(t *testing.T) {
		res, err := http.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		for k, want := range map[string]string{
			"Content-Security-Policy": "script-src 'self';", "X-Frame-Options": "SAMEORIGIN",
			"Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Permissions-Policy": "camera=(self)",
		} {
			if got := res.Header.Get(k); !strings.Contains(got, want) {
				t.Errorf("%s: %q, want it to hold %q", k, got, want)
			}
		}
		if csp := res.Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-") {
			t.Errorf("the policy allows unsafe code: %s", csp)
		}
	})

	// Every refusal is counted.
	_, metrics := srv.get(t, "/metrics")
	for _, l := range []string{`vclass_limited_total{limit="connections"}`, `vclass_limited_total{limit="rate"}`, `vclass_limited_total{limit="api"}`} {
		if !strings.Contains(metrics, l) {
			t.Errorf("/metrics has no %s", l)
		}
	}
}

// sendRaw opens a TCP connection to srv's HTTP port and writes text.
func sendRaw(t *testing.T, srv *mediaServer, text string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// limitConn is a raw WebSocket to vclass-media.
type limitConn struct{ *websocket.Conn }

// answer is what an HTTP request or a refused upgrade got.
type answer struct {
	status     int
	retryAfter string
	body       string
}

func (a answer) String() string {
	return fmt.Sprintf("%d Retry-After %q %s", a.status, a.retryAfter, strings.TrimSpace(a.body))
}

func dialLimited(srv *mediaServer, h http.Header) (*limitConn, answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, res, err := websocket.DefaultDialer.DialContext(ctx, srv.WS, h)
	var a answer
	if res != nil {
		a.status, a.retryAfter = res.StatusCode, res.Header.Get("Retry-After")
		b, _ := io.ReadAll(res.Body)
		a.body = string(b)
	}
	if err != nil {
		return nil, a, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	return &limitConn{conn}, a, nil
}

func mustDialLimited(t *testing.T, srv *mediaServer, h http.Header) *limitConn {
	t.Helper()
	c, a, err := dialLimited(srv, h)
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, a)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// request sends one request and returns its error code ("" when it
// succeeded), skipping notifications.
func (c *limitConn) request(t *testing.T, id int, method, data string) string {
	t.Helper()
	msg := fmt.Sprintf(`{"request": true, "id": %d, "method": %q, "data": %s}`, id, method, data)
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		var res rawResponse
		if json.Unmarshal(b, &res) == nil && res.Response && res.ID == uint64(id) {
			if res.OK {
				return ""
			}
			if res.Error == nil {
				return "?"
			}
			return res.Error.Code
		}
	}
}

// waitServed repeats a request (ids from id on) until it is served or 5 s
// pass, and returns the last error code.
func waitServed(t *testing.T, c *limitConn, id int, method, data string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code := c.request(t, id, method, data)
		if code != "tooManyRequests" || time.Now().After(deadline) {
			return code
		}
		id++
		time.Sleep(100 * time.Millisecond) // the bucket refills at 2 a second
	}
}

// apiFrom calls the portal API with key from the address in h.
func apiFrom(t *testing.T, srv *mediaServer, h http.Header, method, path, body, key string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{status: res.StatusCode, retryAfter: res.Header.Get("Retry-After"), body: string(b)}
}

// The class page runs whole under its Content-Security-Policy: two
// browsers see and hear each other and nothing is blocked (every page a
// test opens is checked on closing); what the policy forbids, an inline
// style, is blocked and seen.
func TestPageUnderContentSecurityPolicy(t *testing.T) {
	srv := startMedia(t, loopbackConfig(27660, 27669, ""))
	a := openPage(t, classURL(srv, "csp", "Ann", ""), "Ann")
	b := openPage(t, classURL(srv, "csp", "Bob", ""), "Bob")
	ids := map[*page]string{a: inRoom(t, a), b: inRoom(t, b)}
	waitMedia(t, a, []*page{b}, ids)
	waitMedia(t, b, []*page{a}, ids)
	var blocked []string
	if err := b.eval(`(() => { const s = document.createElement('style'); s.textContent = 'body{}';
	  document.head.append(s); return new Promise((done) => setTimeout(() => done(window.__cspViolations.splice(0)), 500)); })()`, &blocked); err != nil {
		t.Fatal(err)
	}
	if len(blocked) != 1 || !strings.HasPrefix(blocked[0], "style-src-elem blocked inline") {
		t.Errorf("an inline style element: %q, want it blocked by style-src", blocked)
	}
}

// The recorder's doors: TLS 1.2 at least, Service.RateLimiting (429 with
// Retry-After, before the credentials are checked), MaxRequestBodySize
// lowering the body cap (413), MaxRequestHeaderCount (431) and Kestrel's
// RequestHeadersTimeout (a slowloris is cut off).
func TestRecorderLimits(t *testing.T) {
	media := startMedia(t, loopbackConfig(27670, 27679, ""), "VCLASS_AUTH_SECRET="+testSecret)
	cfg := strings.Replace(recorderConfig(oneClient(1, false)), `"Credentials": {"Username": "admin"`,
		`"RateLimiting": {"RequestsPerSecondPerIp": 1, "BurstPerIp": 4},
    "Credentials": {"Username": "admin"`, 1)
	cfg = strings.Replace(cfg, `"Kestrel": {`, `"Kestrel": {"Limits": {"MaxRequestBodySize": 100, "MaxRequestHeaderCount": 20,
      "RequestHeadersTimeout": "00:00:01"}, `, 1)
	rec := startRecorder(t, "", cfg, media)
	host := strings.TrimPrefix(rec.URL, "https://")
	tr := rec.client.Transport.(*http.Transport)

	t.Run("TLS", func(t *testing.T) {
		for _, v := range []struct {
			version uint16
			ok      bool
		}{{tls.VersionTLS10, false}, {tls.VersionTLS11, false}, {tls.VersionTLS12, true}, {tls.VersionTLS13, true}} {
			conn, err := tls.Dial("tcp", host, &tls.Config{RootCAs: tr.TLSClientConfig.RootCAs, MinVersion: v.version, MaxVersion: v.version})
			if conn != nil {
				conn.Close()
			}
			if (err == nil) != v.ok {
				t.Errorf("%s: handshake error %v, want ok=%v", tls.VersionName(v.version), err, v.ok)
			}
		}
	})

	do := func(xff, method, body string, header http.Header) answer {
		t.Helper()
		req, _ := http.NewRequest(method, rec.URL+"/api/v1/recordings", strings.NewReader(body))
		req.SetBasicAuth("user1", "user1")
		req.Header.Set("X-Forwarded-For", xff)
		for k, v := range header {
			req.Header[k] = v
		}
		res, err := rec.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return answer{status: res.StatusCode, retryAfter: res.Header.Get("Retry-After"), body: string(b)}
	}
	t.Run("RequestsPerSecondPerIp", func(t *testing.T) {
		for i := range 4 {
			if a := do("198.51.100.1", "GET", "", nil); a.status != 200 {
				t.Fatalf("request %d: %s", i+1, a)
			}
		}
		if a := do("198.51.100.1", "GET", "", nil); a.status != 429 || a.retryAfter != "1" {
			t.Errorf("past the burst: %s, want 429 with Retry-After 1", a)
		}
		if a := do("198.51.100.2", "GET", "", nil); a.status != 200 {
			t.Errorf("another address: %s", a)
		}
	})
	t.Run("MaxRequestBodySize", func(t *testing.T) {
		body := `{"room": "` + strings.Repeat("r", 120) + `"}`
		if a := do("198.51.100.3", "POST", body, nil); a.status != 413 || !strings.Contains(a.body, "bodyTooLarge") {
			t.Errorf("a %d-byte body where 100 are allowed: %s", len(body), a)
		}
	})
	t.Run("MaxRequestHeaderCount", func(t *testing.T) {
		h := http.Header{}
		for i := range 25 {
			h.Set(fmt.Sprintf("X-Pad-%d", i), "x")
		}
		if a := do("198.51.100.4", "GET", "", h); a.status != 431 {
			t.Errorf("25 headers where 20 are allowed: %s, want 431", a)
		}
	})
	t.Run("RequestHeadersTimeout", func(t *testing.T) {
		conn, err := tls.Dial("tcp", host, &tls.Config{RootCAs: tr.TLSClientConfig.RootCAs})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "))
		start := time.Now()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.ReadAll(conn)
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("unfinished headers: closed after %v, want about 1 s", took)
		}
	})
}
