package main

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"

	"github.com/vclass/vclass/client"
)

// A lean subscriber does what a real one does on the wire (signaling, ICE,
// DTLS, NACKs and congestion control feedback), but takes its packets by
// their headers: read a batch a tick from each socket, decrypted (so
// authenticated) one in -verify-every, every sequence number counted for
// loss. That costs the load tool far less than the server's forwarding of
// the same packet, so one core of load can find the server's limit.

// leanCounts is what the lean subscribers' tracks received, summed.
type leanCounts struct {
	tracks                    atomic.Int64
	received, expected, dupes atomic.Int64
	forged, unchecked         atomic.Int64
	latency                   histogram
}

// leanSnapshot is leanCounts at one moment.
type leanSnapshot struct {
	tracks, received, expected, dupes, forged, unchecked int64
	latency                                              [61]int64
}

func (c *leanCounts) snapshot() leanSnapshot {
	return leanSnapshot{tracks: c.tracks.Load(), received: c.received.Load(), expected: c.expected.Load(), dupes: c.dupes.Load(),
		forged: c.forged.Load(), unchecked: c.unchecked.Load(), latency: c.latency.snapshot()}
}

// leanTrack follows one received track: its sequence numbers (extended
// past wrapping), which of the latest it has, and the sender's clock from
// its sender reports.
type leanTrack struct {
	counts *leanCounts
	clock  float64 // RTP clock rate
	sr     atomic.Pointer[senderClock]

	started bool
	top     uint64 // the highest extended sequence number
	seen    [seenWindow / 64]uint64
	lastTS  uint32
	frames  bool // a timestamp was seen: the next new one starts a frame
}

// seenWindow is how far back a late or resent packet is still told from a
// duplicate.
const seenWindow = 1024

// senderClock maps the sender's RTP timestamps to its wall clock.
type senderClock struct {
	rtp uint32
	at  time.Time
}

func newLeanTrack(counts *leanCounts, rt *client.RemoteTrack) *leanTrack {
	t := &leanTrack{counts: counts, clock: float64(rt.Track.Codec().ClockRate)}
	if t.clock == 0 {
		t.clock = 90000
	}
	counts.tracks.Add(1)
	rt.OnSenderReport(func(sr *rtcp.SenderReport, _ time.Time) {
		t.sr.Store(&senderClock{rtp: sr.RTPTime, at: ntpTime(sr.NTPTime)})
	})
	return t
}

// ntpTime converts an NTP timestamp (RFC 3550) to a time.
func ntpTime(ntp uint64) time.Time {
	const unixFromNTP = 2208988800
	secs := int64(ntp>>32) - unixFromNTP
	frac := float64(ntp&0xffffffff) / (1 << 32)
	return time.Unix(secs, int64(frac*1e9))
}

// add counts one packet (ReceiveInfo calls it, one at a time).
func (t *leanTrack) add(p client.PacketInfo) {
	c := t.counts
	switch p.Check {
	case client.Forged:
		c.forged.Add(1)
		return
	case client.Replayed:
		c.dupes.Add(1)
		return
	case client.Unchecked:
		c.unchecked.Add(1)
	}
	// Extended numbers start a cycle up, so that a packet from before
	// the first (Pion's path hands its packets over late) stays above 0.
	ext := uint64(p.Seq) + 1<<16
	if t.started {
		// The extended number nearest the newest.
		ext = t.top + uint64(int64(int16(p.Seq-uint16(t.top))))
	}
	switch {
	case !t.started:
		t.started, t.top = true, ext
		c.expected.Add(1)
	case ext > t.top:
		// The numbers skipped, and ext's own place, held numbers a
		// window older: cleared.
		for s := max(t.top+1, ext-min(ext, seenWindow-1)); s <= ext; s++ {
			t.seen[(s%seenWindow)/64] &^= 1 << (s % 64)
		}
		c.expected.Add(int64(ext - t.top))
		t.top = ext
	case t.top-ext >= seenWindow:
		c.dupes.Add(1) // too old to tell
		return
	}
	i := ext % seenWindow
	if t.seen[i/64]&(1<<(i%64)) != 0 {
		c.dupes.Add(1)
		return
	}
	t.seen[i/64] |= 1 << (i % 64)
	c.received.Add(1)

	// The first packet of each frame: how long after its capture (the
	// sender's clock, from its reports) it arrived.
	if !t.frames || int32(p.Timestamp-t.lastTS) > 0 { // a late packet of an older frame is not one
		newFrame := t.frames
		t.lastTS, t.frames = p.Timestamp, true
		if sc := t.sr.Load(); newFrame && sc != nil {
			captured := sc.at.Add(time.Duration(float64(int32(p.Timestamp-sc.rtp)) / t.clock * float64(time.Second)))
			c.latency.add(p.Arrival.Sub(captured))
		}
	}
}

// histogram counts durations in buckets a tenth of a decade wide, from
// 10 µs to 10 s.
type histogram struct {
	mu      sync.Mutex
	buckets [61]int64
}

func (h *histogram) add(d time.Duration) {
	i := 0
	if us := d.Seconds() * 1e6; us > 10 {
		i = min(int(math.Log10(us/10)*10), len(h.buckets)-1)
	}
	h.mu.Lock()
	h.buckets[i]++
	h.mu.Unlock()
}

// snapshot copies the counts.
func (h *histogram) snapshot() [61]int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buckets
}

// quantile of the counts after minus before: the upper edge of the bucket
// it falls in; 0 when there are none.
func quantile(before, after [61]int64, q float64) time.Duration {
	var n int64
	for i := range after {
		n += after[i] - before[i]
	}
	if n == 0 {
		return 0
	}
	want := int64(math.Ceil(q * float64(n)))
	var sum int64
	for i := range after {
		if sum += after[i] - before[i]; sum >= want {
			return time.Duration(10 * math.Pow(10, float64(i+1)/10) * float64(time.Microsecond))
		}
	}
	return 0
}
