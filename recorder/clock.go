package recorder

import (
	"slices"
	"time"
)

// Timing. A track's frames are placed on the recording's timeline by the
// publisher's clock: the sender reports map each track's RTP clock to the
// publisher's wall clock, the same for its audio and its video, and one
// offset per publishing peer maps that clock to ours. A track whose
// reports do not come within srWait is placed by arrival instead.
const (
	srWait = 5 * time.Second
	// maxSkew is how far a frame's place may be from its arrival before
	// the track is placed anew (the publisher restarted its clock).
	maxSkew = 3 * time.Second
	// audioLag is how much later than its sender reports say audio is
	// placed: where a browser in the class plays it against the video.
	// A WebRTC receiver leaves an audio/video difference under 30 ms
	// alone (its synchronization's dead band) and comes to it from where
	// its jitter buffers start, audio behind; Chromium receiving a class
	// settles with its audio 15-38 ms behind what the reports say, for a
	// Chromium sender and a Go one alike (TestRecordingInStepWithPlayout,
	// docs/recorder.md). Placed by the reports alone, a recording had its
	// audio that much ahead of what participants saw.
	audioLag = 30 * time.Millisecond
)

// peerClock is the offset from a publishing peer's wall clock to the
// recording's timeline, shared by the peer's tracks.
type peerClock struct {
	set   bool
	delta time.Duration // timeline = publisher's clock + delta
}

// senderReport is an RTCP sender report: the publisher's wall clock (NTP)
// at one RTP time.
type senderReport struct {
	ntp time.Duration // since the NTP epoch
	rtp uint32
}

func ntpDuration(ntp uint64) time.Duration {
	secs, frac := ntp>>32, ntp&0xffffffff
	return time.Duration(secs)*time.Second + time.Duration((frac*uint64(time.Second))>>32)
}

// trackClock places one track's frames on the timeline.
type trackClock struct {
	rate uint32
	peer *peerClock

	started bool
	lastTS  uint32
	ext     int64 // extended RTP time of lastTS

	sr      *senderReport
	srExt   int64
	srKnown bool

	anchored  bool
	byArrival bool
	base      time.Duration // byArrival: timeline of RTP time baseExt
	baseExt   int64

	// After anchoring, frames follow the anchoring report's line, moved by
	// corr, which slews toward what later reports say (the median of the
	// last few): a sender's reports jitter by its own scheduling, while its
	// clocks drift slowly; frames must neither jump nor go back.
	anchorSR    senderReport
	anchorSRExt int64
	targets     []time.Duration
	corr        time.Duration
	corrExt     int64 // RTP time corr was last moved at
}

// Slewing of the correction: at most slewPerSecond per second of media,
// toward the median of the last reportWindow reports. Two reports in a
// row that agree (within stepAgree) on a correction over stepOver later
// than the current one are taken at once: the sender's capture stalled
// (a browser's microphone after a hiccup: its RTP clock counts samples,
// its reports say when they were captured), and what follows goes after
// the gap, as a receiver plays it, rather than seconds early.
const (
	slewPerSecond = 20 * time.Millisecond
	reportWindow  = 5
	stepOver      = 25 * time.Millisecond
	stepAgree     = 5 * time.Millisecond
)

// extend gives an RTP timestamp a 64-bit number, near the last one.
func (c *trackClock) extend(ts uint32) int64 {
	if !c.started {
		c.started = true
		c.lastTS, c.ext = ts, 1<<32+int64(ts)
		if c.sr != nil && !c.srKnown {
			c.srExt, c.srKnown = c.ext+int64(int32(c.sr.rtp-ts)), true
		}
		return c.ext
	}
	ext := c.ext + int64(int32(ts-c.lastTS))
	if ext > c.ext {
		c.lastTS, c.ext = ts, ext
	}
	return ext
}

// report takes a sender report.
func (c *trackClock) report(sr senderReport) {
	c.sr = &sr
	c.srKnown = false
	if c.started {
		c.srExt, c.srKnown = c.ext+int64(int32(sr.rtp-c.lastTS)), true
	}
	if c.anchored && !c.byArrival && c.srKnown {
		// Where this report puts its own RTP time, against the anchor's line.
		c.targets = append(c.targets, sr.ntp-c.anchorTime(c.srExt))
		if len(c.targets) > reportWindow {
			c.targets = c.targets[1:]
		}
	}
}

// anchorTime is the publisher's clock at an RTP time by the anchoring report.
func (c *trackClock) anchorTime(ext int64) time.Duration {
	return c.anchorSR.ntp + c.ticks(ext-c.anchorSRExt)
}

// target is the median of the recent reports' corrections.
func (c *trackClock) target() time.Duration {
	if len(c.targets) == 0 {
		return 0
	}
	s := slices.Clone(c.targets)
	slices.Sort(s)
	return s[len(s)/2]
}

func (c *trackClock) ticks(d int64) time.Duration {
	return time.Duration(d) * time.Second / time.Duration(c.rate)
}

// publisherTime is the publisher's wall clock at an extended RTP time.
func (c *trackClock) publisherTime(ext int64) time.Duration {
	return c.sr.ntp + c.ticks(ext-c.srExt)
}

// timed is a frame with its extended RTP time and its arrival on the
// timeline.
type timed struct {
	frame
	ext     int64
	arrived time.Duration
}

// anchor places the track, given the frames waiting: by the sender report
// when there is one, else by arrival once waited is over srWait. The
// least-delayed frame sets the peer's offset, so that network jitter does
// not. A later track of the peer that shows a smaller delay lowers the
// offset when mayLower (nothing of the peer written yet); shift says by
// how much the frames placed so far move earlier.
func (c *trackClock) anchor(pending []timed, waited time.Duration, mayLower bool) (ok bool, shift time.Duration) {
	if c.anchored || len(pending) == 0 {
		return c.anchored, 0
	}
	if c.sr != nil && c.srKnown {
		best := pending[0].arrived - c.publisherTime(pending[0].ext)
		for _, f := range pending[1:] {
			best = min(best, f.arrived-c.publisherTime(f.ext))
		}
		switch {
		case !c.peer.set:
			c.peer.delta, c.peer.set = best, true
		case mayLower && best < c.peer.delta:
			shift = c.peer.delta - best
			c.peer.delta = best
		}
		c.anchored = true
		c.anchorSR, c.anchorSRExt = *c.sr, c.srExt
		c.corrExt = pending[0].ext
		return true, shift
	}
	if waited >= srWait {
		c.arrivalAnchor(pending)
		return true, 0
	}
	return false, 0
}

func (c *trackClock) arrivalAnchor(pending []timed) {
	c.baseExt = pending[0].ext
	c.base = pending[0].arrived
	for _, f := range pending[1:] {
		c.base = min(c.base, f.arrived-c.ticks(f.ext-c.baseExt))
	}
	c.anchored, c.byArrival = true, true
}

// place is a frame's time on the timeline.
func (c *trackClock) place(f timed) time.Duration {
	var at time.Duration
	if c.byArrival {
		at = c.base + c.ticks(f.ext-c.baseExt)
	} else {
		if f.ext > c.corrExt {
			if n := len(c.targets); n >= 2 && c.targets[n-1]-c.corr > stepOver &&
				(c.targets[n-1]-c.targets[n-2]).Abs() <= stepAgree {
				c.corr = c.targets[n-1]
				c.targets = append(c.targets[:0], c.targets[n-2:]...) // the reports before are past
			}
			step := c.ticks(f.ext-c.corrExt) * slewPerSecond / time.Second
			c.corr += max(-step, min(step, c.target()-c.corr))
			c.corrExt = f.ext
		}
		at = c.anchorTime(f.ext) + c.corr + c.peer.delta
	}
	if d := at - f.arrived; d > maxSkew || d < -maxSkew {
		c.arrivalAnchor([]timed{f})
		return f.arrived
	}
	return at
}
