package sfu

import (
	"time"

	"github.com/pion/rtcp"
)

// senderReportInterval is how often each subscriber gets a sender report
// per track.
const senderReportInterval = time.Second

// srClock is the last sender report of a publisher's track: its wall clock
// (NTP) and RTP clock at one instant, and when it reached us.
type srClock struct {
	ntp     uint64 // NTP timestamp, 32.32 fixed point
	rtp     uint32
	arrival time.Time
}

// noteSenderReport keeps the publisher's latest clock mapping of the
// layer it is about, and with it where that layer's RTP times fall on the
// publisher's wall clock (which all its layers share).
func (u *UpTrack) noteSenderReport(sr *rtcp.SenderReport, arrival time.Time) {
	for i := range u.layers {
		l := u.layers[i].Load()
		if l == nil || l.ssrc != sr.SSRC {
			continue
		}
		first := l.sr.Swap(&srClock{ntp: sr.NTPTime, rtp: sr.RTPTime, arrival: arrival}) == nil
		l.refOffset.Store(1<<32 | uint64(ntpTicks(sr.NTPTime, u.codec.ClockRate)-sr.RTPTime))
		if first {
			for _, d := range *u.downs.Load() {
				if d.reportSoon != nil {
					d.reportSoon()
				}
			}
		}
	}
}

// ntpTicks converts a 32.32 NTP time into RTP ticks at clockRate, modulo 2^32.
func ntpTicks(ntp uint64, clockRate uint32) uint32 {
	secs, frac := ntp>>32, ntp&0xffffffff
	return uint32(secs*uint64(clockRate) + frac*uint64(clockRate)>>32)
}

// senderReport is the report d sends its subscriber at now. It carries
// the publisher's own wall clock, moved on by the time since its report
// arrived, with the RTP time in the subscriber's numbering: receivers line
// up a publisher's audio and video exactly as the publisher captured them.
// None before the publisher has reported or d has sent anything.
func (d *DownTrack) senderReport(now time.Time) (*rtcp.SenderReport, bool) {
	d.mu.Lock()
	ssrc, bound, started := d.ssrc, d.writer != nil, d.fwd.started
	// The stream sent: a simulcast layer, or a scalable stream's one
	// (whichever of its spatial layers goes on).
	tsOffset, stream := d.fwd.tsOffset, d.fwd.layer
	d.mu.Unlock()
	l := d.up.layer(stream)
	if l == nil {
		return nil, false
	}
	// The clock of the layer being sent: each has its own RTP times.
	clock := l.sr.Load()
	if clock == nil {
		return nil, false
	}
	packets, octets := d.packets.Load(), d.octets.Load()
	if !bound || !started || packets == 0 {
		return nil, false
	}
	elapsed := now.Sub(clock.arrival)
	var ntp uint64
	var rtpTime uint32
	if elapsed >= 0 {
		ntp = clock.ntp + durationToNTP(elapsed)
		rtpTime = clock.rtp + rtpTicks(elapsed, d.up.codec.ClockRate)
	} else {
		ntp = clock.ntp - durationToNTP(-elapsed)
		rtpTime = clock.rtp - rtpTicks(-elapsed, d.up.codec.ClockRate)
	}
	return &rtcp.SenderReport{
		SSRC:        ssrc,
		NTPTime:     ntp,
		RTPTime:     rtpTime - tsOffset,
		PacketCount: uint32(packets),
		OctetCount:  uint32(octets),
	}, true
}

// durationToNTP converts a duration into 32.32 fixed-point seconds.
func durationToNTP(d time.Duration) uint64 {
	secs, rem := uint64(d/time.Second), uint64(d%time.Second)
	return secs<<32 | (rem<<32)/uint64(time.Second)
}

// sendReports sends a report for every track that has one to give.
func (s *Subscriber) sendReports(now time.Time, buf *[]rtcp.Packet) {
	pkts := (*buf)[:0]
	s.mu.Lock()
	for d := range s.tracks {
		if sr, ok := d.senderReport(now); ok {
			pkts = append(pkts, sr)
		}
	}
	s.mu.Unlock()
	// One compound packet per datagram: keep each well under the MTU.
	for rest := pkts; len(rest) > 0; {
		n := min(len(rest), reportsPerPacket)
		_ = s.pc.WriteRTCP(rest[:n])
		rest = rest[n:]
	}
	*buf = pkts
}

// reportsPerPacket bounds the sender reports in one RTCP packet: 28 bytes
// each, so 40 make 1,120 bytes before SRTCP's trailer.
const reportsPerPacket = 40

// reportSoon wakes the report loop.
func (s *Subscriber) reportSoon() {
	select {
	case s.reportNow <- struct{}{}:
	default:
	}
}
