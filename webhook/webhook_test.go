package webhook

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

const secret = "hook-secret"

// receiver records delivered events; it fails the first `failures` calls.
type receiver struct {
	mu       sync.Mutex
	events   []Event
	failures int
	badSig   int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !Verify(secret, body, req.Header.Get(SignatureHeader)) {
		r.badSig++
	}
	if r.failures > 0 {
		r.failures--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var e Event
	_ = json.Unmarshal(body, &e)
	r.events = append(r.events, e)
}

func (r *receiver) got() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

func waitEvents(t *testing.T, r *receiver, n int) []Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(r.got()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events delivered", len(r.got()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r.got()
}

// Events arrive signed and in order, retried through failures.
func TestDeliversInOrderThroughFailures(t *testing.T) {
	r := &receiver{failures: 2}
	srv := httptest.NewServer(r)
	defer srv.Close()
	s := New(Params{URL: srv.URL, Secret: secret, FirstDelay: time.Millisecond})
	defer s.Close()
	for _, name := range []string{"roomStarted", "peerJoined", "peerLeft", "roomFinished"} {
		s.Post(Event{Event: name, Room: "math"})
	}
	got := waitEvents(t, r, 4)
	for i, want := range []string{"roomStarted", "peerJoined", "peerLeft", "roomFinished"} {
		if got[i].Event != want || got[i].Seq != uint64(i+1) {
			t.Errorf("event %d: %s #%d, want %s #%d", i, got[i].Event, got[i].Seq, want, i+1)
		}
	}
	if r.badSig != 0 {
		t.Errorf("%d deliveries with a bad signature", r.badSig)
	}
}

// A receiver that is down does not block Post, and the queue stays bounded.
func TestDownReceiverNeverBlocks(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	s := New(Params{URL: url, Secret: secret, QueueSize: 10, FirstDelay: time.Hour})
	defer s.Close()
	start := time.Now()
	for range 1000 {
		s.Post(Event{Event: "peerJoined", Room: "r"})
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("1000 posts took %v", took)
	}
	s.mu.Lock()
	queued := len(s.queue)
	s.mu.Unlock()
	if queued > 10 {
		t.Errorf("queue holds %d events, limit 10", queued)
	}
}

func TestVerify(t *testing.T) {
	if Verify(secret, []byte(`{"a":1}`), "sha256=00") {
		t.Error("a wrong signature verified")
	}
}
