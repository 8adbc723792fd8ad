package client

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/internal/dtlssrtp"
	"github.com/vclass/vclass/internal/rtpfb"
)

// The direct receive path: the media packets of a track read with
// RemoteTrack.Receive are taken off the receive transport's UDP sockets
// by the goroutine that reads them, decrypted in place with the client's
// own SRTP context and handed to the reader, not through Pion's chain of
// goroutines (the ICE candidate's reader, the DTLS mux, the SRTP session,
// the track's buffer: three hand-offs and as many locks a packet, the
// most of a recorder's CPU). Pion keeps everything else: ICE, DTLS, RTCP
// both ways, and the packets of a track until Receive is called (its
// first is what announces the track). The SRTP keys come from the DTLS
// handshake as seen from outside (internal/dtlssrtp): the key log and the
// server hello as it arrives.
//
// Feedback on what the path takes, as Pion's interceptors would send it:
// NACKs for its streams' missing packets, and transport-wide congestion
// control feedback for every packet of the transport, whichever path it
// takes (one account of the transport's sequence numbers: two would each
// report the other's packets lost). Pion's receiver reports go on for
// what Pion saw; vclass-media does not read them.
type directRecv struct {
	hs        dtlssrtp.Handshake
	log       *slog.Logger
	helloSeen atomic.Bool

	mu      sync.Mutex
	ctx     *srtp.Context // nil until the first packet of a stream after the handshake
	noKeys  bool          // the keys could not be had: Pion's path only
	peer    netip.AddrPort
	streams map[uint32]*directStream
	hdr     rtp.Header
	spare   [receiveMTU]byte // a packet as it came, to decrypt again
	twccExt uint8            // the transport-wide sequence number's extension id; 0: none
	twcc    *twcc.Recorder
	started time.Time // arrival times in feedback count from here
	ssrc    uint32    // the feedback's sender SSRC
	pc      *webrtc.PeerConnection
	ticking bool
	closed  bool
	stop    chan struct{}
	failed  int // packets of a stream that did not decrypt

	// every: read the sockets that carry direct streams at each tick of
	// it rather than waking for each datagram; 0: wake for each.
	every time.Duration
	// verifyEvery: above 1, a stream read for its headers (registerInfo)
	// is decrypted only every verifyEvery-th packet.
	verifyEvery uint32
}

// receiveMTU is the largest packet read, as Pion's.
const receiveMTU = 1460

// directStream is a track that takes the direct path.
type directStream struct {
	deliver func(p []byte, arrival time.Time)
	info    func(PacketInfo) // instead of deliver: headers only
	seen    uint32           // packets since it synced, for verifyEvery
	synced  bool             // a packet decrypted: the context knows its rollover count
	failed  int              // packets that did not decrypt before the first that did
	nacks   bool             // NACKs were negotiated for it
	nack    rtpfb.NackLog
}

// giveUp is how many packets of a stream may fail to decrypt before the
// first that does: then the stream stays on Pion's path (registered late,
// after its numbering rolled over more than once).
const giveUp = 50

func newDirectRecv(log *slog.Logger, every time.Duration, verifyEvery int) *directRecv {
	return &directRecv{
		log: log, streams: map[uint32]*directStream{}, ssrc: rand.Uint32(),
		started: time.Now(), stop: make(chan struct{}), every: every, verifyEvery: uint32(max(verifyEvery, 1)),
	}
}

// setTWCC sets the negotiated transport-wide sequence number extension.
func (d *directRecv) setTWCC(id uint8) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if id == d.twccExt {
		return
	}
	d.twccExt = id
	if id != 0 && d.twcc == nil {
		d.twcc = twcc.NewRecorder(d.ssrc)
	}
	d.startTicking()
}

// bind sets the peer connection feedback is written to, and follows its
// selected ICE pair: the server's packets come from its remote address.
func (d *directRecv) bind(pc *webrtc.PeerConnection) {
	d.mu.Lock()
	d.pc = pc
	d.mu.Unlock()
	pc.SCTP().Transport().ICETransport().OnSelectedCandidatePairChange(func(p *webrtc.ICECandidatePair) {
		if p == nil || p.Remote == nil {
			return
		}
		if a, err := netip.ParseAddr(p.Remote.Address); err == nil {
			d.mu.Lock()
			d.peer = netip.AddrPortFrom(a, p.Remote.Port)
			d.mu.Unlock()
		}
	})
}

// register makes ssrc's packets take the direct path, to deliver; nacks
// says whether to ask for missing packets again.
func (d *directRecv) register(ssrc uint32, nacks bool, deliver func([]byte, time.Time)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.streams[ssrc] = &directStream{deliver: deliver, nacks: nacks}
	d.startTicking()
}

// registerInfo is register for a reader of headers: info learns each
// packet's numbers, and of those that fail authentication.
func (d *directRecv) registerInfo(ssrc uint32, nacks bool, info func(PacketInfo)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.streams[ssrc] = &directStream{info: info, nacks: nacks}
	d.startTicking()
}

// taking says whether ssrc's packets take the direct path.
func (d *directRecv) taking(ssrc uint32) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.streams[ssrc]
	return st != nil && st.synced
}

func (d *directRecv) unregister(ssrc uint32) {
	d.mu.Lock()
	delete(d.streams, ssrc)
	d.mu.Unlock()
}

func (d *directRecv) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.closed = true
		close(d.stop)
	}
}

// startTicking starts the feedback loop once there is something to give
// feedback on. Called with d.mu held.
func (d *directRecv) startTicking() {
	if d.ticking || d.closed || d.twcc == nil && len(d.streams) == 0 {
		return
	}
	d.ticking = true
	go d.feedbackLoop()
}

// handle takes a datagram the transport's socket read from `from` at now,
// and says whether it took it (a packet of a direct stream) or Pion is to.
func (d *directRecv) handle(b []byte, from netip.AddrPort, now time.Time) bool {
	if len(b) < 12 {
		return false
	}
	if b[0] >= 20 && b[0] <= 63 { // DTLS (RFC 7983)
		if !d.helloSeen.Load() && d.hs.ReadDatagram(b) {
			d.mu.Lock()
			if !d.peer.IsValid() {
				d.peer = from
			}
			d.mu.Unlock()
			d.helloSeen.Store(true)
		}
		return false
	}
	if b[0] < 128 || b[0] > 191 || b[1] >= 192 && b[1] <= 223 { // not RTP: STUN, RTCP
		return false
	}
	ssrc := binary.BigEndian.Uint32(b[8:12])
	d.mu.Lock()
	// A packet left to Pion counts for congestion control if it comes
	// from the server's address (a forged one could at most say it
	// arrived); one the direct path takes, once it decrypts.
	fromServer := !d.peer.IsValid() || from == d.peer
	st := d.streams[ssrc]
	if st == nil || st.failed >= giveUp || !d.haveContext() {
		if _, err := d.hdr.Unmarshal(b); err == nil && fromServer {
			d.recordTWCC(now)
		}
		d.mu.Unlock()
		return false
	}
	if st.info != nil && st.synced {
		if st.seen++; st.seen%d.verifyEvery != 0 {
			// Taken by its header: numbers counted, nothing decrypted.
			if _, err := d.hdr.Unmarshal(b); err == nil {
				if fromServer {
					d.recordTWCC(now)
				}
				if st.nacks {
					st.nack.Add(d.hdr.SequenceNumber)
				}
				st.info(PacketInfo{Seq: d.hdr.SequenceNumber, Timestamp: d.hdr.Timestamp, Marker: d.hdr.Marker, Arrival: now, Check: Unchecked})
			}
			d.mu.Unlock()
			return true
		}
	}
	p, err := d.decrypt(st, ssrc, b)
	if err != nil {
		// Not the server's, dropped; or, before the stream's first packet
		// decrypted, Pion's to try (its context may know better).
		if !st.synced && fromServer {
			d.recordTWCC(now) // d.hdr: decrypt read the header
		}
		if st.synced && st.info != nil {
			check := Forged
			if errors.Is(err, errReplayed) {
				check = Replayed
			}
			if _, err := d.hdr.Unmarshal(b); err == nil {
				st.info(PacketInfo{Seq: d.hdr.SequenceNumber, Timestamp: d.hdr.Timestamp, Marker: d.hdr.Marker, Arrival: now, Check: check})
			}
		}
		d.mu.Unlock()
		return st.synced
	}
	d.recordTWCC(now)
	if st.nacks {
		st.nack.Add(d.hdr.SequenceNumber)
	}
	if st.info != nil {
		st.info(PacketInfo{Seq: d.hdr.SequenceNumber, Timestamp: d.hdr.Timestamp, Marker: d.hdr.Marker, Arrival: now})
		d.mu.Unlock()
		return true
	}
	deliver := st.deliver
	d.mu.Unlock()
	deliver(p, now)
	return true
}

// haveContext makes the SRTP context once the handshake is done, and
// says whether there is one. Called with d.mu held.
func (d *directRecv) haveContext() bool {
	if d.ctx != nil || d.noKeys {
		return d.ctx != nil
	}
	if !d.helloSeen.Load() {
		return false // a packet before the handshake's end: not the server's
	}
	k, err := d.hs.Keys(true)
	if err == nil {
		// Replays are refused, as far back as a resent packet may come.
		d.ctx, err = srtp.CreateContext(k.RemoteKey, k.RemoteSalt, k.Profile, srtp.SRTPReplayProtection(2*rtpfb.NackWindow))
	}
	if err != nil {
		d.noKeys = true
		d.log.Debug("no direct receive path", "err", err)
		return false
	}
	return true
}

// errReplayed is SRTP's replay check refusing a packet (its error type is
// not exported; its text is as pion/srtp words it).
var errReplayed = errors.New("duplicated packet")

// decrypt decrypts b in place and returns the plain packet. A stream's
// first packet may come after the sequence number rolled over (the server
// numbers from anywhere, and Pion read the first packets): it is tried with
// the next rollover count too. Called with d.mu held.
func (d *directRecv) decrypt(st *directStream, ssrc uint32, b []byte) ([]byte, error) {
	if !st.synced {
		if len(b) > len(d.spare) {
			return nil, errTooLong
		}
		copy(d.spare[:], b)
	}
	p, err := d.ctx.DecryptRTP(b, b, &d.hdr)
	if err != nil && !st.synced {
		copy(b, d.spare[:len(b)])
		d.ctx.SetROC(ssrc, 1)
		if p, err = d.ctx.DecryptRTP(b, b, &d.hdr); err != nil {
			d.ctx.SetROC(ssrc, 0)
			copy(b, d.spare[:len(b)]) // as it came, for Pion
			st.failed++
		}
	}
	if err != nil {
		if d.failed++; d.failed == 1 || d.failed%1000 == 0 {
			d.log.Debug("direct receive: a packet did not decrypt", "ssrc", ssrc, "failed", d.failed, "err", err)
		}
		if strings.HasSuffix(err.Error(), errReplayed.Error()) {
			return nil, errReplayed
		}
		return nil, err
	}
	if !st.synced {
		st.synced = true
		d.log.Debug("direct receive", "ssrc", ssrc, "seq", d.hdr.SequenceNumber)
	}
	return p, nil
}

var errTooLong = errors.New("client: packet longer than the direct path takes")

// recordTWCC notes d.hdr's transport-wide sequence number. Called with
// d.mu held.
func (d *directRecv) recordTWCC(now time.Time) {
	if d.twcc == nil || d.twccExt == 0 {
		return
	}
	ext := d.hdr.GetExtension(d.twccExt)
	if len(ext) < 2 {
		return
	}
	d.twcc.Record(d.hdr.SSRC, binary.BigEndian.Uint16(ext), now.Sub(d.started).Microseconds())
}

// feedbackLoop sends NACKs and TWCC feedback every rtpfb.FeedbackEvery, at the
// same instants as every other transport's: one wake-up for all.
func (d *directRecv) feedbackLoop() {
	t := time.NewTimer(rtpfb.UntilTick(rtpfb.FeedbackEvery))
	defer t.Stop()
	var missing []uint16
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			t.Reset(rtpfb.UntilTick(rtpfb.FeedbackEvery))
		}
		var pkts []rtcp.Packet
		d.mu.Lock()
		if d.twcc != nil {
			pkts = d.twcc.BuildFeedbackPacket()
		}
		for ssrc, st := range d.streams {
			if !st.nacks {
				continue
			}
			missing = st.nack.Missing(missing[:0])
			if len(missing) > 0 {
				pkts = append(pkts, &rtcp.TransportLayerNack{
					SenderSSRC: d.ssrc, MediaSSRC: ssrc, Nacks: rtcp.NackPairsFromSequenceNumbers(missing),
				})
			}
		}
		pc := d.pc
		d.mu.Unlock()
		if len(pkts) > 0 && pc != nil {
			_ = pc.WriteRTCP(pkts) // fails only once the transport closed
		}
	}
}

// tickedReadBuffer is the receive buffer of a socket read at ticks.
const tickedReadBuffer = 1 << 20

// directNet is Pion's network with the receive transport's UDP sockets
// read through the direct path.
type directNet struct {
	*stdnet.Net
	d *directRecv
}

func (n directNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	u, ok := c.(*net.UDPConn)
	if !ok {
		return c, nil
	}
	dc := &directConn{UDPConn: u, d: n.d}
	if n.d.every > 0 {
		dc.raw = newRawReader(u)
		// Read a tick at a time, the socket holds what comes meanwhile,
		// and more: a process of many receivers is not always on time.
		// (Best effort: the kernel caps it at net.core.rmem_max.)
		_ = u.SetReadBuffer(tickedReadBuffer)
	}
	return dc, nil
}

// directConn is a socket whose reads pass the direct path first. ICE reads
// it with ReadFromAddrPort (ReadFrom alike); its other reads are the
// socket's own, untouched. Once it carries a direct stream, with
// directRecv.every set, it is read at the ticks of every: the goroutines
// of all such sockets wake together, once a tick, and read what came
// (for a recorder at 50 recordings, a hundred wake-ups a second instead
// of thousands).
type directConn struct {
	*net.UDPConn
	d        *directRecv
	raw      *rawReader // nil: no reading at ticks
	carrying bool       // it took a direct stream's packet (ICE's one goroutine reads it)
}

// ReadFromAddrPort returns the next datagram the direct path leaves to Pion.
func (c *directConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		p, from, at, err := c.read(b)
		if err != nil {
			return 0, from, err
		}
		if !c.d.handle(p, from, at) {
			return copy(b, p), from, nil // (p is b but at ticks)
		}
		c.carrying = true
	}
}

// read returns the next datagram: in b, or at ticks in the raw reader's
// buffer (taken or dropped there, most of them: only Pion's are copied).
func (c *directConn) read(b []byte) ([]byte, netip.AddrPort, time.Time, error) {
	if c.raw == nil || !c.carrying {
		n, from, err := c.UDPConn.ReadFromUDPAddrPort(b)
		return b[:n], from, time.Now(), err
	}
	for {
		p, from, at, err := c.raw.read()
		if err != errWouldBlock {
			return p, from, at, err
		}
		// Nothing waiting: to the next tick, with the others. A closed
		// socket is found then.
		time.Sleep(rtpfb.UntilTick(c.d.every))
	}
}

// WriteToAddrPort writes to the socket.
func (c *directConn) WriteToAddrPort(b []byte, to netip.AddrPort) (int, error) {
	return c.UDPConn.WriteToUDPAddrPort(b, to)
}

// ReadFrom is ReadFromAddrPort.
func (c *directConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}
