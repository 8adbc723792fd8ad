package main

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/vclass/vclass/client"
)

// A lean track counts every number it expected across the wrap, tells the
// lost from the late and the resent, sets duplicates and forged packets
// apart, and times each frame's first packet against the sender's clock.
func TestLeanTrackCountsLossAndForgeries(t *testing.T) {
	var c leanCounts
	tr := &leanTrack{counts: &c, clock: 90000}
	base := time.Now()
	tr.sr.Store(&senderClock{rtp: 1000, at: base})
	add := func(seq uint16, ts uint32, check client.Check) {
		tr.add(client.PacketInfo{Seq: seq, Timestamp: ts, Arrival: base.Add(time.Duration(ts-1000) * time.Second / 90000).Add(15 * time.Millisecond), Check: check})
	}
	// 65533 .. 5 across the wrap, a frame (timestamp) every two packets:
	// 65535 and 2 lost, 3 resent late after 5, 4 twice, one forged.
	seqs := []uint16{65533, 65534, 0, 1, 4, 4, 5, 3}
	for _, s := range seqs {
		n := uint32(s+3) / 2 // frame number
		add(s, 1000+3000*n, client.Unchecked)
	}
	add(6, 99999, client.Forged)
	snap := c.snapshot()
	if snap.expected != 9 || snap.received != 7 || snap.dupes != 1 || snap.forged != 1 || snap.unchecked != 8 {
		t.Errorf("expected %d received %d dupes %d forged %d unchecked %d, want 9 7 1 1 8 (65535 and 2 lost)",
			snap.expected, snap.received, snap.dupes, snap.forged, snap.unchecked)
	}
	if p50 := quantile([61]int64{}, snap.latency, 0.5); p50 < 15*time.Millisecond || p50 > 20*time.Millisecond {
		t.Errorf("latency p50 %v, want the bucket of 15 ms", p50)
	}
	// A window later, an old slot is not taken for a duplicate.
	for s := uint16(6); s < 6+2*seenWindow; s++ {
		add(s, 1000+3000*uint32(s), client.Authentic)
	}
	if after := c.snapshot(); after.dupes != 1 || after.expected-after.received != 2 {
		t.Errorf("after two windows: dupes %d, lost %d, want 1 and 2", after.dupes, after.expected-after.received)
	}
}

// A packet from before a track's first (Pion's path hands its packets
// over after the direct path's first) counts as late, not as a jump of
// almost 2^64; a resent copy that SRTP refused counts as a duplicate.
func TestLeanTrackTakesAPacketFromBeforeTheFirst(t *testing.T) {
	var c leanCounts
	tr := &leanTrack{counts: &c, clock: 90000}
	for _, s := range []uint16{2, 65535, 0, 1, 3} {
		tr.add(client.PacketInfo{Seq: s, Timestamp: uint32(s)})
	}
	tr.add(client.PacketInfo{Seq: 3, Check: client.Replayed})
	if snap := c.snapshot(); snap.expected != 2 || snap.received != 5 || snap.dupes != 1 {
		t.Errorf("expected %d received %d dupes %d, want 2 (2 and 3: the late ones came before the count began), 5, 1",
			snap.expected, snap.received, snap.dupes)
	}
}

// A sweep's chart is well-formed SVG with a line per series, a point per
// step on each.
func TestKneeChart(t *testing.T) {
	var rows []stepResult
	for i, n := range []int{100, 200, 400} {
		rows = append(rows, stepResult{subscribers: n, window: 10, cpu: float64(2 * (i + 1)), expected: 1000, lost: int64(i * 5),
			p50: time.Duration(i+1) * time.Millisecond, p99: time.Duration(10*(i+1)) * time.Millisecond})
	}
	svg := kneeChart(rows, options{fps: 30, frameBytes: 7700})
	dec := xml.NewDecoder(strings.NewReader(svg))
	lines, points := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "polyline":
				lines++
			case "circle":
				points++
			}
		}
	}
	if lines != 5 || points != 15 {
		t.Errorf("%d lines and %d points, want 5 (CPU, forwarded, loss, p50, p99) and 15", lines, points)
	}
}
