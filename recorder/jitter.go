package recorder

import (
	"time"
)

// jitterBuffer puts a track's packets back in order. A missing packet is
// waited for until a later one has waited latency (time for a NACK to
// bring it back), then given up as lost. It is owned by one goroutine.
type jitterBuffer struct {
	latency time.Duration
	started bool
	next    uint64 // extended sequence number of the next packet out
	highest uint64 // highest extended sequence number seen
	slots   map[uint64]jbEntry
	lost    uint64 // packets given up
	skipped bool   // a restart skipped packets: the next one out follows a loss
}

type jbEntry struct {
	pkt     *packet
	arrival time.Time
}

// outPacket is a packet released in order; lost says packets were given
// up just before it.
type outPacket struct {
	pkt     *packet
	arrival time.Time
	lost    bool
}

// maxJitterSpan bounds a jump: a packet this far past the highest one seen
// restarts the buffer. What it holds is bounded by time, not by this: after
// a pop, only packets that arrived within latency.
const maxJitterSpan = 1000

func newJitterBuffer(latency time.Duration) *jitterBuffer {
	return &jitterBuffer{latency: latency, slots: map[uint64]jbEntry{}}
}

// push adds a packet; duplicates and packets already given up are
// dropped (released).
func (j *jitterBuffer) push(p *packet, arrival time.Time) {
	if !j.started {
		j.started = true
		j.next = 1<<32 + uint64(p.SequenceNumber)
		j.highest = j.next
	}
	ext := extendSeq(j.highest, p.SequenceNumber)
	if ext < j.next {
		p.release()
		return
	}
	if ext > j.highest+maxJitterSpan {
		// The sender restarted its numbering: start over after what we hold.
		j.lost += uint64(len(j.slots))
		for _, e := range j.slots {
			e.pkt.release()
		}
		clear(j.slots)
		j.next, j.highest = ext, ext
		j.skipped = true
	}
	if _, dup := j.slots[ext]; dup {
		p.release()
		return
	}
	j.slots[ext] = jbEntry{pkt: p, arrival: arrival}
	j.highest = max(j.highest, ext)
}

// pop releases the packets that are due at now, in order.
func (j *jitterBuffer) pop(now time.Time, out []outPacket) []outPacket {
	lost := j.skipped
	for len(j.slots) > 0 {
		if e, ok := j.slots[j.next]; ok {
			delete(j.slots, j.next)
			j.next++
			out = append(out, outPacket{pkt: e.pkt, arrival: e.arrival, lost: lost})
			lost, j.skipped = false, false
			continue
		}
		// A hole: give up on it once the oldest packet after it waited long enough.
		oldest, first := time.Time{}, uint64(0)
		for seq, e := range j.slots {
			if first == 0 || seq < first {
				first = seq
			}
			if oldest.IsZero() || e.arrival.Before(oldest) {
				oldest = e.arrival
			}
		}
		if now.Sub(oldest) < j.latency {
			break
		}
		j.lost += first - j.next
		j.next = first
		lost = true
	}
	return out
}

// extendSeq gives seq the 64-bit number nearest to ref.
func extendSeq(ref uint64, seq uint16) uint64 {
	ext := ref&^0xffff | uint64(seq)
	switch {
	case ext+0x8000 < ref:
		ext += 0x10000
	case ext > ref+0x8000 && ext >= 0x10000:
		ext -= 0x10000
	}
	return ext
}
