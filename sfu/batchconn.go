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

	// The direct path's receiving side: RTCP from these addresses is
	// taken by their subscribers as it is read, and never reaches Pion.
	// Copied on change (joins are rare, reads are not).
	sinksMu sync.Mutex
	sinks   atomic.Pointer[map[netip.AddrPort]rtcpSink]
}

// rtcpSink takes the SRTCP packets a subscriber sends, on the reading
// goroutine: it must not block. It reports false for a packet its keys do
// not open, which goes on to Pion (another transport of the same address:
// a client may send both of its transports from one socket).
type rtcpSink interface {
	readSRTCP(encrypted []byte) bool
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

// claim sends what RTCP comes from addr to s, not to Pion.
func (c *batchConn) claim(addr netip.AddrPort, s rtcpSink) {
	c.setSink(unmapped(addr), s, nil)
}

// release gives addr's RTCP back to Pion, if s still claims it.
func (c *batchConn) release(addr netip.AddrPort, s rtcpSink) {
	c.setSink(unmapped(addr), nil, s)
}

// setSink makes s (nil: none) addr's sink, in a copy of the sinks; with
// owner, only if owner is its sink now.
func (c *batchConn) setSink(addr netip.AddrPort, s, owner rtcpSink) {
	c.sinksMu.Lock()
	defer c.sinksMu.Unlock()
	next := map[netip.AddrPort]rtcpSink{}
	if old := c.sinks.Load(); old != nil {
		if owner != nil && (*old)[addr] != owner {
			return
		}
		for a, x := range *old {
			next[a] = x
		}
	}
	if s != nil {
		next[addr] = s
	} else {
		delete(next, addr)
	}
	c.sinks.Store(&next)
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
// batchSize datagrams from the kernel at a time. RTCP of a claimed
// address goes to its subscriber instead.
func (c *batchConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for {
		if c.next >= c.in.n {
			c.in.n, c.next = 0, 0
			n, err := c.sys.receive(c.in)
			if err != nil {
				return 0, netip.AddrPort{}, err
			}
			c.in.n = n
		}
		data, from := c.in.datagram(c.next)
		c.next++
		if isRTCP(data) {
			if sinks := c.sinks.Load(); sinks != nil {
				if s, ok := (*sinks)[unmapped(from)]; ok && s.readSRTCP(data) {
					continue
				}
			}
		}
		return copy(p, data), from, nil
	}
}

// ReadFrom implements net.PacketConn.
func (c *batchConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromAddrPort(p)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}
