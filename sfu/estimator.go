package sfu

import (
	"math"
	"sort"
	"time"
)

// Estimator finds how many bits per second one subscriber's link carries,
// from the TWCC feedback of what was sent to it: the delay-based part of
// Google Congestion Control (packet groups, a trendline of their delay
// variation, an adaptive overuse threshold, AIMD rate control) and its
// loss-based part, the estimate being the lower of the two. It is a pure
// state machine fed with feedback results: no I/O, no locks.
type Estimator struct {
	min, max float64
	rate     float64 // delay-based estimate
	lossCap  float64 // loss-based estimate

	// Packet groups (bursts sent within groupSpan) and their delay variation.
	group, prev packetGroup
	trend       trendline
	detector    overuseDetector
	usage       bandwidthUsage
	control     rateControl
	lastUpdate  time.Time

	// Acknowledged bitrate: what the receiver got, by arrival time.
	ackedBytes int
	ackedCount int
	ackedStart time.Time
	ackedLast  time.Time
	acked      float64 // bps, smoothed; 0 until known
	ackedNow   float64 // bps over the last window alone: a drop shows here first

	// Loss over the current window.
	lossSent, lossLost int
	lossStart          time.Time
	lastLoss           float64

	probe       probeCluster
	probeResult int  // bps found by the last finished probe cluster (0: it failed)
	probeWhole  bool // ... and the link carried all of it as it was sent
	probeDone   bool // a probe finished and its result was not taken yet

	lastCongestion time.Time // when overuse or loss last lowered the estimate
	lastDecrease   time.Time // when overuse last lowered it

	// avgMax and varMax describe the acknowledged rates at which the link
	// was last found overused (to slow down near them).
	avgMax, varMax float64
}

// Estimator tuning, from GCC (draft-ietf-rmcat-gcc-02) and libwebrtc.
const (
	groupSpan         = 5 * time.Millisecond
	trendWindow       = 20
	trendSmoothing    = 0.9
	trendGain         = 4.0
	overuseTime       = 10 * time.Millisecond
	decreaseFactor    = 0.85
	lossWindow        = 500 * time.Millisecond
	ackedWindow       = 250 * time.Millisecond
	decreaseInterval  = 200 * time.Millisecond // overuse lasting longer lowers the estimate again
	ackedHeadroom     = 1.5                    // the estimate stays under this times what arrives
	increasePerSecond = 1.08
	additivePerSecond = 1200 * 8 / 0.2 // a packet per response time (RTT + 100 ms, RTT taken as 100 ms)
	probeQueueGrowth  = 20 * time.Millisecond
)

type bandwidthUsage uint8

const (
	usageNormal bandwidthUsage = iota
	usageOver
	usageUnder
)

type rateControl uint8

const (
	controlHold rateControl = iota
	controlIncrease
	controlDecrease
)

// NewEstimator starts at initial bps, never below min nor above max.
func NewEstimator(initial, min, max int) *Estimator {
	e := &Estimator{min: float64(min), max: float64(max), rate: float64(initial), lossCap: float64(max)}
	e.detector.threshold = 12.5
	e.control = controlIncrease
	return e
}

// Estimate is the link's estimated bitrate in bps.
func (e *Estimator) Estimate() int {
	return int(math.Max(e.min, math.Min(e.rate, e.lossCap)))
}

// Acked is the bitrate the receiver got lately (0 until known).
func (e *Estimator) Acked() int { return int(e.acked) }

// Loss is the share of packets lost in the last loss window.
func (e *Estimator) Loss() float64 { return e.lastLoss }

// CongestedSince reports whether overuse or loss lowered the estimate
// after t: only then is the estimate a measured ceiling rather than a
// guess that has not been exceeded yet.
func (e *Estimator) CongestedSince(t time.Time) bool { return e.lastCongestion.After(t) }

// Overusing reports whether the link was found overused at the last feedback.
func (e *Estimator) Overusing() bool { return e.usage == usageOver }

// packetGroup is packets sent in one burst.
type packetGroup struct {
	firstSent, lastSent, lastArrived time.Time
	size                             int
	started                          bool
}

// OnResults feeds one feedback's packets (in sequence order) and returns
// the new estimate.
func (e *Estimator) OnResults(results []packetResult, now time.Time) int {
	for i := range results {
		r := &results[i]
		if r.probe != 0 && r.probe == e.probe.id {
			e.probe.add(r)
		}
		e.noteLoss(r, now)
		if !r.received {
			continue
		}
		e.noteAcked(r)
		e.addToGroup(r)
	}
	e.updateRate(now)
	e.finishProbe()
	return e.Estimate()
}

// probeCluster is a burst sent above the estimate (media and padding) to
// find out whether the link carries more: if what arrives keeps pace with
// what was sent, it does.
type probeCluster struct {
	id                 uint32
	expected, reported int
	packets            []packetResult // received ones
}

func (c *probeCluster) add(r *packetResult) {
	c.reported++
	if r.received && len(c.packets) < maxProbePackets {
		c.packets = append(c.packets, *r)
	}
}

// maxProbePackets bounds what one cluster keeps.
const maxProbePackets = 1024

// ProbeSent says that probe cluster id is out: packets were sent in it.
// Its results are taken when the feedback has reported them.
func (e *Estimator) ProbeSent(id uint32, packets int) {
	if e.probe.id == id {
		e.probe.expected = packets
		return
	}
	e.probe = probeCluster{id: id, expected: packets, packets: e.probe.packets[:0]}
}

// Set takes a receiver's own estimate (REMB) as the estimate.
func (e *Estimator) Set(bps int) {
	e.rate = math.Max(e.min, math.Min(float64(bps), e.max))
	e.lossCap = e.max
}

// Raise lifts the estimate to bps at once (a trial: the subscriber will be
// sent that much, and congestion, if any, brings it down again).
func (e *Estimator) Raise(bps int) {
	r := math.Min(float64(bps), e.max)
	e.rate = math.Max(e.rate, r)
	e.lossCap = math.Max(e.lossCap, r)
}

// StartProbe opens probe cluster id: packets sent in it are measured.
func (e *Estimator) StartProbe(id uint32) {
	e.probe = probeCluster{id: id, packets: e.probe.packets[:0]}
}

// TakeProbeResult returns, once, what the last finished probe found:
// the bps the link carried (0 when the probe told nothing), and whether
// it carried the probe whole (no queue grew, all arrived as fast as it was
// sent: the link may carry more than was sent).
func (e *Estimator) TakeProbeResult() (bps int, whole, done bool) {
	if !e.probeDone {
		return 0, false, false
	}
	e.probeDone = false
	return e.probeResult, e.probeWhole, true
}

// finishProbe measures a cluster once the feedback reported it, over the
// packets sent in its second half: a shaper's burst allowance (a token
// bucket passes its first bytes at line rate) is spent by then. What
// arrived, bounded by what was sent, is what the link carries; a receive
// rate well under the send rate, or a queue that grew, says the probe
// asked too much.
func (e *Estimator) finishProbe() {
	c := &e.probe
	if c.id == 0 || c.expected == 0 || c.reported < c.expected*9/10 {
		return
	}
	defer func() {
		*c = probeCluster{packets: c.packets[:0]}
		e.probeDone = true
	}()
	e.probeResult, e.probeWhole = 0, false
	if len(c.packets) < 10 {
		return
	}
	sort.Slice(c.packets, func(a, b int) bool { return c.packets[a].sent.Before(c.packets[b].sent) })
	first, last := c.packets[0], c.packets[len(c.packets)-1]
	saturated := last.arrived.Sub(last.sent)-first.arrived.Sub(first.sent) > probeQueueGrowth // a queue built up
	mid := first.sent.Add(last.sent.Sub(first.sent) / 2)
	half := c.packets[sort.Search(len(c.packets), func(i int) bool { return !c.packets[i].sent.Before(mid) }):]
	if len(half) < 5 {
		return
	}
	firstSent, lastSent := half[0].sent, half[len(half)-1].sent // sorted by sending
	var firstArr, lastArr time.Time
	bytes := 0
	for i, r := range half {
		if i == 0 || r.arrived.Before(firstArr) {
			firstArr = r.arrived
		}
		if r.arrived.After(lastArr) {
			lastArr = r.arrived
		}
		bytes += r.size
	}
	sendSpan, recvSpan := lastSent.Sub(firstSent), lastArr.Sub(firstArr)
	if sendSpan < time.Millisecond || recvSpan < time.Millisecond {
		return
	}
	bits := float64((bytes - half[len(half)-1].size) * 8) // n packets make n-1 gaps
	sendRate, recvRate := bits/sendSpan.Seconds(), bits/recvSpan.Seconds()
	rate := math.Min(sendRate, recvRate)
	if saturated || recvRate < 0.9*sendRate {
		// The link fell behind: what it let through is its capacity,
		// less a margin (as libwebrtc's probe estimator does).
		rate = 0.95 * recvRate
	}
	e.probeResult = int(rate)
	e.probeWhole = !saturated && recvRate >= 0.9*sendRate
	if rate > float64(e.Estimate()) && e.usage != usageOver {
		e.rate = math.Min(rate, e.max)
		e.lossCap = math.Max(e.lossCap, e.rate)
		e.acked = math.Max(e.acked, rate) // what arrived: the headroom cap follows
	}
}

// addToGroup adds a received packet to the current burst; a packet sent
// later than groupSpan after the burst began closes it, and the delay
// variation between it and the burst before feeds the trendline.
func (e *Estimator) addToGroup(r *packetResult) {
	g := &e.group
	if !g.started {
		*g = packetGroup{firstSent: r.sent, lastSent: r.sent, lastArrived: r.arrived, size: r.size, started: true}
		return
	}
	if r.sent.Before(g.firstSent) {
		return // reordered from an earlier burst
	}
	if r.sent.Sub(g.firstSent) <= groupSpan {
		if r.sent.After(g.lastSent) {
			g.lastSent = r.sent
		}
		if r.arrived.After(g.lastArrived) {
			g.lastArrived = r.arrived
		}
		g.size += r.size
		return
	}
	if e.prev.started {
		sendDelta := g.lastSent.Sub(e.prev.lastSent)
		arrivalDelta := g.lastArrived.Sub(e.prev.lastArrived)
		variation := float64(arrivalDelta-sendDelta) / float64(time.Millisecond)
		trend := e.trend.update(variation, g.lastArrived)
		e.usage = e.detector.detect(trend, sendDelta, g.lastArrived, e.trend.deltas)
	}
	e.prev = *g
	*g = packetGroup{firstSent: r.sent, lastSent: r.sent, lastArrived: r.arrived, size: r.size, started: true}
}

func (e *Estimator) noteAcked(r *packetResult) {
	if e.ackedStart.IsZero() {
		e.ackedStart = r.arrived
	}
	e.ackedBytes += r.size
	e.ackedCount++
	if r.arrived.After(e.ackedLast) {
		e.ackedLast = r.arrived
	}
	if span := e.ackedLast.Sub(e.ackedStart); span >= ackedWindow {
		rate := float64(e.ackedBytes*8) / span.Seconds()
		e.ackedNow = 0 // fewer packets say little
		if e.ackedCount >= 10 {
			e.ackedNow = rate
		}
		if e.acked == 0 {
			e.acked = rate
		} else {
			e.acked = 0.5*e.acked + 0.5*rate
		}
		e.ackedBytes, e.ackedCount, e.ackedStart = 0, 0, e.ackedLast
	}
}

// noteLoss counts sent and lost packets; every lossWindow the loss-based
// estimate follows the share lost: more than 10 % lowers it, less than
// 2 % lets it rise (GCC's loss-based controller).
func (e *Estimator) noteLoss(r *packetResult, now time.Time) {
	if e.lossStart.IsZero() {
		e.lossStart = now
	}
	e.lossSent++
	if !r.received {
		e.lossLost++
	}
	if now.Sub(e.lossStart) < lossWindow || e.lossSent < 10 {
		return
	}
	loss := float64(e.lossLost) / float64(e.lossSent)
	e.lastLoss = loss
	switch {
	case loss > 0.1:
		// Down by half the share lost, but not below what arrived: under
		// heavy loss that is what the link carries.
		floor := math.Max(e.min, decreaseFactor*e.arrived())
		e.lossCap = math.Max(floor, math.Min(e.lossCap, e.rate)*(1-0.5*loss))
		e.rate = math.Min(e.rate, e.lossCap)
		e.lastCongestion = now
	case loss < 0.02:
		e.lossCap = math.Min(e.max, e.lossCap*1.08)
	}
	e.lossSent, e.lossLost, e.lossStart = 0, 0, now
}

// updateRate runs the AIMD rate control on the latest usage.
func (e *Estimator) updateRate(now time.Time) {
	dt := time.Duration(0)
	if !e.lastUpdate.IsZero() {
		dt = min(now.Sub(e.lastUpdate), time.Second)
	}
	e.lastUpdate = now
	switch e.usage {
	case usageOver:
		// Down to a little under what arrives; again while the overuse
		// lasts and less arrives than the estimate (a link that narrowed a
		// lot takes more than one step).
		again := e.acked > 0 && e.lastLoss >= lossyShare && now.Sub(e.lastDecrease) >= decreaseInterval && e.arrived() < 0.9*e.rate
		if e.control != controlDecrease || again {
			base := e.rate
			if e.acked > 0 {
				base = e.arrived()
				if e.control != controlDecrease {
					e.noteMax(base) // once an episode: where the link was found full
				}
			}
			e.rate = math.Max(e.min, math.Min(e.rate, decreaseFactor*base))
			e.control = controlDecrease
			e.lastCongestion, e.lastDecrease = now, now
		}
		return
	case usageUnder:
		e.control = controlHold
		return
	}
	if e.control != controlIncrease {
		e.control = controlIncrease
		return // one feedback of calm before rising again
	}
	next := e.rate * math.Pow(increasePerSecond, dt.Seconds())
	if e.avgMax > 0 && e.acked > 0 && math.Abs(e.acked-e.avgMax) <= 3*math.Sqrt(e.varMax*e.avgMax) {
		// Near the rate that overused the link last time: rise by about a
		// packet per response time (RTT + 100 ms, RTT taken as 100 ms).
		next = e.rate + additivePerSecond*dt.Seconds()
	}
	if e.acked > 0 && next > ackedHeadroom*e.acked+10_000 {
		// Do not rise far above what actually arrives (sending less than
		// the estimate proves nothing about more); this never lowers it.
		next = math.Max(e.rate, ackedHeadroom*e.acked+10_000)
	}
	e.rate = math.Max(e.min, math.Min(next, e.max))
}

// arrived is what the receiver gets now, as far as the feedback tells:
// the smoothed acknowledged rate, or the last window's if lower (a link
// that just narrowed).
func (e *Estimator) arrived() float64 {
	if e.ackedNow > 0 && e.lastLoss >= lossyShare {
		return math.Min(e.acked, e.ackedNow)
	}
	return e.acked
}

// lossyShare is the loss that, with overuse, says the link narrowed
// (a tbf, a radio) rather than a queue wobbling: only then does the
// estimate follow the last window's arrival rate and fall again while
// the overuse lasts. A busy receiver or sender delays packets without
// losing them.
const lossyShare = 0.02

// noteMax keeps the mean and variance (normalized by the mean) of the
// acknowledged rates at overuse.
func (e *Estimator) noteMax(rate float64) {
	if e.avgMax == 0 {
		e.avgMax = rate
		e.varMax = 0.4
		return
	}
	if math.Abs(rate-e.avgMax) > 3*math.Sqrt(e.varMax*e.avgMax) {
		e.avgMax = rate // the link changed: start over
		e.varMax = 0.4
		return
	}
	e.avgMax = 0.95*e.avgMax + 0.05*rate
	norm := math.Max(e.avgMax, 1)
	e.varMax = math.Max(0.4, math.Min(2.5, 0.95*e.varMax+0.05*(e.avgMax-rate)*(e.avgMax-rate)/norm))
}

// trendline fits a line through the recent smoothed accumulated delay
// variation: its slope says whether queues are growing.
type trendline struct {
	accumulated, smoothed float64
	first                 time.Time
	xs, ys                [trendWindow]float64
	n, next               int
	deltas                int
}

func (t *trendline) update(variation float64, arrived time.Time) float64 {
	if t.first.IsZero() {
		t.first = arrived
	}
	t.deltas = min(t.deltas+1, 1000)
	t.accumulated += variation
	t.smoothed = trendSmoothing*t.smoothed + (1-trendSmoothing)*t.accumulated
	t.xs[t.next] = float64(arrived.Sub(t.first)) / float64(time.Millisecond)
	t.ys[t.next] = t.smoothed
	t.next = (t.next + 1) % trendWindow
	t.n = min(t.n+1, trendWindow)
	if t.n < trendWindow {
		return 0
	}
	var sx, sy float64
	for i := range t.n {
		sx += t.xs[i]
		sy += t.ys[i]
	}
	mx, my := sx/float64(t.n), sy/float64(t.n)
	var num, den float64
	for i := range t.n {
		num += (t.xs[i] - mx) * (t.ys[i] - my)
		den += (t.xs[i] - mx) * (t.xs[i] - mx)
	}
	if den == 0 {
		return 0
	}
	return num / den
}

// overuseDetector compares the trend with a threshold that adapts to it.
type overuseDetector struct {
	state       bandwidthUsage
	threshold   float64
	overusing   time.Duration // -1: not overusing
	overuses    int
	prevTrend   float64
	lastUpdate  time.Time
	initialized bool
}

func (d *overuseDetector) detect(slope float64, sendDelta time.Duration, now time.Time, deltas int) bandwidthUsage {
	if !d.initialized {
		d.initialized, d.overusing = true, -1
	}
	if deltas < 2 {
		return usageNormal
	}
	trend := float64(min(deltas, 60)) * slope * trendGain
	switch {
	case trend > d.threshold:
		// Overuse only once it lasts and does not shrink.
		if d.overusing == -1 {
			d.overusing = sendDelta / 2
		} else {
			d.overusing += sendDelta
		}
		d.overuses++
		if d.overusing > overuseTime && d.overuses > 1 && trend >= d.prevTrend {
			d.overusing, d.overuses = 0, 0
			d.state = usageOver
		}
	case trend < -d.threshold:
		d.overusing, d.overuses = -1, 0
		d.state = usageUnder
	default:
		d.overusing, d.overuses = -1, 0
		d.state = usageNormal
	}
	d.prevTrend = trend
	d.adapt(trend, now)
	return d.state
}

// adapt moves the threshold toward the trend: fast down, slow up, so that
// competing flows do not starve us and a quiet link stays sensitive.
func (d *overuseDetector) adapt(trend float64, now time.Time) {
	if d.lastUpdate.IsZero() {
		d.lastUpdate = now
	}
	abs := math.Abs(trend)
	if abs > d.threshold+15 {
		d.lastUpdate = now // a spike: not a reason to move
		return
	}
	k := 0.0087
	if abs < d.threshold {
		k = 0.039
	}
	dt := math.Min(float64(now.Sub(d.lastUpdate))/float64(time.Millisecond), 100)
	d.threshold = math.Max(6, math.Min(600, d.threshold+k*(abs-d.threshold)*dt))
	d.lastUpdate = now
}
