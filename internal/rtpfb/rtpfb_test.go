package rtpfb

import (
	"slices"
	"testing"
)

// The NACK log asks for what is missing in its window, each number a
// bounded number of times, and not for what came late or was resent.
func TestNackLog(t *testing.T) {
	var l NackLog
	for _, s := range []uint16{65530, 65531, 65535, 1} { // 65532-65534 and 0 lost, across the wrap
		l.Add(s)
	}
	if got := l.Missing(nil); !slices.Equal(got, []uint16{65532, 65533, 65534, 0}) {
		t.Fatalf("missing %v", got)
	}
	l.Add(65533)       // resent
	l.Add(65535 - 998) // too old (999 before the newest): ignored
	if got := l.Missing(nil); !slices.Equal(got, []uint16{65532, 65534, 0}) {
		t.Fatalf("after a resend, missing %v", got)
	}
	for range MaxNacks {
		l.Missing(nil)
	}
	if got := l.Missing(nil); len(got) != 0 {
		t.Fatalf("asked for %v more than %d times", got, MaxNacks)
	}
	l.Add(1 + NackWindow + 5) // a jump no NACK mends: starts again
	if got := l.Missing(nil); len(got) != 0 {
		t.Fatalf("after a jump, missing %v", got)
	}
	for s := uint16(1 + NackWindow + 6); s < 1+NackWindow+6+2*NackWindow; s++ {
		if s%100 != 0 {
			l.Add(s)
		}
	}
	got := l.Missing(nil)
	if len(got) != NackWindow/100 {
		t.Fatalf("missing %v, want the %d multiples of 100 in the window", got, NackWindow/100)
	}
	for _, s := range got {
		if s%100 != 0 {
			t.Fatalf("missing %v", got)
		}
	}
}
