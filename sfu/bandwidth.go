package sfu

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// twccExt holds one packet's transport-wide sequence number extension,
// reused packet after packet so that numbering allocates nothing.
type twccExt struct {
	exts [2]rtp.Extension // room for an AV1 dependency descriptor after it
	seq  [2]byte
}

// srtpOverhead is what SRTP and UDP add to an RTP packet on the wire,
// roughly (the AES-GCM tag, UDP and IP headers).
const srtpOverhead = 16 + 8 + 20

// bandwidth is one subscriber transport's view of its link: it numbers
// what is sent (TWCC), reads the feedback into an Estimator, shares the
// estimate among the subscriber's tracks (allocate) and probes for more
// when a track wants more than the estimate affords.
type bandwidth struct {
	// ready: the transport is up. Before, Pion drops what is written, and
	// numbered packets that never leave would read as lost.
	ready atomic.Bool
	probe atomic.Uint32 // the probe cluster being sent, 0 = none
	// (ready, probe and the history's head share a cache line: numbering
	// a forwarded packet reads them all.)
	history sendHistory

	mu           sync.Mutex
	est          *Estimator
	results      []packetResult
	twccSeen     bool
	rembSeen     bool
	lastFeedback time.Time
	allocated    int // the estimate the last allocation shared
	nextProbe    time.Time
	backoff      time.Duration
	step         float64 // the next probe's rate over the estimate
	probeTarget  int
	probeFrom    int // the estimate when the probe started
	probeID      uint32
	// A trial: the estimate raised to trial until trialEnd, where no
	// probe packets can be sent; it failed if congestion brought it down.
	trial    int
	trialEnd time.Time
	// probeRaised is when a probe last raised the estimate: congestion
	// soon after says it found less than it seemed.
	probeRaised time.Time
	// congested: loss or overuse at the last allocation; heavy: the
	// congestion included heavy loss for a while (the link narrowed, not
	// a passing queue). When such congestion clears the link may have
	// widened again: a probe soon finds out.
	congested, heavy bool
	// lossy counts the allocation rounds in a row with heavy loss: the
	// link does not carry what is sent even at the lowest layers, and no
	// dip of the estimate is to be bridged any more.
	lossy int
	// recent keeps the estimate of each allocation round lately (10 s):
	// a video is paused only when even the highest could not carry it, not
	// for a dip (every congestion signal cuts the estimate by 15 %).
	recent [pauseRounds]int
	round  int

	// Retransmissions may take resendShare of the estimate (a token
	// bucket): under heavy loss, answering every NACK would add to the
	// very congestion that lost the packets.
	resendMu     sync.Mutex
	resendTokens float64
	resendAt     time.Time
	resendRate   atomic.Int64 // bytes per second, from the estimate

	// For the quality indicator (LinkQuality): the feedback's loss, and
	// what the last allocation gave.
	loss             recentLoss
	limited, starved atomic.Bool

	kick chan struct{}
}

// Probing: a cluster lasts probeLength, at least probeEvery apart, more
// apart (up to maxProbeBackoff) while probes find nothing.
const (
	probeLength     = 300 * time.Millisecond
	probeStep       = 1.25 // a probe's rate over what flows, at first
	maxProbeStep    = 2.5  // ... and after probes the link carried whole
	probeAgain      = time.Second
	probeEvery      = 3 * time.Second
	maxProbeBackoff = 8 * time.Second
	allocEvery      = 500 * time.Millisecond
	// congestionMemory: a video is paused for bandwidth only while the
	// estimate has been lowered by congestion this recently.
	congestionMemory = 10 * time.Second
	staleFeedback    = 2 * time.Second
	pauseRounds      = 20 // allocation rounds (allocEvery) a pause looks back
	probeTrust       = 5 * time.Second
	heavyLoss        = 0.1
	lossyRounds      = 3
)

func newBandwidth(initial, maxRate int) *bandwidth {
	if initial <= 0 {
		initial = 600_000
	}
	if maxRate <= 0 {
		maxRate = 20_000_000
	}
	return &bandwidth{
		est:     NewEstimator(initial, 30_000, maxRate),
		backoff: probeEvery, step: probeStep, kick: make(chan struct{}, 1),
	}
}

// number gives a packet about to be sent its transport-wide sequence
// number, in ext's storage, and returns it (none while the transport is
// not up).
func (b *bandwidth) number(h *rtp.Header, ext *twccExt, id uint8, payloadLen int, now time.Time) (uint16, bool) {
	if !b.ready.Load() {
		return 0, false
	}
	size := h.MarshalSize() + 4 + payloadLen + int(h.PaddingSize) + srtpOverhead
	seq := b.history.add(size, now, b.probe.Load())
	ext.seq = [2]byte{byte(seq >> 8), byte(seq)}
	h.Extension = false
	h.Extensions = ext.exts[:0]
	_ = h.SetExtension(id, ext.seq[:])
	return seq, true
}

// Retransmission budget: a share of the estimate, with up to resendBurst
// of it saved up.
const (
	resendShare = 0.25
	resendBurst = 500 * time.Millisecond
)

// allowResend takes size bytes from the retransmission budget, if there.
func (b *bandwidth) allowResend(size int, now time.Time) bool {
	rate := float64(b.resendRate.Load())
	if rate == 0 {
		return true // no estimate yet
	}
	b.resendMu.Lock()
	defer b.resendMu.Unlock()
	if !b.resendAt.IsZero() {
		b.resendTokens = min(b.resendTokens+rate*now.Sub(b.resendAt).Seconds(), rate*resendBurst.Seconds())
	} else {
		b.resendTokens = rate * resendBurst.Seconds()
	}
	b.resendAt = now
	if b.resendTokens < float64(size) {
		return false
	}
	b.resendTokens -= float64(size)
	return true
}

// onFeedback reads a TWCC feedback into the estimate; a large change
// shares the bandwidth again at once.
func (b *bandwidth) onFeedback(fb *rtcp.TransportLayerCC, now time.Time) {
	b.mu.Lock()
	b.twccSeen = true
	b.lastFeedback = now
	b.results = b.history.feedbackResults(fb, b.results)
	est := b.est.OnResults(b.results, now)
	lost := 0
	for i := range b.results {
		if !b.results[i].received {
			lost++
		}
	}
	b.loss.add(now, len(b.results), lost)
	// Of what arrives, if more: the estimate dips below it under loss,
	// just when lost keyframes need resending most.
	b.resendRate.Store(int64(float64(max(est, b.est.Acked())) * resendShare / 8))
	moved := b.allocated == 0 || est < b.allocated*9/10 || est > b.allocated*11/10
	b.mu.Unlock()
	if moved {
		b.signal()
	}
}

// onREMB takes a receiver's own estimate where it sends no TWCC feedback.
func (b *bandwidth) onREMB(r *rtcp.ReceiverEstimatedMaximumBitrate) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.twccSeen {
		return
	}
	b.rembSeen = true
	// Clamped before the conversion: a REMB says up to 2^81 bps, and a
	// float beyond int's range converts to anything (on amd64, the least
	// int: the estimate's floor).
	b.est.Set(int(min(float64(r.Bitrate), b.est.max)))
}

func (b *bandwidth) signal() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// allocate gives each track the layer the estimate affords it.
func (s *Subscriber) allocate(now time.Time) {
	s.mu.Lock()
	downs := make([]*DownTrack, 0, len(s.tracks))
	for d := range s.tracks {
		downs = append(downs, d)
	}
	s.mu.Unlock()
	tracks := make([]allocTrack, len(downs))
	twcc := false
	for i, d := range downs {
		tracks[i] = d.allocState(now)
		twcc = twcc || tracks[i].twcc
	}
	b := s.bw
	b.mu.Lock()
	est := b.est.Estimate()
	if !twcc && !b.twccSeen && !b.rembSeen {
		est = int(b.est.max) // a receiver that gives no feedback: nothing to go by
	}
	b.allocated = est
	if bps, whole, done := b.afterProbes(now, est); done {
		s.engine.log.Debug("probe result", "subscriber", s.id, "bps", bps, "whole", whole, "estimate", est)
	}
	overusing, loss, acked := b.est.Overusing(), b.est.Loss(), b.est.Acked()
	mayPause := b.est.CongestedSince(now.Add(-congestionMemory))
	b.recent[b.round%pauseRounds] = est
	b.round++
	if loss >= heavyLoss && now.Sub(b.lastFeedback) <= staleFeedback {
		b.lossy++
	} else {
		b.lossy = 0
	}
	keep := est // the budget for keeping (not for moving up)
	if b.lossy < lossyRounds {
		for _, e := range b.recent {
			keep = max(keep, e)
		}
	}
	if now.Sub(b.lastFeedback) > staleFeedback {
		// No feedback lately (everything it was about is paused, or the
		// receiver went quiet): what the last said no longer holds.
		overusing, loss = false, 0
	}
	switch {
	case overusing || loss >= 0.05:
		b.congested = true
		b.heavy = b.heavy || b.lossy >= lossyRounds
	case b.congested && loss < 0.02:
		if b.heavy && b.nextProbe.After(now.Add(probeAgain)) {
			b.nextProbe = now.Add(probeAgain)
		}
		b.congested, b.heavy = false, false
	}
	b.mu.Unlock()
	s.engine.Stats.observeEstimate(est)

	a := allocate(float64(est), float64(keep), tracks, mayPause)
	layers, temporal, wanted, spent := a.layers, a.temporal, a.wanted, a.spent
	b.limited.Store(mayPause && spent < wanted*0.95)
	b.starved.Store(a.paused > 0)
	s.engine.log.Debug("bandwidth", "subscriber", s.id, "estimate", est, "acked", acked, "loss", loss, "overusing", overusing,
		"wanted", int(wanted), "layers", layers, "temporal", temporalLog(temporal))
	for i, d := range downs {
		if tracks[i].idle {
			continue
		}
		if d.setAllocation(layers[i], temporal[i]) {
			if layers[i] < 0 {
				s.engine.Stats.BandwidthPauses.Add(1)
			}
		}
	}
	// Probe when some track gets less than it wants and the estimate would
	// not let it move up (that needs upgradeMargin over the rate).
	if spent < wanted*0.95 && float64(est) < wanted*upgradeMargin*1.05 && !overusing && loss < 0.02 {
		s.maybeProbe(now, est, wanted, spent, downs)
	}
}

// afterProbes moves the next probe (its time, step and backoff) by what
// the last probe found, if it just finished (done), and by whether what
// a probe or a trial found has held since (est: the estimate allocated
// now). b.mu is held.
func (b *bandwidth) afterProbes(now time.Time, est int) (bps int, whole, done bool) {
	bps, whole, done = b.est.TakeProbeResult()
	if done {
		switch {
		case (bps >= b.probeTarget*95/100 || whole) && bps >= b.probeFrom*6/5,
			whole && bps > b.probeFrom*21/20:
			// The link carried all of it, above the estimate (or all that
			// could be sent, short of the target: padding comes only
			// between frames): probe again soon and further (it may have
			// widened a lot), as long as nothing contradicts it. The
			// backoff that probes finding nothing built up (on a narrower
			// link) starts over: congestion soon after doubles it from
			// probeEvery.
			b.step = min(2*b.step, maxProbeStep)
			b.backoff = probeEvery
			b.probeRaised = now
			b.nextProbe = now.Add(probeAgain)
		case bps > b.probeFrom*21/20:
			// A little more than the estimate: taken, but the link is about
			// found; probing again as often would mostly cost padding.
			b.backoff, b.step = min(2*b.backoff, maxProbeBackoff), probeStep
			b.probeRaised = now
			b.nextProbe = now.Add(b.backoff)
		case whole:
			// The link carried all that was sent, but that was no more
			// than the estimate (padding waits for frames, and few came):
			// it told nothing either way. Again after probeEvery, the
			// backoff as it was (seen: the first probe after a narrow link
			// widened again, with the queue it left still draining).
			b.nextProbe = now.Add(probeEvery)
		default:
			b.backoff, b.step = min(2*b.backoff, maxProbeBackoff), probeStep
			b.nextProbe = now.Add(b.backoff)
		}
	}
	switch {
	case b.probeRaised.IsZero():
	case b.est.CongestedSince(b.probeRaised):
		// What the probe found did not hold: probe less often, less far.
		b.backoff, b.step = min(2*b.backoff, maxProbeBackoff), probeStep
		b.nextProbe = now.Add(b.backoff)
		b.probeRaised = time.Time{}
	case now.Sub(b.probeRaised) >= probeTrust:
		b.backoff = probeEvery // it held
		b.probeRaised = time.Time{}
	}
	if b.trial > 0 && (est < b.trial*8/10 || !now.Before(b.trialEnd)) {
		if est < b.trial*8/10 {
			b.backoff = min(2*b.backoff, maxProbeBackoff)
		} else {
			b.backoff = probeEvery
		}
		b.nextProbe = now.Add(b.backoff)
		b.trial = 0
	}
	return bps, whole, done
}

// temporalLog shows temporal layers as numbers in logs, formatted only
// when the record is written.
type temporalLog []uint8

func (t temporalLog) LogValue() slog.Value { return slog.StringValue(fmt.Sprint([]uint8(t))) }

// maybeProbe sends a probe cluster when one is due: padding on a video
// track, on top of the media, for probeLength, so that the total reaches
// what the tracks want (at most probeStep times the estimate).
func (s *Subscriber) maybeProbe(now time.Time, est int, wanted, spent float64, downs []*DownTrack) {
	var via *DownTrack
	for _, d := range downs {
		if ok, sending := d.canProbe(); ok && (via == nil || sending) {
			via = d
			if sending {
				break
			}
		}
	}
	b := s.bw
	b.mu.Lock()
	if now.Before(b.nextProbe) || b.probe.Load() != 0 || b.trial > 0 {
		b.mu.Unlock()
		return
	}
	// Enough for what the tracks want to be granted (upgradeMargin), at
	// most b.step times what actually flows or probeStep times the
	// estimate, the more (sending less than the estimate, the estimate
	// may have drifted above anything the link has shown; but a probe
	// held to a trickle of media could never confirm it).
	base := float64(est)
	if acked := float64(b.est.Acked()); acked > 0 {
		base = min(base, acked)
	}
	target := min(wanted*upgradeMargin*1.05, max(base*b.step, float64(est)*probeStep))
	b.probeTarget, b.probeFrom = int(target), est
	if via == nil {
		// Nothing to pad (no video sending, or no TWCC feedback to learn
		// from): try the larger layers themselves.
		b.trial, b.trialEnd = int(target), now.Add(2*time.Second)
		b.est.Raise(b.trial)
		b.nextProbe = now.Add(b.backoff)
		b.mu.Unlock()
		s.engine.log.Debug("layer trial", "subscriber", s.id, "estimate", est, "target", int(target))
		s.bw.signal()
		return
	}
	b.probeID = b.probeID%0xffff + 1 // 1 to 65535: the send history keeps 16 bits
	id := b.probeID
	b.est.StartProbe(id)
	b.nextProbe = now.Add(b.backoff)
	b.mu.Unlock()
	s.engine.log.Debug("probe", "subscriber", s.id, "cluster", id, "estimate", est, "target", int(target), "media", int(spent))
	go s.runProbe(via, id, target, spent)
}

// runProbe sends probe packets for probeLength at the rate that brings
// the transport from the media's rate to target.
func (s *Subscriber) runProbe(via *DownTrack, id uint32, target, media float64) {
	b := s.bw
	b.probe.Store(id)
	b.history.mu.Lock()
	first := b.history.next
	b.history.mu.Unlock()
	// Padding can only go between frames: it piles up as credit and goes
	// out after the next frame's last packet.
	extra := max(target-media, target/4) * 0.005 / 8 // bytes per 5 ms tick
	packetSize := float64(paddingSize + 12 + 8 + srtpOverhead)
	t := time.NewTicker(5 * time.Millisecond)
	credit := 0.0
	end := time.Now().Add(probeLength)
	for now := time.Now(); now.Before(end); now = <-t.C {
		credit += extra
		if n := int(credit / packetSize); n > 0 {
			// One send call for the burst, not one per packet.
			s.engine.beginRound()
			sent := via.sendPadding(min(n, 50))
			s.engine.endRound()
			if sent > 0 {
				credit -= float64(sent)
				s.engine.Stats.ProbeBytes.Add(uint64(sent))
			}
		}
	}
	t.Stop()
	b.probe.Store(0)
	b.history.mu.Lock()
	sent := int(b.history.next - first)
	b.history.mu.Unlock()
	b.mu.Lock()
	b.est.ProbeSent(id, sent)
	b.mu.Unlock()
}

// allocState is what allocation needs of d now.
func (d *DownTrack) allocState(now time.Time) allocTrack {
	t := allocTrack{video: d.up.codecKind != codecAudio, priority: int(d.priority.Load())}
	for i := range MaxLayers {
		if rate, temporal, live := d.up.layerRates(i, now); live {
			t.rates[i], t.temporal[i] = max(rate, 1), temporal // 1: arriving, not measured yet
		}
	}
	d.mu.Lock()
	t.maxLayer = d.capLocked()
	t.idle = d.userPaused || d.viewHidden || d.writer == nil
	t.twcc = d.twccID != 0
	t.current = d.allocLayer
	if d.bwPaused {
		t.current = -1
	}
	d.mu.Unlock()
	return t
}

// canProbe reports whether d can carry probe packets: it has sent video,
// its subscriber gives TWCC feedback, and neither the subscriber nor the
// publisher paused it nor is it hidden (paused for bandwidth is fine: that
// is how the link is found to carry it again). sending says whether it
// is forwarding media now (the better carrier).
func (d *DownTrack) canProbe() (ok, sending bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ok = d.writer != nil && d.twccID != 0 && d.fwd.started && d.up.codecKind != codecAudio && !d.userPaused && !d.viewHidden
	return ok, ok && !d.fwd.Paused()
}

// paddingSize is the most one RTP packet's padding holds.
const paddingSize = 255

// sendPadding sends up to n padding-only packets on d's own stream, right
// after the end of a frame, numbered in the stream's sequence (the
// receiver counts them for congestion control and fills its sequence with
// them; Chromium leaves padding on the RTX stream, and RTX at all, out of
// its TWCC feedback). It returns the bytes sent, 0 when d is mid-frame.
func (d *DownTrack) sendPadding(n int) int {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.mu.Lock()
	first, ts, ok := d.fwd.Padding(n)
	w, ssrc, pt, twccID := d.writer, d.ssrc, d.pt, d.twccID
	d.mu.Unlock()
	if !ok || w == nil || twccID == 0 || d.bw == nil {
		return 0
	}
	total := 0
	for i := range n {
		h := &d.padHdr
		*h = rtp.Header{Version: 2, Padding: true, PaddingSize: paddingSize, SSRC: ssrc, PayloadType: pt,
			SequenceNumber: first + uint16(i), Timestamp: ts}
		twcc, numbered := d.bw.number(h, &d.padTWCC, twccID, 0, time.Now())
		d.noteTWCC(h.SequenceNumber, twcc, numbered)
		if d.padSeal == nil {
			d.padSeal = make([]byte, 12+8+paddingSize+64) // header, TWCC, padding, SRTP's tag
		}
		written, err := d.write(w, h, nil, d.padSeal)
		if err != nil {
			continue
		}
		total += written
	}
	return total
}
