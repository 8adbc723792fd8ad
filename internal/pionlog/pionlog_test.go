package pionlog

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Pion's warnings are info, its info debug; warnings about reading a
// closed socket (every transport's end) are debug too.
func TestLevels(t *testing.T) {
	var buf bytes.Buffer
	l := Factory{Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}.NewLogger("ice")
	l.Warnf("Failed to read from candidate %s: %v", "udp4 host", "io: read/write on closed pipe")
	l.Warn("candidate pair failed")
	l.Warnf("pair %d failed", 7)
	l.Info("gathering done")
	l.Error("DTLS handshake failed")
	out := buf.String()
	for _, want := range []string{`level=INFO msg="candidate pair failed" pion=ice`, `level=INFO msg="pair 7 failed"`, `level=ERROR msg="DTLS handshake failed"`} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	for _, not := range []string{"closed pipe", "gathering done"} {
		if strings.Contains(out, not) {
			t.Errorf("%q logged at info:\n%s", not, out)
		}
	}
}

type track struct {
	mu   sync.RWMutex
	id   string
	ssrc uint32
}

func (t *track) ID() string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.id
}

// Pion logs live objects whole ("got new track: %+v"); formatting one
// while Pion's goroutines write it was a data race (seen under -race in
// the recorder) and printed its internals. They are logged by type and ID.
func TestLiveObjectsAreNotFormattedWhole(t *testing.T) {
	var buf bytes.Buffer
	l := Factory{Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}.NewLogger("pc")
	tr := &track{id: "cam"}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 1000 {
			tr.mu.Lock()
			tr.ssrc = uint32(i)
			tr.mu.Unlock()
		}
	}()
	for range 100 {
		l.Debugf("got new track: %+v", tr)
	}
	<-done
	l.Debugf("pair %v, %d bytes, %v", struct{ A int }{1}, 12, nil)
	out := buf.String()
	if !strings.Contains(out, `msg="got new track: *pionlog.track(cam)"`) {
		t.Errorf("track not logged by type and ID:\n%.300s", out)
	}
	if strings.Contains(out, "ssrc") {
		t.Errorf("track's fields were formatted:\n%.300s", out)
	}
	if !strings.Contains(out, `msg="pair {1}, 12 bytes, <nil>"`) {
		t.Errorf("plain values changed:\n%s", out)
	}
}
