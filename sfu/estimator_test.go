package sfu

import (
	"testing"
	"time"

	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
)

// simLink is a drop-tail bottleneck like tc's tbf: capacity bits per
// second, a queue of at most maxQueue, then a propagation delay.
type simLink struct {
	capacity  float64
	maxQueue  time.Duration
	prop      time.Duration
	busyUntil time.Time
}

func (l *simLink) send(size int, at time.Time) (time.Time, bool) {
	start := at
	if l.busyUntil.After(at) {
		start = l.busyUntil
	}
	if start.Sub(at) > l.maxQueue {
		return time.Time{}, false
	}
	l.busyUntil = start.Add(time.Duration(float64(size*8) / l.capacity * float64(time.Second)))
	return l.busyUntil.Add(l.prop), true
}

// simRun sends media at min(demand, estimate) through the link for d,
// with feedback every 50 ms, and probes as a subscriber does: when the
// estimate is below the demand, a 200 ms cluster at twice the estimate
// (padding on top of the media), at most every 3 s. It returns the
// estimates seen each 100 ms.
type simRun struct {
	e         *Estimator
	link      *simLink
	demand    float64
	now       time.Time
	pending   []packetResult
	credit    float64
	probeID   uint32
	probeEnd  time.Time
	lastProbe time.Time
	probeSent int
}

func newSimRun(initial int, link *simLink, demand float64) *simRun {
	return &simRun{e: NewEstimator(initial, 30_000, 20_000_000), link: link, demand: demand, now: time.Unix(1000, 0)}
}

func (s *simRun) run(d time.Duration) []int {
	var estimates []int
	end := s.now.Add(d)
	step := 5 * time.Millisecond
	for tick := 0; s.now.Before(end); tick++ {
		rate := min(s.demand, float64(s.e.Estimate()))
		probing := s.now.Before(s.probeEnd)
		if !probing && s.probeID != 0 && s.probeSent > 0 {
			s.e.ProbeSent(s.probeID, s.probeSent)
			s.probeSent = 0
		}
		if !probing && s.demand > float64(s.e.Estimate())*1.1 && s.now.Sub(s.lastProbe) > 3*time.Second {
			s.probeID++
			s.e.StartProbe(s.probeID)
			s.probeEnd, s.lastProbe, probing = s.now.Add(200*time.Millisecond), s.now, true
		}
		if probing {
			rate = 2 * float64(s.e.Estimate())
		}
		s.credit += rate * step.Seconds() / 8
		for s.credit >= 1200 {
			s.credit -= 1200
			r := packetResult{sent: s.now, size: 1200}
			if probing {
				r.probe = s.probeID
				s.probeSent++
			}
			r.arrived, r.received = s.link.send(1200, s.now)
			s.pending = append(s.pending, r)
		}
		s.now = s.now.Add(step)
		if tick%10 == 9 { // feedback every 50 ms: what arrived by now, and what was lost
			var batch []packetResult
			rest := s.pending[:0]
			for _, r := range s.pending {
				if !r.received || !r.arrived.After(s.now) {
					batch = append(batch, r)
				} else {
					rest = append(rest, r)
				}
			}
			s.pending = rest
			s.e.OnResults(batch, s.now)
			s.e.TakeProbeResult()
		}
		if tick%20 == 19 {
			estimates = append(estimates, s.e.Estimate())
		}
	}
	return estimates
}

func meanOf(xs []int) float64 {
	var sum float64
	for _, x := range xs {
		sum += float64(x)
	}
	return sum / float64(len(xs))
}

// On a 400 kbit/s link (tbf with a 120 ms queue) with far more to send,
// the estimate settles near the capacity.
func TestEstimatorFindsNarrowLink(t *testing.T) {
	s := newSimRun(600_000, &simLink{capacity: 400_000, maxQueue: 120 * time.Millisecond, prop: 10 * time.Millisecond}, 3_000_000)
	est := s.run(30 * time.Second)
	late := meanOf(est[len(est)-100:]) // the last 10 s
	if late < 250_000 || late > 480_000 {
		t.Errorf("mean estimate over the last 10 s: %.0f bps on a 400 kbit/s link", late)
	}
	first := 0
	for i, e := range est {
		if e <= 450_000 {
			first = i
			break
		}
	}
	if first > 30 {
		t.Errorf("the estimate took %d00 ms to come under 450 kbit/s", first)
	}
}

// When the link widens again, probing finds the room quickly.
func TestEstimatorRecoversWhenLinkWidens(t *testing.T) {
	link := &simLink{capacity: 300_000, maxQueue: 120 * time.Millisecond, prop: 10 * time.Millisecond}
	s := newSimRun(600_000, link, 1_500_000)
	s.run(20 * time.Second)
	if e := s.e.Estimate(); e > 400_000 {
		t.Fatalf("estimate %d on a 300 kbit/s link", e)
	}
	link.capacity = 2_000_000
	est := s.run(15 * time.Second)
	reached := -1
	for i, e := range est {
		if e >= 1_400_000 {
			reached = i
			break
		}
	}
	if reached < 0 || reached > 120 {
		t.Errorf("after the link widened to 2 Mbit/s the estimate reached 1.4 Mbit/s after %d00 ms (-1: never); last %d", reached, est[len(est)-1])
	}
}

// When the link narrows from 2 Mbit/s to 300 kbit/s under a 1.6 Mbit/s
// stream, the estimate follows within a second and a half (the layer a
// subscriber gets must go down within 3 s, keyframe included).
func TestEstimatorFollowsLinkThatNarrows(t *testing.T) {
	link := &simLink{capacity: 2_000_000, maxQueue: 120 * time.Millisecond, prop: 10 * time.Millisecond}
	s := newSimRun(600_000, link, 1_600_000)
	s.run(20 * time.Second)
	if e := s.e.Estimate(); e < 1_500_000 {
		t.Fatalf("estimate %d sending 1.6 Mbit/s on a 2 Mbit/s link", e)
	}
	link.capacity = 300_000
	est := s.run(5 * time.Second)
	under := -1
	for i, e := range est {
		if e <= 360_000 {
			under = i
			break
		}
	}
	if under < 0 || under > 15 {
		t.Errorf("after the link narrowed to 300 kbit/s the estimate came under 360 kbit/s after %d00 ms (-1: never); estimates %v", under, est[:20])
	}
}

// With no bottleneck in the way the estimate follows what is sent and
// does not fall.
func TestEstimatorStaysOnAWideLink(t *testing.T) {
	s := newSimRun(600_000, &simLink{capacity: 50_000_000, maxQueue: 120 * time.Millisecond, prop: 10 * time.Millisecond}, 1_000_000)
	est := s.run(20 * time.Second)
	if late := meanOf(est[len(est)-50:]); late < 1_000_000 {
		t.Errorf("mean estimate %.0f bps sending 1 Mbit/s on a wide link", late)
	}
}

// Feedback built by Pion's TWCC recorder (what a Pion receiver sends) is
// read back into the packets' send and arrival times, losses included.
func TestFeedbackResults(t *testing.T) {
	var h sendHistory
	t0 := time.Unix(2000, 0)
	for i := range 40 {
		seq := h.add(1000+i, t0.Add(time.Duration(i)*time.Millisecond), 0)
		if seq != uint16(i) {
			t.Fatalf("sequence number %d for packet %d", seq, i)
		}
	}
	rec := twcc.NewRecorder(1)
	arrival := t0.Add(30 * time.Millisecond)
	for i := range 40 {
		if i%10 == 3 {
			continue // lost
		}
		rec.Record(5000, uint16(i), arrival.Add(time.Duration(i)*2*time.Millisecond).UnixMicro())
	}
	var results []packetResult
	for _, p := range rec.BuildFeedbackPacket() {
		raw, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		pkts, err := rtcp.Unmarshal(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range pkts {
			if fb, ok := q.(*rtcp.TransportLayerCC); ok {
				results = append(results, h.feedbackResults(fb, nil)...)
			}
		}
	}
	if len(results) != 40 {
		t.Fatalf("%d results, want 40", len(results))
	}
	var lost int
	for i, r := range results {
		if r.size != 1000+i || !r.sent.Equal(t0.Add(time.Duration(i)*time.Millisecond)) {
			t.Errorf("packet %d: size %d sent %v", i, r.size, r.sent.Sub(t0))
		}
		if !r.received {
			lost++
			continue
		}
		if i > 0 {
			prev := results[i-1]
			if prev.received && r.arrived.Sub(prev.arrived) != 2*time.Millisecond {
				t.Errorf("packet %d arrived %v after the one before, want 2ms", i, r.arrived.Sub(prev.arrived))
			}
		}
	}
	if lost != 4 {
		t.Errorf("%d lost, want 4", lost)
	}
}
