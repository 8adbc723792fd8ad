package sfu

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// batchSize is how many datagrams one sendmmsg or recvmmsg moves.
const batchSize = 32

// readSize is the room for one received datagram: as large as Pion's ICE
// mux reads (DTLS flights may exceed an RTP packet).
const readSize = 8192

// socketBuffer is the kernel buffer asked for each way: one socket carries
// every peer of its shard.
const socketBuffer = 4 << 20

// batchConn is a UDP socket whose writes, during a fan-out round, are
// collected and sent with one sendmmsg per batch instead of one sendto per
// packet; its reads take up to batchSize datagrams per recvmmsg. Pion's ICE
// mux runs on it unchanged (it implements net.PacketConn and ice's
// AddrPortReaderWriter). The system calls are in mmsg_linux.go; elsewhere
// (mmsg_other.go) datagrams go one by one.
type batchConn struct {
	*net.UDPConn
	sys       mmsgSocket
	announced netip.Addr // the address announced for it, if any (the direct path's routes)

	mu        sync.Mutex // guards the fields below; never held during I/O
	rounds    int        // fan-out rounds in progress
	pending   *batch
	since     int64 // when the pending batch's first datagram came (unix nanos)
	free      []*batch
	lastEnd   int64         // when the last round ended (unix nanos)
	waiting   int64         // since when the pending batch waits (unix nanos), 0: not waiting
	due       bool          // the linger ran out during a round: its end sends
	linger    *time.Timer   // sends a batch left waiting for the next round
	lingerFor time.Duration // batchLinger (tests take longer)
	armed     bool          // linger is set

	readMu sync.Mutex // the ICE mux reads from one goroutine; this keeps it safe anyway
	in     *batch     // datagrams read, in[next:n] not yet taken
	next   int

	// The direct path's receiving side: the SRTP and SRTCP packets from
	// these addresses are offered to their transports as they are read
	// (a client may send more than one transport from one socket); what
	// none takes goes on to Pion. Copied on change (joins are rare, reads
	// are not).
	sinksMu sync.Mutex
	sinks   atomic.Pointer[map[netip.AddrPort][]packetSink]
	// round begins (true) and ends a fan-out round on every socket: the
	// sinks' packets of one recvmmsg are one round, their datagrams out
	// one sendmmsg (or as few as hold them). Nil: each sink's own rounds.
	round func(begin bool)
}

// packetSink takes the SRTP or SRTCP packets a peer's transport sends, on
// the reading goroutine: it must not block for long. It reports false for
// a packet it leaves to Pion (one its keys do not open, of a stream it
// does not read). It may change b, but only for a packet it takes.
type packetSink interface {
	readSRTP(b []byte) bool
	readSRTCP(b []byte) bool
}

func newBatchConn(c *net.UDPConn) *batchConn {
	// Best effort: the kernel caps these at net.core.[rw]mem_max.
	_ = c.SetReadBuffer(socketBuffer)
	_ = c.SetWriteBuffer(socketBuffer)
	bc := &batchConn{UDPConn: c, sys: newMMsgSocket(c)}
	bc.pending = bc.sys.newBatch(maxPacketSize)
	bc.in = bc.sys.newBatch(readSize)
	bc.lingerFor = batchLinger
	bc.linger = time.AfterFunc(time.Hour, bc.flush)
	bc.linger.Stop()
	return bc
}

// batchLinger is how long the datagrams a round leaves in a batch short
// of full may wait for the next round's, when rounds come that often: a
// small class sends each packet to a few subscribers, and many classes'
// rounds of five would each make a system call of five datagrams, where
// one big class's fill batches of 32 (the call's own cost, shared by
// fewer). Rounds further apart than this are sent at once, as before.
const batchLinger = 300 * time.Microsecond

// beginRound starts collecting writes.
func (c *batchConn) beginRound() {
	c.mu.Lock()
	c.rounds++
	c.mu.Unlock()
}

// endRound sends what the round collected once no round is in progress;
// when rounds come less than batchLinger apart, a batch less than half
// full waits for the next rounds' datagrams, batchLinger at most from
// when it began to wait.
func (c *batchConn) endRound() {
	now := time.Now().UnixNano()
	c.mu.Lock()
	c.rounds--
	var out *batch
	if c.rounds == 0 && c.pending.n > 0 {
		if c.waiting == 0 {
			c.waiting = now
		}
		switch {
		case c.pending.n < batchSize/2 && now-c.lastEnd < int64(c.lingerFor) && !c.due &&
			now-c.waiting < int64(c.lingerFor):
			if !c.armed {
				c.armed = true
				c.linger.Reset(time.Duration(int64(c.lingerFor) - (now - c.waiting)))
			}
		default:
			out = c.takePendingLocked()
		}
	}
	if c.rounds == 0 {
		c.lastEnd = now
	} else if c.pending.n > 0 && c.lingerFor > 0 && now-c.since >= int64(c.lingerFor) {
		// Rounds overlap (several sockets' readers): what waits does not
		// wait for all of them to end, only batchLinger at most.
		out = c.takePendingLocked()
	}
	c.mu.Unlock()
	if out != nil {
		c.send(out)
	}
}

// flush sends the batch left waiting, or has the round adding to it send
// it at its end.
func (c *batchConn) flush() {
	c.mu.Lock()
	c.armed = false
	var out *batch
	switch {
	case c.rounds == 0 && c.pending.n > 0:
		out = c.takePendingLocked()
	case c.pending.n > 0:
		c.due = true
	}
	c.mu.Unlock()
	if out != nil {
		c.send(out)
	}
}

func (c *batchConn) takePendingLocked() *batch {
	c.waiting, c.due = 0, false
	out := c.pending
	if n := len(c.free); n > 0 {
		c.pending = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		c.pending = c.sys.newBatch(maxPacketSize)
	}
	return out
}

// send writes a batch with as few sendmmsg calls as the kernel allows and
// returns it to the free list. Datagrams the kernel refuses are dropped,
// as a full socket buffer would drop them.
func (c *batchConn) send(b *batch) {
	for sent := 0; sent < b.n; {
		n, _ := c.sys.send(b, sent)
		if n <= 0 {
			// sendmmsg fails on the first datagram it cannot send (an
			// unreachable subscriber): drop that one, send the others.
			n = 1
		}
		sent += n
	}
	b.n = 0
	c.mu.Lock()
	c.free = append(c.free, b)
	c.mu.Unlock()
}

// WriteToAddrPort implements ice.AddrPortReaderWriter: queued during a
// round, sent at once otherwise.
func (c *batchConn) WriteToAddrPort(p []byte, to netip.AddrPort) (int, error) {
	if len(p) > maxPacketSize || !c.sys.canBatch(to) {
		return c.UDPConn.WriteToUDPAddrPort(p, to)
	}
	c.mu.Lock()
	if c.rounds == 0 {
		c.mu.Unlock()
		return c.UDPConn.WriteToUDPAddrPort(p, to)
	}
	if c.pending.n == 0 {
		c.since = time.Now().UnixNano()
	}
	c.pending.add(p, to)
	var full *batch
	if c.pending.n == batchSize {
		full = c.takePendingLocked()
	}
	c.mu.Unlock()
	if full != nil {
		c.send(full)
	}
	return len(p), nil
}

// WriteTo implements net.PacketConn.
func (c *batchConn) WriteTo(p []byte, to net.Addr) (int, error) {
	if u, ok := to.(*net.UDPAddr); ok {
		return c.WriteToAddrPort(p, u.AddrPort())
	}
	return c.UDPConn.WriteTo(p, to)
}

// claim offers what comes from addr to s first.
func (c *batchConn) claim(addr netip.AddrPort, s packetSink) {
	c.setSink(unmapped(addr), s, true)
}

// release stops offering what comes from addr to s.
func (c *batchConn) release(addr netip.AddrPort, s packetSink) {
	c.setSink(unmapped(addr), s, false)
}

// setSink adds s to addr's sinks, or removes it, in a copy of the sinks.
func (c *batchConn) setSink(addr netip.AddrPort, s packetSink, add bool) {
	c.sinksMu.Lock()
	defer c.sinksMu.Unlock()
	next := map[netip.AddrPort][]packetSink{}
	if old := c.sinks.Load(); old != nil {
		for a, x := range *old {
			next[a] = x
		}
	}
	var list []packetSink
	for _, x := range next[addr] {
		if x != s {
			list = append(list, x)
		}
	}
	if add {
		list = append([]packetSink{s}, list...) // the newest first: it is likeliest the live one
	}
	if len(list) > 0 {
		next[addr] = list
	} else {
		delete(next, addr)
	}
	c.sinks.Store(&next)
}

// reclaim moves s's claim from the route old to r (nil: none) and says
// whether the route changed.
func reclaim(old, r *udpRoute, s packetSink) bool {
	changed := (old == nil) != (r == nil) || r != nil && *old != *r
	if old != nil && changed {
		old.conn.release(old.to, s)
	}
	if r != nil {
		r.conn.claim(r.to, s)
	}
	return changed
}

// unmapped is addr with an IPv4 address as such, not mapped into IPv6 as
// a dual-stack socket reports it.
func unmapped(addr netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
}

// isRTCP tells RTCP from RTP, STUN and DTLS (RFC 7983, RFC 5761: RTCP
// packet types 192-223 would be RTP payload types 64-95 with the marker).
func isRTCP(b []byte) bool {
	return len(b) >= 8 && b[0]&0xc0 == 0x80 && b[1] >= 192 && b[1] <= 223
}

// ReadFromAddrPort implements ice.AddrPortReaderWriter, taking up to
// batchSize datagrams from the kernel at a time. SRTP and SRTCP of a
// claimed address go to its transports first.
func (c *batchConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	inRound := false
	endRound := func() {
		if inRound {
			c.round(false)
			inRound = false
		}
	}
	defer endRound()
	for {
		if c.next >= c.in.n {
			endRound() // never wait for datagrams with a round's open
			c.in.n, c.next = 0, 0
			n, err := c.sys.receive(c.in)
			if err != nil {
				return 0, netip.AddrPort{}, err
			}
			c.in.n = n
		}
		data, from := c.in.datagram(c.next)
		c.next++
		if len(data) >= 8 && data[0]&0xc0 == 0x80 {
			if list := c.sinksOf(from); len(list) > 0 {
				if !inRound && c.round != nil && c.next < c.in.n {
					c.round(true) // more datagrams are read: their fan-outs join
					inRound = true
				}
				if offer(list, data) {
					continue
				}
			}
		}
		return copy(p, data), from, nil
	}
}

// sinksOf are the sinks of an address.
func (c *batchConn) sinksOf(from netip.AddrPort) []packetSink {
	if sinks := c.sinks.Load(); sinks != nil {
		return (*sinks)[unmapped(from)]
	}
	return nil
}

// offer gives an RTP or RTCP datagram to sinks and says whether one took
// it.
func offer(list []packetSink, data []byte) bool {
	rtcp := isRTCP(data)
	for _, s := range list {
		if rtcp && s.readSRTCP(data) || !rtcp && s.readSRTP(data) {
			return true
		}
	}
	return false
}

// ReadFrom implements net.PacketConn.
func (c *batchConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromAddrPort(p)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}
