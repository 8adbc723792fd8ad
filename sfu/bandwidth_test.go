package sfu

import (
	"testing"
	"time"
)

// probeThrough feeds b's estimator a probe cluster sent at bps for 300 ms
// over a link that carries it whole, and the feedback on it at the end.
func probeThrough(b *bandwidth, id uint32, bps float64, start time.Time) time.Time {
	b.est.StartProbe(id)
	const size = 300 // padding packets are about as small
	gap := time.Duration(float64(size*8) / bps * float64(time.Second))
	var results []packetResult
	at := start
	for ; at.Before(start.Add(300 * time.Millisecond)); at = at.Add(gap) {
		results = append(results, packetResult{sent: at, arrived: at.Add(20 * time.Millisecond), size: size, received: true, probe: id})
	}
	b.est.ProbeSent(id, len(results))
	end := at.Add(50 * time.Millisecond)
	b.est.OnResults(results, end)
	return end
}

// lossThrough feeds b's estimator 1.2 s of packets at bps, a third of
// them lost (congestion), with feedback every 100 ms.
func lossThrough(b *bandwidth, bps float64, start time.Time) time.Time {
	const size = 1200
	gap := time.Duration(float64(size*8) / bps * float64(time.Second))
	var results []packetResult
	at, fed := start, start
	for i := 0; at.Before(start.Add(1200 * time.Millisecond)); i, at = i+1, at.Add(gap) {
		r := packetResult{sent: at, size: size, received: i%3 != 0}
		if r.received {
			r.arrived = at.Add(20 * time.Millisecond)
		}
		results = append(results, r)
		if at.Sub(fed) >= 100*time.Millisecond {
			fed = at
			b.est.OnResults(results, at.Add(50*time.Millisecond))
			results = results[:0]
		}
	}
	end := at.Add(50 * time.Millisecond)
	b.est.OnResults(results, end)
	return end
}

// A link that was narrow for a while (probes finding nothing, the backoff
// at its most) widens: the first probe that finds more starts the backoff
// over, so that congestion soon after (a keyframe of the layer the probe
// let in) holds probing back for 6 s, not 8; a probe that told nothing
// leaves the backoff as it was.
func TestProbeThatFindsMoreStartsBackoffOver(t *testing.T) {
	b := newBandwidth(250_000, 0)
	now := time.Unix(1000, 0)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backoff = maxProbeBackoff // after the narrow time
	est := b.est.Estimate()
	b.probeTarget, b.probeFrom = est*5/4, est
	now = probeThrough(b, 1, float64(est)*5/4, now)
	bps, whole, done := b.afterProbes(now, b.est.Estimate())
	if !done || !whole || bps < est*6/5 {
		t.Fatalf("probe result %d bps, whole %v, done %v: want it whole, above %d", bps, whole, done, est*6/5)
	}
	if b.backoff != probeEvery || b.nextProbe != now.Add(probeAgain) || b.step != 2*probeStep {
		t.Errorf("after a probe found more: backoff %v, next probe in %v, step %.2f; want %v, %v, %.2f",
			b.backoff, b.nextProbe.Sub(now), b.step, probeEvery, probeAgain, 2*probeStep)
	}

	now = lossThrough(b, float64(bps), now.Add(100*time.Millisecond))
	if !b.est.CongestedSince(b.probeRaised) {
		t.Fatal("the lossy feedback did not count as congestion")
	}
	b.afterProbes(now, b.est.Estimate())
	if want := 2 * probeEvery; b.backoff != want || b.nextProbe != now.Add(want) || b.step != probeStep {
		t.Errorf("congestion after the probe: backoff %v, next probe in %v, step %.2f; want %v, %v, %.2f",
			b.backoff, b.nextProbe.Sub(now), b.step, want, want, probeStep)
	}

	// A probe sent whole but at no more than the estimate (padding waits
	// for frames) told nothing: again after probeEvery, the backoff as it
	// was.
	est = b.est.Estimate()
	b.probeTarget, b.probeFrom = est*5/4, est
	now = probeThrough(b, 2, float64(est)*3/4, now.Add(time.Second))
	if bps, whole, done := b.afterProbes(now, b.est.Estimate()); !done || !whole || bps > est {
		t.Fatalf("probe result %d bps, whole %v, done %v: want it whole, at most %d", bps, whole, done, est)
	}
	if want := 2 * probeEvery; b.backoff != want || b.nextProbe != now.Add(probeEvery) {
		t.Errorf("a probe that told nothing: backoff %v, next probe in %v; want %v, %v", b.backoff, b.nextProbe.Sub(now), want, probeEvery)
	}

	// A probe that finds nothing doubles the backoff, up to its most.
	for i, want := range []time.Duration{maxProbeBackoff, maxProbeBackoff} {
		b.probeTarget, b.probeFrom = b.est.Estimate()*5/4, b.est.Estimate()
		id := uint32(3 + i)
		b.est.StartProbe(id)
		b.est.ProbeSent(id, 1) // one packet sent, reported lost
		b.est.OnResults([]packetResult{{sent: now, size: 1200, probe: id}}, now.Add(50*time.Millisecond))
		now = now.Add(50 * time.Millisecond)
		if _, _, done := b.afterProbes(now, b.est.Estimate()); !done || b.backoff != want {
			t.Errorf("probe %d that found nothing: done %v, backoff %v, want %v", id, done, b.backoff, want)
		}
	}
}
