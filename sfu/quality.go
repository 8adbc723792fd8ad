package sfu

import (
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// LinkQuality is what the server measured lately of one transport's link
// to its client, for a network quality indicator. Reading it costs a
// lock or two and a call into the ICE agent: a few times a minute per
// transport, not per packet.
type LinkQuality struct {
	State webrtc.PeerConnectionState
	// Loss is the share of packets lost over the last lossSeconds
	// (publishers: of what the server received; subscribers: of what it
	// sent, by the client's feedback). Measured says enough packets
	// flowed for it to mean something.
	Loss     float64
	Measured bool
	// RTT is the round trip of the server's own ICE consent checks on
	// the selected pair, 0 until one was answered.
	RTT time.Duration
	// Subscribers: Limited, some video gets a smaller layer than it
	// wants because the link's estimate (lowered by congestion lately)
	// does not carry more; Paused, some video gets nothing for it.
	Limited, Paused bool
}

// Loss is measured over lossSeconds, and only once minLossPackets were
// expected in them: below, one lost packet would read as several percent.
const (
	lossSeconds    = 3
	minLossPackets = 50
)

// Quality is the link the publisher's media arrives on.
func (p *Publisher) Quality() LinkQuality { return linkQuality(p.pc, &p.loss) }

// Quality is the link the subscriber's media leaves on.
func (s *Subscriber) Quality() LinkQuality {
	q := linkQuality(s.pc, &s.bw.loss)
	if q.State == webrtc.PeerConnectionStateConnected {
		q.Limited, q.Paused = s.bw.limited.Load(), s.bw.starved.Load()
	}
	return q
}

// linkQuality is what both kinds of transport measure: state, round trip
// and the recent loss (while connected).
func linkQuality(pc *webrtc.PeerConnection, loss *recentLoss) LinkQuality {
	q := LinkQuality{State: pc.ConnectionState()}
	if q.State != webrtc.PeerConnectionStateConnected {
		return q
	}
	q.RTT = iceRTT(pc)
	var expected int
	q.Loss, expected = loss.share(time.Now())
	q.Measured = expected >= minLossPackets
	return q
}

// iceRTT is the latest round trip of the selected candidate pair's
// consent checks (the server runs full ICE and sends them itself).
func iceRTT(pc *webrtc.PeerConnection) time.Duration {
	stats, ok := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePairStats()
	if !ok {
		return 0
	}
	return time.Duration(stats.CurrentRoundTripTime * float64(time.Second))
}

// recentLoss counts packets expected and lost in each of the last
// lossSeconds wall-clock seconds. Its writer adds a round's counts (once
// a second, or a feedback's); a reader sums them. Safe for concurrent use.
type recentLoss struct {
	mu       sync.Mutex
	second   [lossSeconds]int64 // the Unix second each slot counts
	expected [lossSeconds]int
	lost     [lossSeconds]int
}

func (r *recentLoss) add(now time.Time, expected, lost int) {
	sec := now.Unix()
	i := sec % lossSeconds
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.second[i] != sec {
		r.second[i], r.expected[i], r.lost[i] = sec, 0, 0
	}
	r.expected[i] += expected
	r.lost[i] += lost
}

// share is the share lost of the packets expected in the last
// lossSeconds up to now, and how many were expected.
func (r *recentLoss) share(now time.Time) (float64, int) {
	sec := now.Unix()
	expected, lost := 0, 0
	r.mu.Lock()
	for i := range lossSeconds {
		if age := sec - r.second[i]; age >= 0 && age < lossSeconds {
			expected += r.expected[i]
			lost += r.lost[i]
		}
	}
	r.mu.Unlock()
	if expected == 0 {
		return 0, 0
	}
	return min(float64(lost)/float64(expected), 1), expected
}
