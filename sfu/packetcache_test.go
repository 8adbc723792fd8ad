package sfu

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"
)

// pcPkt makes a recognisable packet of n octets for extSeq.
func pcPkt(extSeq uint64, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(extSeq>>(8*(i%8))) ^ byte(i*7)
	}
	return p
}

func TestPacketCacheNewSize(t *testing.T) {
	tests := []struct {
		size      int
		wantPanic bool
	}{
		{0, true},
		{-1, true},
		{-4, true},
		{3, true},
		{6, true},
		{1000, true},
		{1025, true},
		{1, false},
		{2, false},
		{4, false},
		{512, false},
		{1024, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.size), func(t *testing.T) {
			var c *packetCache
			panicked := func() (p bool) {
				defer func() { p = recover() != nil }()
				c = newPacketCache(tt.size)
				return false
			}()
			if panicked != tt.wantPanic {
				t.Fatalf("newPacketCache(%d): panicked = %v, want %v", tt.size, panicked, tt.wantPanic)
			}
			if !panicked {
				if len(c.slots) != tt.size || c.mask != uint64(tt.size-1) {
					t.Fatalf("newPacketCache(%d): %d slots, mask %#x", tt.size, len(c.slots), c.mask)
				}
			}
		})
	}
}

func TestPacketCache(t *testing.T) {
	type op struct {
		store   bool   // store (true) or get (false)
		extSeq  uint64 //
		n       int    // store: packet length (content from pktFor); get: len(dst)
		wantN   int    // get: expected return value (content is checked against pktFor(extSeq, storedLen))
		storedN int    // get: length of the stored packet, when wantN > 0
	}
	st := func(ext uint64, n int) op { return op{store: true, extSeq: ext, n: n} }
	get := func(ext uint64, want int) op { return op{extSeq: ext, n: maxPacketSize, wantN: want, storedN: want} }
	getDst := func(ext uint64, dst, want, stored int) op {
		return op{extSeq: ext, n: dst, wantN: want, storedN: stored}
	}
	const cycle = 1 << 16
	tests := []struct {
		name string
		size int
		ops  []op
	}{
		{
			name: "empty cache returns nothing, even for extSeq 0",
			size: 8,
			ops:  []op{get(0, 0), get(1, 0), get(7, 0), get(8, 0), get(cycle, 0)},
		},
		{
			name: "store then get",
			size: 8,
			ops:  []op{st(cycle+1, 100), get(cycle+1, 100)},
		},
		{
			name: "other seqs of the same slot miss",
			size: 8,
			ops:  []op{st(cycle+1, 100), get(cycle+9, 0), get(cycle-7, 0), get(1, 0), get(2*cycle+1, 0)},
		},
		{
			name: "a full window of packets",
			size: 4,
			ops: []op{
				st(10, 10), st(11, 11), st(12, 12), st(13, 13),
				get(10, 10), get(11, 11), get(12, 12), get(13, 13), get(9, 0), get(14, 0),
			},
		},
		{
			name: "a newer seq in the same slot overwrites",
			size: 8,
			ops:  []op{st(3, 50), st(11, 60), get(3, 0), get(11, 60)},
		},
		{
			name: "overwrite by a seq one 16-bit cycle later",
			size: 8,
			ops:  []op{st(cycle+3, 50), st(2*cycle+3, 60), get(cycle+3, 0), get(2*cycle+3, 60)},
		},
		{
			name: "window slides: oldest packets are gone",
			size: 4,
			ops: []op{
				st(10, 10), st(11, 11), st(12, 12), st(13, 13), st(14, 14), st(15, 15),
				get(10, 0), get(11, 0), get(12, 12), get(13, 13), get(14, 14), get(15, 15),
			},
		},
		{
			name: "same seq stored again: newest content and length win",
			size: 8,
			ops:  []op{st(5, 200), st(5, 20), get(5, 20)},
		},
		{
			name: "out-of-order stores within the window",
			size: 8,
			ops:  []op{st(7, 7), st(5, 5), st(6, 6), get(5, 5), get(6, 6), get(7, 7)},
		},
		{
			name: "maximum size packet is cached",
			size: 8,
			ops:  []op{st(1, maxPacketSize), get(1, maxPacketSize)},
		},
		{
			name: "oversized packet is not cached",
			size: 8,
			ops:  []op{st(1, maxPacketSize+1), get(1, 0)},
		},
		{
			name: "very large packet is not cached",
			size: 8,
			ops:  []op{st(1, 64*1024), get(1, 0)},
		},
		{
			name: "oversized packet leaves the older packet of its slot in place",
			size: 8,
			ops:  []op{st(3, 30), st(11, maxPacketSize+1), get(3, 30), get(11, 0)},
		},
		{
			name: "oversized packet does not replace the same seq",
			size: 8,
			ops:  []op{st(3, 30), st(3, maxPacketSize+1), get(3, 30)},
		},
		{
			name: "one-octet packet",
			size: 8,
			ops:  []op{st(4, 1), get(4, 1)},
		},
		{
			name: "empty packet reads as missing",
			size: 8,
			ops:  []op{st(4, 0), get(4, 0)},
		},
		{
			name: "empty packet evicts the older packet of its slot",
			size: 8,
			ops:  []op{st(4, 40), st(12, 0), get(4, 0), get(12, 0)},
		},
		{
			name: "single slot cache",
			size: 1,
			ops:  []op{st(1, 10), get(1, 10), st(2, 20), get(1, 0), get(2, 20)},
		},
		{
			name: "dst larger than the packet",
			size: 8,
			ops:  []op{st(2, 100), getDst(2, 1000, 100, 100)},
		},
		{
			name: "dst exactly the packet size",
			size: 8,
			ops:  []op{st(2, 100), getDst(2, 100, 100, 100)},
		},
		// get returns the number of octets copied, which is less than the
		// packet when dst is short: the packet is truncated silently.
		{
			name: "dst shorter than the packet truncates",
			size: 8,
			ops:  []op{st(2, 100), getDst(2, 10, 10, 100)},
		},
		{
			name: "empty dst reads as missing",
			size: 8,
			ops:  []op{st(2, 100), getDst(2, 0, 0, 100)},
		},
		{
			name: "large extended seqs",
			size: 512,
			ops:  []op{st(1<<40+511, 33), st(1<<40+512, 34), get(1<<40+511, 33), get(1<<40+512, 34), get(511, 0), get(1<<40, 0)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newPacketCache(tt.size)
			for i, o := range tt.ops {
				if o.store {
					c.store(o.extSeq, pcPkt(o.extSeq, o.n))
					continue
				}
				const guard = 0xa5
				dst := bytes.Repeat([]byte{guard}, o.n)
				got := c.get(o.extSeq, dst)
				if got != o.wantN {
					t.Fatalf("op %d: get(%d, dst[%d]) = %d, want %d", i, o.extSeq, o.n, got, o.wantN)
				}
				if want := pcPkt(o.extSeq, o.storedN)[:got]; !bytes.Equal(dst[:got], want) {
					t.Fatalf("op %d: get(%d) copied % x..., want % x...", i, o.extSeq, pcHead(dst[:got]), pcHead(want))
				}
				for j := got; j < len(dst); j++ {
					if dst[j] != guard {
						t.Fatalf("op %d: get(%d) = %d wrote dst[%d]", i, o.extSeq, got, j)
					}
				}
			}
		})
	}
}

func pcHead(b []byte) []byte { return b[:min(len(b), 16)] }

// TestPacketCacheCopies checks that the cache owns its copy: changing the
// stored slice or the dst of an earlier get does not change what get returns.
func TestPacketCacheCopies(t *testing.T) {
	c := newPacketCache(16)
	pkt := pcPkt(7, 300)
	c.store(7, pkt)
	for i := range pkt {
		pkt[i] = 0
	}
	dst := make([]byte, maxPacketSize)
	n := c.get(7, dst)
	if n != 300 || !bytes.Equal(dst[:n], pcPkt(7, 300)) {
		t.Fatalf("get after the caller reused its buffer: n=%d, content changed", n)
	}
	for i := range dst {
		dst[i] = 0xee
	}
	dst2 := make([]byte, maxPacketSize)
	if n := c.get(7, dst2); n != 300 || !bytes.Equal(dst2[:n], pcPkt(7, 300)) {
		t.Fatalf("get after the caller changed an earlier dst: n=%d, content changed", n)
	}
	// A shorter packet into a previously longer slot must not expose the
	// old tail.
	c.store(7+16, pcPkt(7+16, 10))
	dst3 := make([]byte, maxPacketSize)
	if n := c.get(7+16, dst3); n != 10 || !bytes.Equal(dst3[:n], pcPkt(7+16, 10)) {
		t.Fatalf("short packet in a reused slot: n=%d", n)
	}
}

func TestPacketCacheStoreDoesNotAllocate(t *testing.T) {
	c := newPacketCache(512)
	pkt := pcPkt(1, 1200)
	dst := make([]byte, maxPacketSize)
	var seq uint64
	allocs := testing.AllocsPerRun(1000, func() {
		seq++
		c.store(seq, pkt)
		c.get(seq, dst)
	})
	if allocs != 0 {
		t.Errorf("store+get: %v allocs per run, want 0", allocs)
	}
}

// TestPacketCacheConcurrent runs writers and readers at once (meant for
// -race): a reader must get either nothing or exactly the packet of the
// seq it asked for, never a mix of two packets.
func TestPacketCacheConcurrent(t *testing.T) {
	c := newPacketCache(64)
	const writers, readers, perWriter = 4, 4, 5000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				ext := uint64(i*writers + w)
				c.store(ext, pcPkt(ext, 100+int(ext%700)))
			}
		})
	}
	errs := make(chan string, readers)
	for r := range readers {
		wg.Go(func() {
			dst := make([]byte, maxPacketSize)
			for i := range perWriter * writers / readers {
				ext := uint64(i*readers + r)
				n := c.get(ext, dst)
				if n == 0 {
					continue
				}
				if want := pcPkt(ext, 100+int(ext%700)); n != len(want) || !bytes.Equal(dst[:n], want) {
					errs <- fmt.Sprintf("get(%d) = %d octets, not the packet stored for it", ext, n)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// The ring grows while a lap of it holds less than cacheWindow, keeping
// what it holds, up to what full-size packets in every slot would take; a
// stream that laps it slower stays small.
func TestPacketCacheGrowsToItsWindow(t *testing.T) {
	c := newPacketCache(512)
	if len(c.ring) != cacheStart {
		t.Fatalf("ring of %d bytes at the start, want %d", len(c.ring), cacheStart)
	}
	// A fast stream: 1,100-byte packets, far more than a ring a second.
	for ext := range uint64(2000) {
		c.store(ext, pcPkt(ext, 1100))
		// Every packet of the last 512 (the slots) is there, as it was,
		// through every growth.
		if ext >= 1 {
			for _, back := range []uint64{1, 100, 511} {
				if back > ext {
					continue
				}
				buf := make([]byte, maxPacketSize)
				n := c.get(ext-back, buf)
				if n != 1100 || !bytes.Equal(buf[:n], pcPkt(ext-back, 1100)) {
					t.Fatalf("after %d: packet %d: %d bytes", ext, ext-back, n)
				}
			}
		}
	}
	if len(c.ring) != c.max || c.max != 513*maxPacketSize {
		t.Errorf("ring of %d bytes after a fast stream, want its most, %d", len(c.ring), 513*maxPacketSize)
	}
	// A slow one (a lap older than the window): no growth.
	slow := newPacketCache(512)
	slow.lap = time.Now().Add(-2 * cacheWindow).UnixNano()
	for ext := range uint64(40) {
		slow.store(ext, pcPkt(ext, 1000)) // 40 KB: one wrap
	}
	if len(slow.ring) != cacheStart {
		t.Errorf("ring of %d bytes after a lap slower than the window, want %d", len(slow.ring), cacheStart)
	}
	buf := make([]byte, maxPacketSize)
	if n := slow.get(39, buf); n != 1000 || !bytes.Equal(buf[:n], pcPkt(39, 1000)) {
		t.Errorf("the newest packet: %d bytes", n)
	}
	if n := slow.get(0, buf); n != 0 {
		t.Errorf("the oldest packet, written over: %d bytes, want none", n)
	}
}
