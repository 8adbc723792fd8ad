package pionlog

import (
	"bytes"
	"log/slog"
	"strings"
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
