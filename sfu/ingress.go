package sfu

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/internal/rtpfb"
	"github.com/vclass/vclass/internal/srtpgcm"
)

// The publishers' side of the direct path. Once a publisher's transport
// is up on UDP, the packets of each stream it sends are decrypted with the
// server's own SRTP context and handed to the stream's layer on the
// goroutine that read them from the socket, instead of going through
// Pion's ICE mux, ICE connection, DTLS mux, SRTP session, the track's
// buffer and its interceptors: five hand-offs between goroutines and as
// many locks a packet, most of what a node of many small classes (a
// publisher for every five subscribers) spends. The same for its RTCP
// (sender reports). Pion keeps STUN, DTLS, ICE over TCP, and each stream's
// first packets: they announce it (its mid and rid), and only a stream Pion
// placed is read directly. A packet of a stream read directly that does
// not decrypt is dropped, not handed to Pion, whose context would take a
// replay of what it missed. Pion's context is kept knowing each stream's
// rollover count all the same (every pionEvery-th packet goes its way too,
// and its reader skips it: the direct path took it, in order):
// when the transport moves to ICE-TCP, which only Pion reads, it takes the
// stream up at once, and when it comes back the direct path takes up the
// count from the layer's reader, which saw every packet of both paths.
//
// The server is the DTLS server of publisher transports too (it answers
// "passive"): the keys come from the handshake as for subscribers
// (directPath, srtpout.go).
//
// What a publisher is told of its packets is the server's own, whichever
// path read them (one account of each; two would each report the other's
// packets lost): transport-wide congestion feedback from a recorder fed
// by both paths (Pion's through twccIn), and NACKs and receiver reports
// from each layer's reader (upLayer.handle). They go out every
// rtpfb.FeedbackEvery on the direct route, encrypted with the server's
// own SRTCP context and a sender SSRC of their own (SRTCP numbers each
// sender SSRC's packets: Pion's context, which sends on other routes and
// the keyframe requests, has its own).

// pubIn is a publisher transport's receiving side: the direct path's
// reader and the feedback the publisher gets.
type pubIn struct {
	p      *Publisher
	direct *directPath // nil: Pion's path only (no batched sockets)

	twccExt atomic.Uint32 // the negotiated transport-wide sequence number extension, 0 none
	twccMu  sync.Mutex
	twcc    *twcc.Recorder // nil until the extension is known
	started time.Time      // arrival times in feedback count from here

	// The sender SSRCs of the feedback: on the direct route, through Pion.
	directSSRC, pionSSRC uint32
	out                  atomic.Pointer[srtp.Context] // the feedback's on the direct route (run's only)

	mu      sync.Mutex      // the socket readers (two, while the route changes)
	gcm     *srtpgcm.Opener // AEAD_AES_128_GCM (browsers' choice): each stream's state in its inStream
	rtpCtx  *srtp.Context   // the other profiles
	rtcpCtx *srtp.Context
	streams []*inStream // a few: a slice is read faster than a map
	hdr     rtp.Header
	spare   [maxPacketSize]byte // a packet as it came, for Pion if it does not decrypt
	plain   [maxPacketSize]byte // decrypted RTCP

	routeMu sync.Mutex // guards the two below
	claimed *udpRoute
	closed  bool
	gone    atomic.Bool // closed, for the feedback loop
}

// inStream is a stream the direct path reads.
type inStream struct {
	ssrc   uint32
	count  uint32 // packets seen
	synced bool   // a packet decrypted on this route: the context knows its rollover count
	failed int    // packets that did not decrypt before the first that did
	l      *upLayer
	gcm    srtpgcm.Stream
	// The last packet given to Pion as well (one in pionEvery: one is
	// enough to remember), which the layer's Pion reader skips.
	shared    uint16
	hasShared bool
}

// pionEvery: one packet of a direct stream in pionEvery is given to Pion
// too, so that its SRTP context knows the stream's rollover count (it
// guesses it right up to 32,768 packets after the last it saw).
const pionEvery = 1024

// giveUp is how many packets of a stream may fail to decrypt before the
// first that does: then the stream stays on Pion's path.
const giveUp = 50

// inReplayWindow is how far back an SRTP index may be and still be taken
// once: a publisher resends what it is asked for (NACK) on the stream, as
// far back as it is asked (rtpfb.NackWindow, as srtpgcm's window).
const inReplayWindow = srtpgcm.Window

func newPubIn(direct *directPath) *pubIn {
	in := &pubIn{direct: direct, started: time.Now()}
	for in.directSSRC == in.pionSSRC || in.directSSRC == 0 || in.pionSSRC == 0 {
		in.directSSRC, in.pionSSRC = rand.Uint32(), rand.Uint32()
	}
	return in
}

// setTWCC sets the negotiated transport-wide sequence number extension.
func (in *pubIn) setTWCC(id uint8) {
	in.twccMu.Lock()
	defer in.twccMu.Unlock()
	in.twccExt.Store(uint32(id))
	if in.twcc == nil {
		in.twcc = twcc.NewRecorder(in.directSSRC)
	}
}

// recordTWCC notes the transport-wide sequence number of the packet of
// ssrc whose header extension of that number is ext (nil: none).
func (in *pubIn) recordTWCC(ssrc uint32, ext []byte, at time.Time) {
	if len(ext) < 2 {
		return
	}
	in.twccMu.Lock()
	if in.twcc != nil {
		in.twcc.Record(ssrc, binary.BigEndian.Uint16(ext), at.Sub(in.started).Microseconds())
	}
	in.twccMu.Unlock()
}

// start takes the direct path once DTLS is up: the keys from the
// handshake, the route from the selected ICE pair (and from each pair
// selected later).
func (in *pubIn) start() {
	d := in.direct
	if d == nil || d.srtp.Load() != nil {
		return
	}
	e := in.p.engine
	keys, err := d.keys.Keys(false)
	var rtpCtx, rtcpCtx, out *srtp.Context
	if err == nil && keys.Profile != srtp.ProtectionProfileAeadAes128Gcm { // (srtpgcm's)
		rtpCtx, err = srtp.CreateContext(keys.RemoteKey, keys.RemoteSalt, keys.Profile, srtp.SRTPReplayProtection(inReplayWindow))
	}
	if err == nil {
		rtcpCtx, err = srtp.CreateContext(keys.RemoteKey, keys.RemoteSalt, keys.Profile, srtp.SRTCPReplayProtection(srtcpReplayWindow))
	}
	if err == nil {
		out, err = srtp.CreateContext(keys.LocalKey, keys.LocalSalt, keys.Profile)
	}
	if err != nil {
		e.log.Debug("no direct path for a publisher", "err", err)
		return
	}
	var gcm *srtpgcm.Opener
	if keys.Profile == srtp.ProtectionProfileAeadAes128Gcm {
		if gcm, err = srtpgcm.NewOpener(keys.RemoteKey, keys.RemoteSalt); err != nil {
			e.log.Debug("no direct path for a publisher", "err", err)
			return
		}
	}
	in.mu.Lock()
	in.gcm, in.rtpCtx, in.rtcpCtx = gcm, rtpCtx, rtcpCtx
	in.mu.Unlock()
	in.out.Store(out)
	ice := in.p.pc.SCTP().Transport().ICETransport()
	ice.OnSelectedCandidatePairChange(func(pair *webrtc.ICECandidatePair) {
		d.pairChanged(e.routeOf(pair))
		in.claim()
	})
	pair, _ := ice.GetSelectedCandidatePair()
	r := e.routeOf(pair)
	d.firstRoute(r)
	d.srtp.Store(keys)
	in.claim()
	e.log.Debug("direct path for a publisher", "profile", keys.Profile, "udp", r != nil)
}

// claim points the socket of the direct route, if any, at in, and the
// route given up back at Pion.
func (in *pubIn) claim() {
	in.routeMu.Lock()
	defer in.routeMu.Unlock()
	r := in.direct.route.Load()
	if in.closed {
		r = nil
	}
	if reclaim(in.claimed, r, in) {
		in.resync()
	}
	in.claimed = r
}

// resync has each stream take up its rollover count again from its
// layer's reader: when the route changes, packets may have come another
// way meanwhile (ICE-TCP, through Pion).
func (in *pubIn) resync() {
	in.mu.Lock()
	for _, st := range in.streams {
		st.synced, st.failed = false, 0
		st.gcm.Reset()
	}
	in.mu.Unlock()
}

// close gives the route back.
func (in *pubIn) close() {
	in.gone.Store(true)
	if in.direct == nil {
		return
	}
	in.routeMu.Lock()
	in.closed = true
	in.routeMu.Unlock()
	in.claim()
}

// register has the direct path read l's stream.
func (in *pubIn) register(l *upLayer) {
	in.mu.Lock()
	in.streams = slices.DeleteFunc(in.streams, func(st *inStream) bool { return st.ssrc == l.ssrc })
	in.streams = append(in.streams, &inStream{ssrc: l.ssrc, l: l})
	in.mu.Unlock()
}

// unregister stops it, when l's reader ended.
func (in *pubIn) unregister(l *upLayer) {
	in.mu.Lock()
	in.streams = slices.DeleteFunc(in.streams, func(st *inStream) bool { return st.l == l })
	in.mu.Unlock()
}

// stream is the direct stream of ssrc, nil if none. Called with in.mu held.
func (in *pubIn) stream(ssrc uint32) *inStream {
	for _, st := range in.streams {
		if st.ssrc == ssrc {
			return st
		}
	}
	return nil
}

// readSRTP implements packetSink: a packet of a stream the direct path
// reads is decrypted in place and handled at once.
func (in *pubIn) readSRTP(b []byte) bool {
	if len(b) < 12 || len(b) > len(in.spare) {
		return false // longer than any packet forwarded: Pion's to refuse
	}
	ssrc := binary.BigEndian.Uint32(b[8:12])
	now := time.Now()
	in.mu.Lock()
	st := in.stream(ssrc)
	if st == nil || in.rtpCtx == nil && in.gcm == nil || !st.synced && st.failed >= giveUp {
		in.mu.Unlock()
		return false
	}
	// One in pionEvery goes to Pion as it came as well (a copy is taken
	// here), for its context to follow the stream.
	st.count++
	share := st.count%pionEvery == 0
	if share {
		b = bytes.Clone(b)
	}
	// A stream is taken on this route from the packet after the newest
	// its layer has (through Pion), in order, with the rollover count the
	// layer gives it.
	var roc uint32
	if !st.synced {
		var ok bool
		if roc, ok = st.l.handOver(binary.BigEndian.Uint16(b[2:4])); !ok {
			in.mu.Unlock()
			return false // Pion's, as the packets before it
		}
		copy(in.spare[:], b)
	}
	var plain []byte
	var err error
	if in.gcm != nil {
		plain, err = in.gcm.Open(&st.gcm, b, roc)
	} else {
		if !st.synced {
			in.rtpCtx.SetROC(ssrc, roc)
		}
		plain, err = in.rtpCtx.DecryptRTP(b, b, &in.hdr)
	}
	if err != nil {
		if !st.synced {
			copy(b, in.spare[:len(b)]) // as it came
			st.failed++
			in.mu.Unlock()
			return false // Pion's to judge: its context may know better
		}
		in.mu.Unlock()
		in.p.engine.Stats.RTPRefused.Add(1)
		return !share // forged or replayed: dropped (a copy given to Pion: it judges too)
	}
	st.synced = true
	if share {
		st.shared, st.hasShared = binary.BigEndian.Uint16(plain[2:4]), true
	}
	if id := uint8(in.twccExt.Load()); id != 0 {
		in.recordTWCC(ssrc, extensionValue(plain, id), now)
	}
	in.mu.Unlock()
	in.p.engine.Stats.DirectIn.Add(1)
	st.l.deliver(plain, now)
	return !share
}

// took says whether the direct path took pkt (decrypted by Pion): its
// layer's Pion reader then skips it.
func (in *pubIn) took(pkt []byte) bool {
	if len(pkt) < 12 {
		return false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	st := in.stream(binary.BigEndian.Uint32(pkt[8:12]))
	return st != nil && st.hasShared && st.shared == binary.BigEndian.Uint16(pkt[2:4])
}

// readSRTCP implements packetSink: the publisher's sender reports.
func (in *pubIn) readSRTCP(b []byte) bool {
	in.mu.Lock()
	if in.rtcpCtx == nil {
		in.mu.Unlock()
		return false
	}
	plain, err := in.rtcpCtx.DecryptRTCP(in.plain[:0], b, nil)
	if err != nil {
		in.mu.Unlock()
		return false // another transport's, or forged: Pion's to judge
	}
	pkts, err := rtcp.Unmarshal(plain)
	var reports []*upLayer
	var srs []*rtcp.SenderReport
	for _, pkt := range pkts {
		if sr, ok := pkt.(*rtcp.SenderReport); ok {
			if st := in.stream(sr.SSRC); st != nil {
				reports, srs = append(reports, st.l), append(srs, sr)
			}
		}
	}
	in.mu.Unlock()
	if err != nil {
		in.p.engine.Stats.RTCPRefused.Add(1)
	}
	now := time.Now()
	for i, l := range reports {
		l.up.noteSenderReport(srs[i], now)
	}
	return true
}

// twccIn is the interceptor that records the transport-wide sequence
// numbers of the packets Pion reads.
type twccIn struct {
	interceptor.NoOp
	in *pubIn
}

type twccInFactory struct{ in *pubIn }

func (f twccInFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &twccIn{in: f.in}, nil
}

func (t *twccIn) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	var id uint8
	for _, e := range info.RTPHeaderExtensions {
		if e.URI == sdp.TransportCCURI {
			id = uint8(e.ID)
		}
	}
	if id == 0 {
		return reader
	}
	t.in.setTWCC(id)
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := reader.Read(b, a)
		if err != nil {
			return n, a, err
		}
		if a == nil {
			a = interceptor.Attributes{}
		}
		if h, err := a.GetRTPHeader(b[:n]); err == nil {
			t.in.recordTWCC(h.SSRC, h.GetExtension(id), time.Now())
		}
		return n, a, nil
	})
}

// feedbackLoop sends every publisher its feedback every
// rtpfb.FeedbackEvery until stop closes, then closes done: one goroutine
// for all, not a timer each, and a fan-out round for every few publishers
// (their datagrams leave in a few sendmmsg calls; a round is not held
// open long). Reports go out with the first pass of each second.
func (e *Engine) feedbackLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTimer(rtpfb.UntilTick(rtpfb.FeedbackEvery))
	defer t.Stop()
	var f feedback
	var pubs []*Publisher
	var reported int64 // the second of the last reports
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			t.Reset(rtpfb.UntilTick(rtpfb.FeedbackEvery))
		}
		e.pubsMu.Lock()
		pubs = pubs[:0]
		for p := range e.pubs {
			pubs = append(pubs, p)
		}
		e.pubsMu.Unlock()
		now := time.Now()
		reports := now.Unix() != reported
		reported = now.Unix()
		for i := 0; i < len(pubs); i += feedbackRound {
			e.beginRound()
			for _, p := range pubs[i:min(i+feedbackRound, len(pubs))] {
				p.sendFeedback(&f, now, reports)
			}
			e.endRound()
		}
		clear(pubs) // no closed publisher kept until the next tick
	}
}

// feedbackRound is how many publishers' feedback one fan-out round sends.
const feedbackRound = 32

// addPublisher has feedbackLoop report to p, removePublisher no more.
func (e *Engine) addPublisher(p *Publisher) {
	e.pubsMu.Lock()
	if e.pubs == nil {
		e.pubs = map[*Publisher]struct{}{}
	}
	e.pubs[p] = struct{}{}
	e.pubsMu.Unlock()
}

func (e *Engine) removePublisher(p *Publisher) {
	e.pubsMu.Lock()
	delete(e.pubs, p)
	e.pubsMu.Unlock()
}

// feedback is what one round of feedback is built in, reused.
type feedback struct {
	layers  []*upLayer
	missing []uint16
	reports []rtcp.ReceptionReport
	pkts    []rtcp.Packet
	buf     []byte
}

// sendFeedback sends the transport-wide congestion feedback and the NACKs
// due now, and with reports the receiver reports and the announcement of
// the most the publisher may send.
func (p *Publisher) sendFeedback(f *feedback, now time.Time, reports bool) {
	in := p.in
	if in.gone.Load() {
		return // closed while the pass ran
	}
	f.pkts = f.pkts[:0]
	f.reports = f.reports[:0]
	f.layers = p.layers(f.layers[:0])
	expected, lost := 0, 0
	for _, l := range f.layers {
		l.fbMu.Lock()
		if l.up.nacks {
			f.missing = l.nack.Missing(f.missing[:0])
			if len(f.missing) > 0 {
				f.pkts = append(f.pkts, &rtcp.TransportLayerNack{MediaSSRC: l.ssrc, Nacks: rtcp.NackPairsFromSequenceNumbers(f.missing)})
			}
		}
		if reports {
			var lastSR uint64
			var srAt time.Time
			if sr := l.sr.Load(); sr != nil {
				lastSR, srAt = sr.ntp, sr.arrival
			}
			if rr, ok := l.rx.Report(l.ssrc, lastSR, srAt, now); ok {
				f.reports = append(f.reports, rr)
				e, x := l.rx.Interval()
				expected, lost = expected+int(e), lost+int(x)
			}
		}
		l.fbMu.Unlock()
	}
	if reports {
		p.loss.add(now, expected, lost)
	}
	in.twccMu.Lock()
	if in.twcc != nil {
		f.pkts = append(f.pkts, in.twcc.BuildFeedbackPacket()...)
	}
	in.twccMu.Unlock()
	if reports {
		for len(f.reports) > 0 {
			n := min(len(f.reports), 31) // the most one report holds
			f.pkts = append([]rtcp.Packet{&rtcp.ReceiverReport{Reports: f.reports[:n:n]}}, f.pkts...)
			f.reports = f.reports[n:]
		}
		if bps := p.engine.params.MaxIncomingBitrate; bps > 0 {
			var ssrcs []uint32
			for _, l := range f.layers {
				if l.up.codecKind != codecAudio {
					ssrcs = append(ssrcs, l.ssrc)
				}
			}
			if len(ssrcs) > 0 {
				f.pkts = append(f.pkts, &rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: float32(bps), SSRCs: ssrcs})
			}
		}
	}
	if len(f.pkts) == 0 {
		return
	}
	_, r := in.direct.take()
	ctx := in.out.Load()
	sender := in.pionSSRC
	if r != nil && ctx != nil {
		sender = in.directSSRC
	}
	for _, pkt := range f.pkts {
		switch x := pkt.(type) {
		case *rtcp.ReceiverReport:
			x.SSRC = sender
		case *rtcp.TransportLayerNack:
			x.SenderSSRC = sender
		case *rtcp.TransportLayerCC:
			x.SenderSSRC = sender
		case *rtcp.ReceiverEstimatedMaximumBitrate:
			x.SenderSSRC = sender
		}
	}
	// As many datagrams as it takes, none longer than maxFeedbackSize.
	for i := 0; i < len(f.pkts); {
		n, size := 0, 0
		for i+n < len(f.pkts) && (n == 0 || size+f.pkts[i+n].MarshalSize() <= maxFeedbackSize) {
			size += f.pkts[i+n].MarshalSize()
			n++
		}
		chunk := f.pkts[i : i+n]
		i += n
		if sender == in.pionSSRC {
			_ = p.pc.WriteRTCP(chunk) // fails only before the transport is up, or once it closed
			continue
		}
		plain, err := rtcp.Marshal(chunk)
		if err == nil {
			f.buf, err = ctx.EncryptRTCP(f.buf[:0], plain, nil)
		}
		if err != nil {
			p.engine.log.Debug("publisher feedback not sent", "err", err)
			continue
		}
		_, _ = r.conn.WriteToAddrPort(f.buf, r.to)
	}
}

// maxFeedbackSize is the most RTCP one feedback datagram carries (before
// SRTCP's 20 or so bytes): well inside any path's MTU, as browsers keep it.
const maxFeedbackSize = 1200

// layers appends the publisher's layers to out.
func (p *Publisher) layers(out []*upLayer) []*upLayer {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range p.tracks {
		for i := range u.layers {
			if l := u.layers[i].Load(); l != nil {
				out = append(out, l)
			}
		}
	}
	return out
}
