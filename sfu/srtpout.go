package sfu

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/internal/dtlssrtp"
)

// The direct path: a subscriber's media packets are encrypted with the
// server's own SRTP contexts and go straight into the batched socket, not
// through Pion's RTP sender, SRTP session, DTLS mux, ICE connection and
// UDP mux (a fifth of a loaded node's CPU, and a lock or two per packet,
// for what is, once ICE and DTLS are up, "encrypt, send to this address").
// Pion keeps doing everything else on the transport: ICE checks and
// consent, DTLS, RTCP both ways, and the media of a stream until the
// direct path can be taken (before DTLS is up, ICE over TCP). A stream
// that went direct stays direct: its packets are dropped while there is
// no route (ICE moved to TCP) rather than handed back to Pion, whose SRTP
// context would not know the stream's rollover count (a wrong count
// encrypts a packet index twice under one key). Subscriber transports do
// not negotiate cryptex (RFC 9335): what they carry in header extensions
// is transport-wide sequence numbers and AV1 dependency descriptors.
//
// The SRTP master keys are exported from the DTLS handshake as Pion
// exports them (internal/dtlssrtp), from the two hooks DTLS offers: the key
// log and the server hello the transport sends.
// The server is the DTLS server of every subscriber transport it offers
// (browsers and Pion answer "active"); were it ever the client, the server
// hello hook is not called and the transport keeps Pion's path.
type directPath struct {
	keys  dtlssrtp.Handshake
	srtp  atomic.Pointer[dtlssrtp.Keys] // the transport's; the server writes with the local ones
	route atomic.Pointer[udpRoute]

	mu          sync.Mutex // orders the route's updates
	routeByPair bool       // a selected-pair change set the route: newer than any first reading
}

// firstRoute sets the route read when the path starts, unless a change of
// the selected pair set a newer one meanwhile.
func (p *directPath) firstRoute(r *udpRoute) {
	p.mu.Lock()
	if !p.routeByPair {
		p.route.Store(r)
	}
	p.mu.Unlock()
}

// pairChanged sets the route of a newly selected pair.
func (p *directPath) pairChanged(r *udpRoute) {
	p.mu.Lock()
	p.routeByPair = true
	p.route.Store(r)
	p.mu.Unlock()
}

// udpRoute is where the transport's selected ICE pair sends: from one of
// the engine's sockets to the subscriber's address.
type udpRoute struct {
	conn *batchConn
	to   netip.AddrPort
}

// take returns the keys and route of the direct path, nil when it cannot
// be taken now.
func (p *directPath) take() (*dtlssrtp.Keys, *udpRoute) {
	if p == nil {
		return nil, nil
	}
	k, r := p.srtp.Load(), p.route.Load()
	if k == nil || r == nil {
		return nil, nil
	}
	return k, r
}

// routeOf is the direct route of a selected candidate pair: UDP, from a
// socket of the engine (nil otherwise: Pion's path).
func (e *Engine) routeOf(pair *webrtc.ICECandidatePair) *udpRoute {
	if pair == nil || pair.Local == nil || pair.Remote == nil || pair.Local.Protocol != webrtc.ICEProtocolUDP ||
		pair.Local.Typ != webrtc.ICECandidateTypeHost {
		return nil
	}
	local, err1 := netip.ParseAddr(pair.Local.Address)
	remote, err2 := netip.ParseAddr(pair.Remote.Address)
	if err1 != nil || err2 != nil {
		return nil
	}
	var conn *batchConn
	for _, c := range e.conns {
		a := c.LocalAddr().(*net.UDPAddr)
		if a.Port != int(pair.Local.Port) {
			continue
		}
		bound, _ := netip.AddrFromSlice(a.IP)
		if !bound.IsUnspecified() && bound.Unmap() != local.Unmap() && c.announced != local.Unmap() {
			continue
		}
		if conn != nil {
			return nil // two sockets could be meant
		}
		conn = c
	}
	if conn == nil {
		return nil
	}
	to := netip.AddrPortFrom(remote, pair.Remote.Port)
	if !conn.sys.canBatch(to) {
		return nil
	}
	return &udpRoute{conn: conn, to: to}
}

// outStream is one stream of a srtpOut: the rollover count of its newest
// packet, whichever path carried it.
type outStream struct {
	ssrc   uint32
	last   uint16 // the newest sequence number
	roc    uint32
	seen   bool
	direct bool // it went direct: never through Pion again
	synced bool // the context's count is ours (set again after packets the context did not see)
}

// index notes a packet of the stream and returns its rollover count.
func (st *outStream) index(seq uint16) uint32 {
	if !st.seen {
		st.seen, st.last = true, seq
		return st.roc
	}
	if int16(seq-st.last) > 0 { // newer
		if seq < st.last {
			st.roc++
		}
		st.last = seq
		return st.roc
	}
	if seq > st.last && st.roc > 0 { // older, from before the last rollover
		return st.roc - 1
	}
	return st.roc
}

// srtpOut sends a down track's streams (media and RTX): through Pion until
// the direct path is there, then with its own SRTP context.
type srtpOut struct {
	mu      sync.Mutex // forwarding, padding and retransmissions write from different goroutines
	keys    *dtlssrtp.Keys
	ctx     *srtp.Context
	streams [2]outStream
	hdr     rtp.Header
}

// errNoRoute: a stream that went direct has no route now.
var errNoRoute = errors.New("sfu: no direct route to the subscriber")

var errTooLarge = errors.New("sfu: packet too large")

// stream is o's stream of ssrc (a third would replace the second).
func (o *srtpOut) stream(ssrc uint32) *outStream {
	for i := range o.streams {
		if st := &o.streams[i]; st.ssrc == ssrc && st.seen {
			return st
		}
	}
	for i := range o.streams {
		if st := &o.streams[i]; !st.seen {
			*st = outStream{ssrc: ssrc}
			return st
		}
	}
	o.streams[1] = outStream{ssrc: ssrc}
	return &o.streams[1]
}

// send sends one packet: with k on route r when both are there, sealed in
// buf (the caller's: the buffer of a goroutine that sends to many down
// tracks stays in the cache), else through Pion's w (unless the stream
// went direct).
func (o *srtpOut) send(k *dtlssrtp.Keys, r *udpRoute, w webrtc.TrackLocalWriter, h *rtp.Header, payload, buf []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.stream(h.SSRC)
	roc := st.index(h.SequenceNumber)
	if k == nil || r == nil {
		if st.direct {
			st.synced = false
			return 0, errNoRoute
		}
		return w.WriteRTP(h, payload)
	}
	if o.keys != k {
		ctx, err := srtp.CreateContext(k.LocalKey, k.LocalSalt, k.Profile)
		if err != nil {
			return 0, err
		}
		o.keys, o.ctx = k, ctx
		for i := range o.streams {
			o.streams[i].synced = false
		}
	}
	if !st.synced {
		o.ctx.SetROC(h.SSRC, roc)
		st.synced = true
	}
	st.direct = true
	n, err := h.MarshalTo(buf[:])
	if err != nil {
		return 0, err
	}
	pad := int(h.PaddingSize) // as Pion marshals it
	if n+len(payload)+pad+32 > len(buf) {
		return 0, errTooLarge
	}
	n += copy(buf[n:], payload)
	clear(buf[n : n+pad])
	if h.Padding && pad > 0 {
		buf[n+pad-1] = byte(pad)
	}
	n += pad
	out, err := o.ctx.EncryptRTP(buf[:0], buf[:n], &o.hdr)
	if err != nil {
		return 0, err
	}
	return r.conn.WriteToAddrPort(out, r.to)
}
