package rtpfb

import (
	"slices"
	"testing"
	"time"
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

// A reception report counts what never came (and what came twice, as RFC
// 3550 does: lost goes below zero), the share lost since the last report,
// the extended highest number with its cycles from the first packet's,
// the jitter of the arrivals against the RTP times, and the time since
// the sender's report.
func TestReception(t *testing.T) {
	var r Reception
	if _, ok := r.Report(1, 0, time.Time{}, time.Now()); ok {
		t.Fatal("a report before any packet")
	}
	start := time.Unix(1000, 0)
	const rate = 90000
	ext := uint64(1<<16 | 65530) // the reader's numbering starts a cycle up
	for i := range uint64(20) {
		if i == 7 || i == 8 { // 65537 and 65538 (1 and 2 after the wrap) lost
			continue
		}
		// Every packet 10 ms apart, on time but for packet 12, 2 ms late.
		at := start.Add(time.Duration(i) * 10 * time.Millisecond)
		if i == 12 {
			at = at.Add(2 * time.Millisecond)
		}
		r.Add(ext+i, uint32(i*900), rate, at)
	}
	now := start.Add(time.Second)
	sr := start.Add(500 * time.Millisecond)
	rr, ok := r.Report(7, 0x1122334455667788, sr, now)
	if !ok {
		t.Fatal("no report")
	}
	if rr.SSRC != 7 || rr.TotalLost != 2 || rr.FractionLost != 2*256/20 {
		t.Errorf("ssrc %d, lost %d, fraction %d; want 7, 2, %d", rr.SSRC, rr.TotalLost, rr.FractionLost, 2*256/20)
	}
	if exp, lost := r.Interval(); exp != 20 || lost != 2 {
		t.Errorf("interval: %d expected, %d lost; want 20, 2", exp, lost)
	}
	if rr.LastSequenceNumber != 1<<16|(65530+19-65536) {
		t.Errorf("highest %#x, want a cycle and %d", rr.LastSequenceNumber, 65530+19-65536)
	}
	// Packet 12 is 180 ticks late, packet 13 on time again: two jumps of
	// 180, each taking a sixteenth of what is left.
	want := 180.0 / 16
	want += (180 - want) / 16
	for range 6 { // packets 14-19: on time, each takes off a sixteenth
		want -= want / 16
	}
	if rr.Jitter != uint32(want) {
		t.Errorf("jitter %d, want %d", rr.Jitter, uint32(want))
	}
	if rr.LastSenderReport != 0x33445566 || rr.Delay != 65536/2 {
		t.Errorf("LSR %#x DLSR %d, want 0x33445566 and half a second", rr.LastSenderReport, rr.Delay)
	}
	// The next interval: nothing lost, one packet twice.
	r.Add(ext+20, 20*900, rate, now)
	r.Add(ext+20, 20*900, rate, now)
	r.Add(ext+21, 21*900, rate, now.Add(10*time.Millisecond))
	rr, _ = r.Report(7, 0, time.Time{}, now)
	if rr.FractionLost != 0 || rr.TotalLost != 1 || rr.LastSenderReport != 0 {
		t.Errorf("second report: fraction %d, lost %d, LSR %#x; want 0, 1 (a duplicate makes up one), 0", rr.FractionLost, rr.TotalLost, rr.LastSenderReport)
	}
	if exp, lost := r.Interval(); exp != 2 || lost != 0 {
		t.Errorf("second interval: %d expected, %d lost; want 2, 0", exp, lost)
	}
	for range 3 {
		r.Add(ext+21, 21*900, rate, now) // more duplicates than losses
	}
	if rr, _ = r.Report(7, 0, time.Time{}, now); rr.TotalLost != 0xfffffe {
		t.Errorf("lost %#x, want -2 in 24 bits", rr.TotalLost)
	}
}
