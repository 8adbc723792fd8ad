package sfu

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

func listenLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Writes inside a round leave in batches, in order, with their contents
// and destinations; writes outside a round leave at once.
func TestBatchConnWrites(t *testing.T) {
	tests := []struct {
		name    string
		packets int
		round   bool
	}{
		{"outside a round", 3, false},
		{"one partial batch", 5, true},
		{"exactly one batch", batchSize, true},
		{"several batches", 2*batchSize + 7, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bc := newBatchConn(listenLoopback(t))
			dst := []*net.UDPConn{listenLoopback(t), listenLoopback(t)}
			if tt.round {
				bc.beginRound()
			}
			for i := range tt.packets {
				to := dst[i%2].LocalAddr().(*net.UDPAddr).AddrPort()
				payload := []byte(fmt.Sprintf("packet %03d", i))
				if n, err := bc.WriteToAddrPort(payload, to); err != nil || n != len(payload) {
					t.Fatalf("write %d: %d, %v", i, n, err)
				}
			}
			if tt.round {
				bc.endRound()
			}
			buf := make([]byte, 1500)
			for i := range tt.packets {
				c := dst[i%2]
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("packet %d never arrived: %v", i, err)
				}
				if want := fmt.Sprintf("packet %03d", i); string(buf[:n]) != want {
					t.Errorf("got %q, want %q", buf[:n], want)
				}
				if from != bc.LocalAddr().(*net.UDPAddr).AddrPort() {
					t.Errorf("from %v, want %v", from, bc.LocalAddr())
				}
			}
		})
	}
}

// Nested rounds (two publishers' fan-outs overlapping) flush when the last ends.
func TestBatchConnNestedRounds(t *testing.T) {
	bc := newBatchConn(listenLoopback(t))
	// Overlapping rounds hold a datagram batchLinger at most: far longer
	// here, so that a busy machine's pause between the write and the
	// inner round's end does not send it (failed CI).
	bc.lingerFor = time.Minute
	dst := listenLoopback(t)
	to := dst.LocalAddr().(*net.UDPAddr).AddrPort()
	bc.beginRound()
	bc.beginRound()
	_, _ = bc.WriteToAddrPort([]byte("a"), to)
	bc.endRound()
	_ = dst.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, _, err := dst.ReadFromUDPAddrPort(make([]byte, 10)); err == nil {
		t.Fatal("a packet left before the last round ended")
	}
	bc.endRound()
	_ = dst.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, _, err := dst.ReadFromUDPAddrPort(make([]byte, 10)); err != nil {
		t.Fatalf("packet not sent after the last round: %v", err)
	}
}

// Reads return every datagram with its sender, whether the kernel had one
// or many queued.
func TestBatchConnReads(t *testing.T) {
	bc := newBatchConn(listenLoopback(t))
	src := listenLoopback(t)
	to := bc.LocalAddr().(*net.UDPAddr).AddrPort()
	const total = 3*batchSize + 5
	for i := range total {
		if _, err := src.WriteToUDPAddrPort([]byte(fmt.Sprintf("d%03d", i)), to); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 1500)
	_ = bc.SetReadDeadline(time.Now().Add(2 * time.Second))
	for i := range total {
		n, from, err := bc.ReadFromAddrPort(buf)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if want := fmt.Sprintf("d%03d", i); !bytes.Equal(buf[:n], []byte(want)) {
			t.Errorf("read %q, want %q", buf[:n], want)
		}
		if from != src.LocalAddr().(*net.UDPAddr).AddrPort() {
			t.Errorf("from %v", from)
		}
	}
}

// On a dual-stack socket (the embedded default listens on "::"), batched
// datagrams reach IPv4 and IPv6 peers, and reads name each sender as the
// ICE mux expects: IPv4 senders as mapped addresses.
func TestBatchConnDualStack(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6unspecified})
	if err != nil {
		t.Skipf("no IPv6 socket here: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	v6, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	t.Cleanup(func() { v6.Close() })
	bc := newBatchConn(c)
	port := bc.LocalAddr().(*net.UDPAddr).Port
	peers := []*net.UDPConn{listenLoopback(t), v6}
	bc.beginRound()
	for i, p := range peers {
		if _, err := bc.WriteToAddrPort([]byte{byte(i)}, p.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
			t.Fatal(err)
		}
	}
	bc.endRound()
	buf := make([]byte, 100)
	for i, p := range peers {
		_ = p.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := p.ReadFromUDPAddrPort(buf)
		if err != nil || n != 1 || buf[0] != byte(i) {
			t.Fatalf("peer %d: %d bytes %v, %v", i, n, buf[:n], err)
		}
		// And back.
		to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
		if i == 1 {
			to.IP = net.IPv6loopback
		}
		if _, err := p.WriteToUDP([]byte("back"), to); err != nil {
			t.Fatal(err)
		}
		_ = bc.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := bc.ReadFromAddrPort(buf)
		if err != nil || string(buf[:n]) != "back" {
			t.Fatalf("read from peer %d: %q, %v", i, buf[:n], err)
		}
		want := p.LocalAddr().(*net.UDPAddr).AddrPort()
		if i == 0 {
			want = netip.AddrPortFrom(netip.AddrFrom16(want.Addr().As16()), want.Port())
		}
		if from != want {
			t.Errorf("peer %d read as %v, want %v", i, from, want)
		}
	}
}

// recordingSink is a packetSink that keeps what it takes: RTCP but what
// ends with refuse, and RTP if rtp.
type recordingSink struct {
	got    [][]byte
	refuse byte
	rtp    bool
}

func (s *recordingSink) readSRTCP(b []byte) bool {
	if s.refuse != 0 && b[7] == s.refuse {
		return false
	}
	s.got = append(s.got, append([]byte(nil), b...))
	return true
}

func (s *recordingSink) readSRTP(b []byte) bool {
	if s.rtp {
		s.got = append(s.got, append([]byte(nil), b...))
	}
	return s.rtp
}

// RTP and RTCP from a claimed address go to its sinks as they are read,
// the newest claim first; STUN and DTLS, what no sink takes, and what
// comes from elsewhere or once released go to the reader (Pion).
func TestBatchConnGivesClaimedPacketsToTheirSinks(t *testing.T) {
	bc := newBatchConn(listenLoopback(t))
	a, b := listenLoopback(t), listenLoopback(t)
	to := bc.LocalAddr().(*net.UDPAddr).AddrPort()
	rtcpPkt := func(tag byte) []byte { return []byte{0x81, 205, 0, 1, 0, 0, 0, tag} } // a NACK's header
	rtpPkt := func(tag byte) []byte { return []byte{0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, tag} }
	stun := []byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 's'}
	aAddr := a.LocalAddr().(*net.UDPAddr).AddrPort()
	sub := &recordingSink{refuse: 9}            // a subscriber's: RTCP, but its keys do not open packet 9
	pub := &recordingSink{refuse: 8, rtp: true} // a publisher's, from the same socket
	bc.claim(aAddr, pub)
	bc.claim(aAddr, sub)
	send := func(c *net.UDPConn, p []byte) {
		if _, err := c.WriteToUDPAddrPort(p, to); err != nil {
			t.Fatal(err)
		}
	}
	send(a, rtcpPkt(1))
	send(a, rtpPkt(1))
	send(a, rtcpPkt(9))
	send(a, stun)
	send(b, rtcpPkt(2))
	send(b, rtpPkt(2))
	buf := make([]byte, 1500)
	_ = bc.SetReadDeadline(time.Now().Add(2 * time.Second))
	for _, want := range [][]byte{stun, rtcpPkt(2), rtpPkt(2)} {
		n, _, err := bc.ReadFromAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:n], want) {
			t.Errorf("read %x, want %x", buf[:n], want)
		}
	}
	if len(sub.got) != 1 || !bytes.Equal(sub.got[0], rtcpPkt(1)) {
		t.Errorf("the subscriber's sink took %x, want the RTCP its keys open", sub.got)
	}
	if len(pub.got) != 2 || !bytes.Equal(pub.got[0], rtpPkt(1)) || !bytes.Equal(pub.got[1], rtcpPkt(9)) {
		t.Errorf("the publisher's sink took %x, want its RTP and the RTCP the other refused", pub.got)
	}
	bc.release(b.LocalAddr().(*net.UDPAddr).AddrPort(), sub) // not its: no effect
	bc.release(aAddr, sub)
	send(a, rtcpPkt(8)) // the publisher's refuses it, and no other is left
	send(a, rtcpPkt(3))
	send(a, stun) // read after them
	for _, want := range [][]byte{rtcpPkt(8), stun} {
		if n, _, err := bc.ReadFromAddrPort(buf); err != nil || !bytes.Equal(buf[:n], want) {
			t.Errorf("after release: read %x (%v), want %x", buf[:n], err, want)
		}
	}
	if len(pub.got) != 3 || !bytes.Equal(pub.got[2], rtcpPkt(3)) {
		t.Errorf("after release the publisher's sink took %x", pub.got)
	}
	bc.release(aAddr, pub)
	send(a, rtpPkt(4))
	if n, _, err := bc.ReadFromAddrPort(buf); err != nil || !bytes.Equal(buf[:n], rtpPkt(4)) {
		t.Errorf("all released: read %x (%v), want the RTP", buf[:n], err)
	}
}

// Rounds that come close together (many small classes) share batches: a
// round's partial batch waits for the next round's datagrams, at most the
// linger; a round after a pause is sent at once. Nothing is lost or
// reordered either way.
func TestBatchConnLingersBetweenCloseRounds(t *testing.T) {
	bc := newBatchConn(listenLoopback(t))
	bc.lingerFor = time.Second // long enough to look at what waits
	dst := listenLoopback(t)
	to := dst.LocalAddr().(*net.UDPAddr).AddrPort()
	sent := 0
	round := func(n int) {
		bc.beginRound()
		for range n {
			_, _ = bc.WriteToAddrPort([]byte(fmt.Sprintf("packet %03d", sent)), to)
			sent++
		}
		bc.endRound()
	}
	waiting := func() (int, bool) {
		bc.mu.Lock()
		defer bc.mu.Unlock()
		return bc.pending.n, bc.armed
	}
	round(3) // after a pause: at once
	if n, armed := waiting(); n != 0 || armed {
		t.Fatalf("the first round left %d waiting (armed %v)", n, armed)
	}
	round(3)
	round(3)
	if n, armed := waiting(); n != 6 || !armed {
		t.Fatalf("two close rounds: %d waiting (armed %v), want 6", n, armed)
	}
	start := time.Now()
	buf := make([]byte, 1500)
	_ = dst.SetReadDeadline(time.Now().Add(3 * time.Second))
	for i := range sent {
		n, _, err := dst.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("packet %d never arrived: %v", i, err)
		}
		if want := fmt.Sprintf("packet %03d", i); string(buf[:n]) != want {
			t.Fatalf("got %q, want %q", buf[:n], want)
		}
	}
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Errorf("the waiting batch left after %v, before its linger", waited)
	}
	bc.mu.Lock()
	bc.lastEnd = time.Now().Add(-2 * time.Second).UnixNano()
	bc.mu.Unlock()
	round(3) // after a pause again: at once
	if n, _ := waiting(); n != 0 {
		t.Errorf("a round after a pause left %d waiting", n)
	}
}

// A waiting batch leaves within its linger even while rounds keep coming
// closer than the linger (a busy engine's rounds touch every socket,
// most writing nothing to this one).
func TestBatchConnLingerIsABound(t *testing.T) {
	bc := newBatchConn(listenLoopback(t))
	bc.lingerFor = 50 * time.Millisecond
	dst := listenLoopback(t)
	to := dst.LocalAddr().(*net.UDPAddr).AddrPort()
	const datagrams = 20
	var sentAt, arrivedAt [datagrams]time.Time
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		_ = dst.SetReadDeadline(time.Now().Add(5 * time.Second))
		for range datagrams {
			n, _, err := dst.ReadFromUDPAddrPort(buf)
			if err != nil {
				done <- err
				return
			}
			var i int
			if _, err := fmt.Sscanf(string(buf[:n]), "d%d", &i); err == nil && i < datagrams {
				arrivedAt[i] = time.Now()
			}
		}
		done <- nil
	}()
	for i := range datagrams * 20 { // rounds of a millisecond back to back, a datagram in every 20th
		bc.beginRound()
		if i%20 == 0 {
			sentAt[i/20] = time.Now()
			_, _ = bc.WriteToAddrPort([]byte(fmt.Sprintf("d%d", i/20)), to)
		}
		time.Sleep(time.Millisecond)
		bc.endRound()
	}
	if err := <-done; err != nil {
		t.Fatalf("datagrams lost: %v", err)
	}
	var worst time.Duration
	for i := range datagrams {
		worst = max(worst, arrivedAt[i].Sub(sentAt[i]))
	}
	if worst > 3*bc.lingerFor {
		t.Errorf("a datagram waited %v with a linger of %v", worst, bc.lingerFor)
	}
}

// roundSink takes RTP and notes how many rounds were open at each packet.
type roundSink struct {
	open *atomic.Int32
	seen []int32
}

func (s *roundSink) readSRTP([]byte) bool  { s.seen = append(s.seen, s.open.Load()); return true }
func (s *roundSink) readSRTCP([]byte) bool { return false }

// The sinks' packets of one batch read are one fan-out round: opened when
// more datagrams follow the first a sink takes, closed before a datagram
// goes to the reader and before the reader waits for more.
func TestBatchConnBatchIsOneRound(t *testing.T) {
	bc := newBatchConn(listenLoopback(t))
	var open, begun atomic.Int32
	bc.round = func(begin bool) {
		if begin {
			open.Add(1)
			begun.Add(1)
		} else {
			open.Add(-1)
		}
	}
	a := listenLoopback(t)
	sink := &roundSink{open: &open}
	bc.claim(a.LocalAddr().(*net.UDPAddr).AddrPort(), sink)
	to := bc.LocalAddr().(*net.UDPAddr).AddrPort()
	send := func(p []byte) {
		if _, err := a.WriteToUDPAddrPort(p, to); err != nil {
			t.Fatal(err)
		}
	}
	rtpPkt := []byte{0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 'r'}
	stun := []byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 's'}
	for range 4 {
		send(rtpPkt)
	}
	send(stun)
	time.Sleep(50 * time.Millisecond) // all five in the socket: one read takes them
	buf := make([]byte, 1500)
	_ = bc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, _, err := bc.ReadFromAddrPort(buf); err != nil || !bytes.Equal(buf[:n], stun) {
		t.Fatalf("read %x (%v), want the STUN", buf[:n], err)
	}
	if !slices.Equal(sink.seen, []int32{1, 1, 1, 1}) || open.Load() != 0 || begun.Load() != 1 {
		t.Errorf("rounds open at each packet %v, after %d, begun %d; want one round for the four, closed", sink.seen, open.Load(), begun.Load())
	}
	// Two packets, then nothing: the reader waits with no round open.
	sink.seen = nil
	send(rtpPkt)
	send(rtpPkt)
	time.Sleep(50 * time.Millisecond)
	done := make(chan error, 1)
	_ = bc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	go func() { _, _, err := bc.ReadFromAddrPort(buf); done <- err }()
	time.Sleep(200 * time.Millisecond) // the reader waits in recvmmsg by now
	if got := open.Load(); got != 0 {
		t.Errorf("%d rounds open while the reader waits", got)
	}
	if err := <-done; err == nil {
		t.Error("a read with nothing to read returned no error")
	}
	if !slices.Equal(sink.seen, []int32{1, 1}) || open.Load() != 0 {
		t.Errorf("rounds open at each packet %v, after %d; want one round for the two, closed", sink.seen, open.Load())
	}
}

// Rounds that overlap (several sockets' readers) and never all end at
// once still send what waits within the linger.
func TestBatchConnLingerBoundsOverlappingRounds(t *testing.T) {
	bc := newBatchConn(listenLoopback(t))
	bc.lingerFor = 20 * time.Millisecond
	dst := listenLoopback(t)
	to := dst.LocalAddr().(*net.UDPAddr).AddrPort()
	bc.beginRound()
	sent := time.Now()
	_, _ = bc.WriteToAddrPort([]byte("d"), to)
	arrived := make(chan time.Time, 1)
	go func() {
		buf := make([]byte, 64)
		_ = dst.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := dst.ReadFromUDPAddrPort(buf); err == nil {
			arrived <- time.Now()
		}
		close(arrived)
	}()
	for range 100 { // a round always open: one begins before the last ends
		bc.beginRound()
		time.Sleep(5 * time.Millisecond)
		bc.endRound()
	}
	overlapping := time.Since(sent) // half a second or more
	bc.endRound()
	at, ok := <-arrived
	if !ok {
		t.Fatal("the datagram never left")
	}
	// Held until the rounds stopped overlapping, it would have waited all
	// of them; a loaded machine may delay it some, never that much.
	if waited := at.Sub(sent); waited > overlapping/3 {
		t.Errorf("it waited %v with a linger of %v, while rounds overlapped for %v", waited, bc.lingerFor, overlapping)
	}
}
