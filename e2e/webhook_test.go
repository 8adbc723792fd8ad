package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vclass/vclass/webhook"
)

// The portal's webhook receiver gets signed events in order; a receiver
// that is down does not slow joins.
func TestWebhooks(t *testing.T) {
	const secret = "webhook-secret-for-tests"
	var mu sync.Mutex
	var got []webhook.Event
	bad := 0
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if !webhook.Verify(secret, body, r.Header.Get(webhook.SignatureHeader)) {
			bad++
		}
		var e webhook.Event
		_ = json.Unmarshal(body, &e)
		got = append(got, e)
	}))
	defer receiver.Close()
	withHooks := func(lo int, url string) string {
		return strings.Replace(loopbackConfig(lo, lo+9, ""), `"MeetingServerSettings"`,
			fmt.Sprintf(`"WebhookSettings": {"Url": %q, "Secret": %q}, "MeetingServerSettings"`, url, secret), 1)
	}
	srv := startMedia(t, withHooks(22520, receiver.URL))
	c := dialRaw(t, srv)
	c.expectOK(`{"request": true, "id": 1, "method": "join", "data": {"displayName": "Ann"}}`)
	c.expectOK(`{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "hooks"}}`)
	c.expectOK(`{"request": true, "id": 3, "method": "leaveRoom"}`)
	waitFor(t, 5*time.Second, "three events at the receiver", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 3
	})
	mu.Lock()
	var kinds []string
	for i, e := range got[:3] {
		kinds = append(kinds, e.Event)
		if e.Seq != uint64(i+1) || e.Room != "hooks" {
			t.Errorf("event %d: %+v", i, e)
		}
	}
	if strings.Join(kinds, ",") != "roomStarted,peerJoined,peerLeft" || got[1].DisplayName != "Ann" || bad != 0 {
		t.Errorf("events %v (bad signatures %d)", kinds, bad)
	}
	mu.Unlock()

	// A receiver that is down: joins are as quick as ever.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	downURL := "http://" + ln.Addr().String() + "/hooks"
	ln.Close()
	down := startMedia(t, withHooks(22530, downURL))
	start := time.Now()
	for i := range 20 {
		d := dialRaw(t, down)
		d.expectOK(`{"request": true, "id": 1, "method": "join", "data": {"displayName": "x"}}`)
		d.expectOK(fmt.Sprintf(`{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "r%d"}}`, i))
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("20 joins took %v with the webhook receiver down", took)
	}
}
