//go:build linux

package signaling

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vclass/vclass/config"
	"github.com/vclass/vclass/internal/limit"
	"github.com/vclass/vclass/room"
)

// A client that stops reading costs the server a bounded queue and a
// bounded write, whichever it crosses first: it is dropped (counted by
// cause), its peer leaves the room once the resume window is over, and a
// busy classmate is served all along. The slow client's socket takes in
// little (a 4 KiB receive buffer), so that the kernel's buffers do not hide
// it for long; a classmate floods the room with chat to fill its queue.
func TestSlowClientIsDropped(t *testing.T) {
	for _, tc := range []struct {
		cause        string
		queue        int
		writeTimeout time.Duration
	}{
		{"queue", 32, time.Minute},                 // the queue fills long before a write times out
		{"write", 1 << 20, 500 * time.Millisecond}, // a write blocks on the full socket
	} {
		t.Run(tc.cause, func(t *testing.T) {
			metrics := NewMetrics(nil, nil)
			rooms := room.NewManager(room.Params{ServeMode: config.ServeOpen})
			t.Cleanup(func() { rooms.Drain("serverShutdown") }) // after the connections close
			srv := NewServer(Params{
				Rooms:             rooms,
				Metrics:           metrics,
				AllowEmptyTickets: true,
				OutQueue:          tc.queue,
				WriteTimeout:      tc.writeTimeout,
				ResumeWindow:      300 * time.Millisecond,
				MessageRate:       limit.Rate{PerSecond: 1e6, Burst: 1e6},
			})
			hs := httptest.NewServer(srv)
			t.Cleanup(hs.Close)
			url := "ws" + strings.TrimPrefix(hs.URL, "http")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			t.Cleanup(cancel)

			small := websocket.Dialer{NetDialContext: (&net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
				var err error
				_ = c.Control(func(fd uintptr) {
					err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
				})
				return err
			}}).DialContext}
			slow := dialRoom(t, ctx, &small, url, "slow")
			busy := dialRoom(t, ctx, websocket.DefaultDialer, url, "busy")

			// The busy client reads all the while, and notes when the slow
			// peer has left and how long its own requests wait.
			var left atomic.Bool
			var slowest atomic.Int64 // ns
			sent := make(map[int]time.Time)
			answered := make(chan struct {
				id int
				at time.Time
			}, 1024)
			go func() {
				for {
					_, data, err := busy.ReadMessage()
					if err != nil {
						return
					}
					var m struct {
						Response bool   `json:"response"`
						ID       int    `json:"id"`
						Method   string `json:"method"`
						Data     struct {
							PeerID string `json:"peerId"`
						} `json:"data"`
					}
					_ = json.Unmarshal(data, &m)
					switch {
					case m.Response:
						select {
						case answered <- struct {
							id int
							at time.Time
						}{m.ID, time.Now()}:
						default:
						}
					case m.Method == "peerLeaveRoom" && m.Data.PeerID == slow.peerID:
						left.Store(true)
					}
				}
			}()

			text := strings.Repeat("x", 4000)
			dropped := func() bool { return counterValue(t, metrics, "vclass_slow_clients_total", tc.cause) > 0 }
			id := 100
			for ; id < 100+20000 && !dropped() && ctx.Err() == nil; id++ {
				sent[id] = time.Now()
				req := fmt.Sprintf(`{"request": true, "id": %d, "method": "sendMessage", "data": {"text": %q}}`, id, text)
				if err := busy.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
					t.Fatalf("the busy client's request %d: %v", id, err)
				}
				for len(answered) > 0 {
					a := <-answered
					slowest.Store(max(slowest.Load(), int64(a.at.Sub(sent[a.id]))))
				}
				if id%50 == 0 {
					time.Sleep(10 * time.Millisecond) // the slow client's queue fills in bursts, the kernel's buffers too
				}
			}
			if !dropped() {
				t.Fatalf("after %d chat messages of 4000 characters, the slow client was not dropped for its %s", id-100, tc.cause)
			}
			other := map[string]string{"queue": "write", "write": "queue"}[tc.cause]
			if n := counterValue(t, metrics, "vclass_slow_clients_total", other); n != 0 {
				t.Errorf("dropped for its %s too (%v)", other, n)
			}
			t.Logf("dropped for its %s after %d chat messages; the busy client's slowest answer took %v",
				tc.cause, id-100, time.Duration(slowest.Load()).Round(time.Millisecond))

			// The slow client, reading again, finds its connection closed
			// (after what the kernel held for it).
			_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
			var err error
			for n := 0; err == nil && n < 100000; n++ {
				_, _, err = slow.ReadMessage()
			}
			if err == nil || isTimeout(err) {
				t.Errorf("the slow client's connection is still open: %v", err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for !left.Load() && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if !left.Load() {
				t.Error("the busy client was not told that the slow peer left")
			}
			// The busy client is still served at once.
			start := time.Now()
			if err := busy.WriteMessage(websocket.TextMessage, []byte(`{"request": true, "id": 1, "method": "ping", "data": {}}`)); err != nil {
				t.Fatal(err)
			}
			for ok := false; !ok; {
				select {
				case a := <-answered:
					ok = a.id == 1
				case <-time.After(5 * time.Second):
					t.Fatal("the busy client's ping got no answer within 5 s")
				}
			}
			t.Logf("the busy client's ping answered in %v", time.Since(start).Round(time.Millisecond))
		})
	}
}

// roomClient is a raw WebSocket client that joined a room.
type roomClient struct {
	*websocket.Conn
	peerID string
}

// dialRoom connects, joins as name and enters room "slow".
func dialRoom(t *testing.T, ctx context.Context, d *websocket.Dialer, url, name string) *roomClient {
	t.Helper()
	conn, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &roomClient{Conn: conn}
	call := func(id int, method, data string) json.RawMessage {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"request": true, "id": %d, "method": %q, "data": %s}`, id, method, data))); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		defer conn.SetReadDeadline(time.Time{})
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("%s %s: %v", name, method, err)
			}
			var res struct {
				Response bool            `json:"response"`
				ID       int             `json:"id"`
				OK       bool            `json:"ok"`
				Data     json.RawMessage `json:"data"`
			}
			if json.Unmarshal(msg, &res) == nil && res.Response && res.ID == id {
				if !res.OK {
					t.Fatalf("%s %s: %s", name, method, msg)
				}
				return res.Data
			}
		}
	}
	var joined struct {
		PeerID string `json:"peerId"`
	}
	_ = json.Unmarshal(call(1, "join", fmt.Sprintf(`{"displayName": %q}`, name)), &joined)
	c.peerID = joined.PeerID
	call(2, "joinRoom", `{"roomId": "slow"}`)
	return c
}

// counterValue reads one labelled counter of m.
func counterValue(t *testing.T, m *Metrics, name, label string) float64 {
	t.Helper()
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, c := range f.GetMetric() {
			for _, l := range c.GetLabel() {
				if l.GetValue() == label {
					return c.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
