package room

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitTimeout bounds every wait for an event; on loopback everything
// takes well under a second, even with -race.
const waitTimeout = 10 * time.Second

// note is one notification as the client would read it off the WebSocket.
type note struct {
	Method string
	Data   map[string]any // the JSON data decoded, as a client sees it
	Raw    string
}

func (n note) str(key string) string {
	s, _ := n.Data[key].(string)
	return s
}

func (n note) String() string { return n.Method + " " + n.Raw }

// recSink is the test double of the WebSocket: it records notifications in
// order, marshalled to JSON at Notify time like the real session does.
type recSink struct {
	mu          sync.Mutex
	notes       []note
	closed      bool
	changed     chan struct{} // closed and replaced on every change
	marshalErrs []error
}

var _ Sink = (*recSink)(nil)

func newRecSink() *recSink { return &recSink{changed: make(chan struct{})} }

// Notify implements Sink; like the real one it never blocks.
func (s *recSink) Notify(method string, data any) {
	raw, err := json.Marshal(data)
	var m map[string]any
	if err == nil {
		err = json.Unmarshal(raw, &m)
	}
	n := note{Method: method, Data: m, Raw: string(raw)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.marshalErrs = append(s.marshalErrs, fmt.Errorf("%s: %w", method, err))
	}
	s.notes = append(s.notes, n)
	s.wakeLocked()
}

// Close implements Sink.
func (s *recSink) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.wakeLocked()
}

func (s *recSink) wakeLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// snapshot copies what was recorded and returns the channel that closes on
// the next change.
func (s *recSink) snapshot() ([]note, bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]note(nil), s.notes...), s.closed, s.changed
}

func (s *recSink) all() []note {
	notes, _, _ := s.snapshot()
	return notes
}

func (s *recSink) isClosed() bool {
	_, closed, _ := s.snapshot()
	return closed
}

// waitFor waits until cond holds on the recorded notifications and
// returns them; it fails the test after waitTimeout.
func (s *recSink) waitFor(t testing.TB, what string, cond func(notes []note, closed bool) bool) []note {
	t.Helper()
	return s.waitForWithin(t, waitTimeout, what, cond)
}

// waitForWithin is waitFor with another timeout.
func (s *recSink) waitForWithin(t testing.TB, timeout time.Duration, what string, cond func(notes []note, closed bool) bool) []note {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		notes, closed, changed := s.snapshot()
		if cond(notes, closed) {
			return notes
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for %s; got:\n%s", timeout, what, dump(notes))
		}
	}
}

// indexOf is the index of the first note from start on with method and
// the given string fields, or -1.
func indexOf(notes []note, start int, method string, fields map[string]string) int {
	for i := start; i < len(notes); i++ {
		if notes[i].Method == method && matches(notes[i], fields) {
			return i
		}
	}
	return -1
}

func matches(n note, fields map[string]string) bool {
	for k, v := range fields {
		if n.str(k) != v {
			return false
		}
	}
	return true
}

// ofMethod filters notes by method.
func ofMethod(notes []note, method string) []note {
	var out []note
	for _, n := range notes {
		if n.Method == method {
			out = append(out, n)
		}
	}
	return out
}

// count counts notes with method and fields.
func count(notes []note, method string, fields map[string]string) int {
	n := 0
	for _, x := range notes {
		if x.Method == method && matches(x, fields) {
			n++
		}
	}
	return n
}

// signalingNotes drops the transport chatter (candidates, offers) that
// tests about room events do not look at.
func signalingNotes(notes []note) []note {
	var out []note
	for _, n := range notes {
		if n.Method != "iceCandidate" && n.Method != "offer" {
			out = append(out, n)
		}
	}
	return out
}

func dump(notes []note) string {
	var b strings.Builder
	for i, n := range notes {
		raw := n.Raw
		if len(raw) > 200 {
			raw = raw[:200] + "…"
		}
		fmt.Fprintf(&b, "  %3d %s %s\n", i, n.Method, raw)
	}
	if b.Len() == 0 {
		return "  (nothing)\n"
	}
	return b.String()
}
