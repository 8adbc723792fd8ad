// Package rtpfb keeps what a receiver of RTP streams reports back to their
// sender: which packets to send again (NACK, RFC 4585) and the reception
// report of each stream (RFC 3550 section 6.4.1). Not safe for concurrent
// use: each stream's state belongs to its reader, under its lock.
package rtpfb

import (
	"time"

	"github.com/pion/rtcp"
)

// FeedbackEvery is how often NACKs and congestion control feedback go
// out, as Pion's interceptors send them.
const FeedbackEvery = 100 * time.Millisecond

// UntilTick is the time to the next whole multiple of every (of the wall
// clock): every timer set so wakes at the same instants.
func UntilTick(every time.Duration) time.Duration {
	now := time.Now()
	return now.Truncate(every).Add(every).Sub(now)
}

// NackWindow is how far back a missing packet is asked for (a server's
// cache holds about as much); each is asked for at most MaxNacks times.
const (
	NackWindow = 512
	MaxNacks   = 10
)

// NackLog keeps which of a stream's latest packets arrived, to ask for the
// others again.
type NackLog struct {
	started bool
	top     uint16 // the newest sequence number
	span    int    // how many of the numbers up to top are the stream's
	got     [NackWindow / 64]uint64
	asked   [NackWindow]uint8
}

func (l *NackLog) set(seq uint16, got bool) {
	i := seq % NackWindow
	if got {
		l.got[i/64] |= 1 << (i % 64)
	} else {
		l.got[i/64] &^= 1 << (i % 64)
	}
	l.asked[i] = 0
}

func (l *NackLog) has(seq uint16) bool {
	i := seq % NackWindow
	return l.got[i/64]&(1<<(i%64)) != 0
}

// Add notes that seq arrived.
func (l *NackLog) Add(seq uint16) {
	d := int(int16(seq - l.top))
	switch {
	case !l.started || d >= NackWindow || d <= -4*NackWindow:
		// The first packet, a jump no NACK would mend, or numbering
		// started again: start again.
		*l = NackLog{started: true, top: seq, span: 1}
		l.set(seq, true)
	case d > 0:
		for s := l.top + 1; s != seq; s++ {
			l.set(s, false)
		}
		l.set(seq, true)
		l.top, l.span = seq, min(l.span+d, NackWindow)
	case -d < l.span:
		l.set(seq, true) // late, or resent
	}
}

// Missing appends to out the numbers not received that may be asked for
// again, and counts the asking.
func (l *NackLog) Missing(out []uint16) []uint16 {
	for i := l.span - 1; i >= 1; i-- {
		s := l.top - uint16(i)
		if l.has(s) || l.asked[s%NackWindow] >= MaxNacks {
			continue
		}
		l.asked[s%NackWindow]++
		out = append(out, s)
	}
	return out
}

// Reception is what a receiver report says of one stream: loss from the
// sequence numbers (RFC 3550 appendix A.3), interarrival jitter from the
// RTP times and arrivals (appendix A.8), and the delay since the sender's
// last report.
type Reception struct {
	started       bool
	base, highest uint64 // extended sequence numbers: the first and the newest
	received      uint64
	expectedPrior uint64
	receivedPrior uint64
	clockRate     float64
	start         time.Time
	transit       uint32
	jitter        float64 // in RTP ticks
	// The interval the last report closed: packets expected and lost.
	lastExpected, lastLost uint64
}

// Add notes a packet: ext is its extended sequence number, ts its RTP
// time at clockRate ticks a second.
func (r *Reception) Add(ext uint64, ts uint32, clockRate uint32, arrival time.Time) {
	if !r.started {
		*r = Reception{started: true, base: ext, highest: ext, received: 1,
			clockRate: float64(clockRate), start: arrival}
		r.transit = r.arrivalTicks(arrival) - ts
		return
	}
	r.received++
	if ext <= r.highest {
		return // late, or resent: its delay says nothing of the path's jitter
	}
	r.highest = ext
	transit := r.arrivalTicks(arrival) - ts
	d := float64(int32(transit - r.transit))
	r.transit = transit
	if d < 0 {
		d = -d
	}
	r.jitter += (d - r.jitter) / 16
}

func (r *Reception) arrivalTicks(at time.Time) uint32 {
	return uint32(uint64(at.Sub(r.start).Seconds() * r.clockRate))
}

// Report is the reception report of the stream ssrc at now, and starts the
// next interval. lastSR is the NTP time of the sender's last report and
// srArrival when it came (zero: none yet).
func (r *Reception) Report(ssrc uint32, lastSR uint64, srArrival, now time.Time) (rtcp.ReceptionReport, bool) {
	if !r.started {
		return rtcp.ReceptionReport{}, false
	}
	expected := r.highest - r.base + 1
	lost := int64(expected) - int64(r.received)
	lost = max(min(lost, 0x7fffff), -0x800000) // 24 bits, signed
	expInterval := expected - r.expectedPrior
	recInterval := r.received - r.receivedPrior
	r.expectedPrior, r.receivedPrior = expected, r.received
	var fraction uint8
	r.lastExpected, r.lastLost = expInterval, 0
	if lostInterval := int64(expInterval) - int64(recInterval); expInterval > 0 && lostInterval > 0 {
		fraction = uint8(min(lostInterval<<8/int64(expInterval), 255))
		r.lastLost = uint64(lostInterval)
	}
	rr := rtcp.ReceptionReport{
		SSRC:               ssrc,
		FractionLost:       fraction,
		TotalLost:          uint32(lost) & 0xffffff,
		LastSequenceNumber: uint32(r.highest - r.base&^0xffff), // cycles counted from the first packet's
		Jitter:             uint32(r.jitter),
	}
	if !srArrival.IsZero() {
		rr.LastSenderReport = uint32(lastSR >> 16)
		rr.Delay = uint32(now.Sub(srArrival).Seconds() * 65536)
	}
	return rr, true
}

// Interval is the packets expected and lost in the interval the last
// Report closed (duplicates making up for losses count as none lost).
func (r *Reception) Interval() (expected, lost uint64) { return r.lastExpected, r.lastLost }
