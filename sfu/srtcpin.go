package sfu

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/srtp/v3"

	"github.com/vclass/vclass/internal/dtlssrtp"
)

// The direct path's receiving side. Once a subscriber's transport is up on
// UDP, its RTCP (congestion feedback, NACKs, PLIs: thousands of packets a
// second on a loaded node) is decrypted and handled on the goroutine that
// read it from the socket, as the socket's batch is taken apart, instead
// of going through Pion's ICE connection, DTLS mux, SRTCP session and RTP
// sender to one goroutine per down track: four hand-offs per packet and a
// fifth of a loaded node's CPU. STUN and DTLS still go to Pion, and RTCP
// too before the direct path is taken and over ICE-TCP.

// srtcpReplayWindow is how far back an SRTCP index may be and still be
// taken (once).
const srtcpReplayWindow = 64

// directRTCP reads one subscriber's SRTCP on the direct path.
type directRTCP struct {
	s   *Subscriber
	mu  sync.Mutex // during a route change two sockets' readers may call
	ctx *srtp.Context
	buf [maxPacketSize]byte

	taken atomic.Uint64 // packets decrypted
}

func newDirectRTCP(s *Subscriber, k *dtlssrtp.Keys) (*directRTCP, error) {
	ctx, err := srtp.CreateContext(k.RemoteKey, k.RemoteSalt, k.Profile, srtp.SRTCPReplayProtection(srtcpReplayWindow))
	if err != nil {
		return nil, err
	}
	return &directRTCP{s: s, ctx: ctx}, nil
}

// readSRTP implements packetSink: a subscriber sends no media.
func (x *directRTCP) readSRTP([]byte) bool { return false }

// readSRTCP implements packetSink.
func (x *directRTCP) readSRTCP(encrypted []byte) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	plain, err := x.ctx.DecryptRTCP(x.buf[:0], encrypted, nil)
	if err != nil {
		// Forged, replayed, or another transport's: Pion's to judge.
		x.s.engine.Stats.RTCPRefused.Add(1)
		return false
	}
	x.taken.Add(1)
	pkts, err := rtcp.Unmarshal(plain)
	if err != nil {
		x.s.engine.Stats.RTCPRefused.Add(1)
		return true
	}
	x.s.handleRTCP(pkts, time.Now())
	return true
}

// handleRTCP acts on a subscriber's feedback, each packet for the track
// it names.
func (s *Subscriber) handleRTCP(pkts []rtcp.Packet, now time.Time) {
	actOnRTCP(pkts, now, s.bw, s.trackOf)
}

// actOnRTCP acts on a subscriber's feedback, whichever path read it: the
// congestion feedback on bw (nil: none), PLIs, FIRs and NACKs on the
// track that sends the SSRC they name (track: nil when none does).
func actOnRTCP(pkts []rtcp.Packet, now time.Time, bw *bandwidth, track func(ssrc uint32) *DownTrack) {
	for _, pkt := range pkts {
		switch p := pkt.(type) {
		case *rtcp.TransportLayerCC:
			if bw != nil {
				bw.onFeedback(p, now)
			}
		case *rtcp.ReceiverEstimatedMaximumBitrate:
			if bw != nil {
				bw.onREMB(p)
			}
		case *rtcp.TransportLayerNack:
			if d := track(p.MediaSSRC); d != nil {
				d.answerNack(p, now)
			}
		case *rtcp.PictureLossIndication:
			if d := track(p.MediaSSRC); d != nil {
				d.keyframeAsked()
			}
		case *rtcp.FullIntraRequest:
			for _, e := range p.FIR {
				if d := track(e.SSRC); d != nil {
					d.keyframeAsked()
				}
			}
		}
	}
}

// trackOf is the down track sending ssrc, nil if none. The map is made
// again after a track was added, bound or removed, when the subscriber's
// lock is free: the socket's reader never waits for it (an offer being
// made holds it), and a stranger's number costs a lookup.
func (s *Subscriber) trackOf(ssrc uint32) *DownTrack {
	if s.ssrcStale.Load() && s.mu.TryLock() {
		s.ssrcStale.Store(false)
		m := make(map[uint32]*DownTrack, len(s.tracks))
		for d := range s.tracks {
			if id := d.boundSSRC(); id != 0 {
				m[id] = d
			}
		}
		s.bySSRC.Store(&m)
		s.mu.Unlock()
	}
	if m := s.bySSRC.Load(); m != nil {
		return (*m)[ssrc]
	}
	return nil
}

// claimRTCP points the socket of the direct route, if any, at the
// subscriber's direct RTCP reader, and the route given up back at Pion
// (whose readers of each track then start, if they are not running).
func (s *Subscriber) claimRTCP() {
	x := s.rtcpIn.Load()
	if x == nil {
		return
	}
	s.rtcpMu.Lock()
	r := s.direct.route.Load()
	if s.rtcpClosed {
		r = nil
	}
	reclaim(s.rtcpRoute, r, x)
	s.rtcpRoute = r
	closed := s.rtcpClosed
	s.rtcpMu.Unlock()
	if r == nil && !closed {
		s.readPionRTCP()
	}
}

// rtcpClaimed reports whether the direct path reads the RTCP now.
func (s *Subscriber) rtcpClaimed() bool {
	s.rtcpMu.Lock()
	defer s.rtcpMu.Unlock()
	return s.rtcpRoute != nil
}

// readPionRTCP has every track's RTCP read through Pion from now on: one
// goroutine a track, started only when the direct path cannot read it (a
// subscriber of many tracks would hold as many idle goroutines). Once
// started, a track's reader runs until its sender stops.
func (s *Subscriber) readPionRTCP() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.pionRTCP = true
	for d, tr := range s.tracks {
		if !d.pionReading {
			d.pionReading = true
			go d.readRTCP(tr.Sender())
		}
	}
}
