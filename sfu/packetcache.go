package sfu

import (
	"sync"
	"time"
)

// maxPacketSize bounds what one cache slot holds; larger packets are not
// cached (they cannot be forwarded over a 1500-byte path anyway).
const maxPacketSize = 1500

// packetCache keeps the last packets of one publisher track, indexed by
// extended sequence number. All subscribers of the track share it to answer
// NACKs, so nothing is copied per subscriber.
//
// The packets' bytes go one after another into a ring, which starts small
// and doubles while a lap of it holds less than cacheWindow of the stream,
// up to what size full-size packets would take: an audio track or a small
// camera holds tens of KiB, not the megabyte fixed 1,500-byte slots took
// (many small classes are hundreds of publishers).
type packetCache struct {
	mu    sync.Mutex
	slots []cacheSlot
	mask  uint64
	ring  []byte
	head  uint64 // bytes ever written: a packet at pos is intact while head <= pos+len(ring)
	max   int    // the most the ring may grow to
	lap   int64  // when the ring last wrapped, unix nanos
}

type cacheSlot struct {
	extSeq uint64
	pos    uint64 // where its bytes begin, in bytes ever written
	n      int    // 0: empty
}

// cacheWindow is how much of a stream the ring grows to hold: a NACK
// comes a round trip after the loss, and a resend that is not there a
// second later is too late anyway.
const cacheWindow = time.Second

// cacheStart is the ring's first size.
const cacheStart = 32 << 10

// newPacketCache makes a cache of size slots; size must be a power of two.
func newPacketCache(size int) *packetCache {
	if size&(size-1) != 0 || size == 0 {
		panic("sfu: packet cache size must be a power of two")
	}
	// (One packet more than the slots' worth: the bytes a packet that
	// does not fit before the ring's end leaves unused.)
	most := (size + 1) * maxPacketSize
	return &packetCache{slots: make([]cacheSlot, size), mask: uint64(size - 1), ring: make([]byte, min(cacheStart, most)), max: most,
		lap: time.Now().UnixNano()}
}

// store copies pkt into the slot of extSeq.
func (c *packetCache) store(extSeq uint64, pkt []byte) {
	if len(pkt) > maxPacketSize {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	off := int(c.head % uint64(len(c.ring)))
	if off+len(pkt) > len(c.ring) || off == 0 && c.head > 0 {
		// A lap ends: grow if it held less than the window, else start
		// the next one (a packet never straddles the end).
		now := time.Now().UnixNano()
		if now-c.lap < int64(cacheWindow) && len(c.ring) < c.max {
			c.grow()
			off = int(c.head % uint64(len(c.ring)))
		}
		if off+len(pkt) > len(c.ring) {
			c.head += uint64(len(c.ring) - off)
			off = 0
		}
		c.lap = now
	}
	s := &c.slots[extSeq&c.mask]
	s.extSeq, s.pos, s.n = extSeq, c.head, copy(c.ring[off:], pkt)
	c.head += uint64(len(pkt))
}

// grow doubles the ring (up to max), keeping the packets it holds.
func (c *packetCache) grow() {
	ring := make([]byte, min(2*len(c.ring), c.max))
	head := uint64(0)
	for i := range c.slots {
		s := &c.slots[i]
		if !c.intact(s) {
			s.n = 0
			continue
		}
		off := int(s.pos % uint64(len(c.ring)))
		copy(ring[head:], c.ring[off:off+s.n])
		s.pos = head
		head += uint64(s.n)
	}
	c.ring, c.head = ring, head
}

// intact reports whether s holds a packet no later one has written over.
func (c *packetCache) intact(s *cacheSlot) bool {
	return s.n > 0 && c.head <= s.pos+uint64(len(c.ring))
}

// get copies the packet with extSeq into dst and returns its length, or 0
// when it has been overwritten or was never stored.
func (c *packetCache) get(extSeq uint64, dst []byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.slots[extSeq&c.mask]
	if s.extSeq != extSeq || !c.intact(s) {
		return 0
	}
	off := int(s.pos % uint64(len(c.ring)))
	return copy(dst, c.ring[off:off+s.n])
}
