package sfu

import (
	"net"
	"net/netip"
	"sync"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
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
// AddrPortReaderWriter).
type batchConn struct {
	*net.UDPConn
	batcher interface {
		WriteBatch([]ipv4.Message, int) (int, error)
		ReadBatch([]ipv4.Message, int) (int, error)
	}

	mu      sync.Mutex // guards the fields below; never held during I/O
	rounds  int        // fan-out rounds in progress
	pending *batch
	free    []*batch

	readMu  sync.Mutex // the ICE mux reads from one goroutine; this keeps it safe anyway
	in      []ipv4.Message
	inBufs  [][readSize]byte
	inCount int
	next    int // next unread message of in
}

// batch is batchSize datagrams with their own buffers and addresses.
type batch struct {
	msgs  []ipv4.Message
	bufs  [][maxPacketSize]byte
	addrs []net.UDPAddr
	ips   [][16]byte
	n     int
}

func newBatch() *batch {
	b := &batch{
		msgs:  make([]ipv4.Message, batchSize),
		bufs:  make([][maxPacketSize]byte, batchSize),
		addrs: make([]net.UDPAddr, batchSize),
		ips:   make([][16]byte, batchSize),
	}
	for i := range b.msgs {
		b.msgs[i].Buffers = [][]byte{b.bufs[i][:]}
	}
	return b
}

// add copies one datagram into the batch.
func (b *batch) add(p []byte, to netip.AddrPort) {
	i := b.n
	b.n++
	m := &b.msgs[i]
	m.Buffers[0] = b.bufs[i][:copy(b.bufs[i][:], p)]
	a := &b.addrs[i]
	ip := to.Addr()
	if ip.Is4() || ip.Is4In6() {
		v4 := ip.Unmap().As4()
		a.IP = b.ips[i][:copy(b.ips[i][:], v4[:])]
	} else {
		v6 := ip.As16()
		a.IP = b.ips[i][:copy(b.ips[i][:], v6[:])]
	}
	a.Port = int(to.Port())
	a.Zone = ip.Zone()
	m.Addr = a
}

func newBatchConn(c *net.UDPConn) *batchConn {
	// Best effort: the kernel caps these at net.core.[rw]mem_max.
	_ = c.SetReadBuffer(socketBuffer)
	_ = c.SetWriteBuffer(socketBuffer)
	bc := &batchConn{UDPConn: c, pending: newBatch(), in: make([]ipv4.Message, batchSize), inBufs: make([][readSize]byte, batchSize)}
	for i := range bc.in {
		bc.in[i].Buffers = [][]byte{bc.inBufs[i][:]}
	}
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		// An IPv6 socket ("::" takes both families, v4 as mapped addresses).
		bc.batcher = ipv6Batcher{ipv6.NewPacketConn(c)}
	} else {
		bc.batcher = ipv4.NewPacketConn(c)
	}
	return bc
}

// ipv6Batcher adapts ipv6.PacketConn (whose Message is the same type).
type ipv6Batcher struct{ *ipv6.PacketConn }

func (b ipv6Batcher) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	return b.PacketConn.WriteBatch(ms, flags)
}

func (b ipv6Batcher) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	return b.PacketConn.ReadBatch(ms, flags)
}

// beginRound starts collecting writes.
func (c *batchConn) beginRound() {
	c.mu.Lock()
	c.rounds++
	c.mu.Unlock()
}

// endRound sends what the round collected once no round is in progress.
func (c *batchConn) endRound() {
	c.mu.Lock()
	c.rounds--
	var out *batch
	if c.rounds == 0 && c.pending.n > 0 {
		out = c.takePendingLocked()
	}
	c.mu.Unlock()
	if out != nil {
		c.send(out)
	}
}

func (c *batchConn) takePendingLocked() *batch {
	out := c.pending
	if n := len(c.free); n > 0 {
		c.pending = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		c.pending = newBatch()
	}
	return out
}

// send writes a batch with as few sendmmsg calls as the kernel allows and
// returns it to the free list. Datagrams the kernel refuses are dropped,
// as a full socket buffer would drop them.
func (c *batchConn) send(b *batch) {
	for sent := 0; sent < b.n; {
		n, err := c.batcher.WriteBatch(b.msgs[sent:b.n], 0)
		if err != nil && n <= 0 {
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
	if len(p) > maxPacketSize {
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

// ReadFromAddrPort implements ice.AddrPortReaderWriter, taking up to
// batchSize datagrams from the kernel at a time.
func (c *batchConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.next >= c.inCount {
		n, err := c.batcher.ReadBatch(c.in, 0)
		if err != nil {
			return 0, netip.AddrPort{}, err
		}
		c.inCount, c.next = n, 0
	}
	m := &c.in[c.next]
	c.next++
	n := copy(p, c.inBufs[c.next-1][:m.N])
	var from netip.AddrPort
	if u, ok := m.Addr.(*net.UDPAddr); ok {
		from = u.AddrPort()
	}
	return n, from, nil
}

// ReadFrom implements net.PacketConn.
func (c *batchConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromAddrPort(p)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}
