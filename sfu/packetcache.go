package sfu

import "sync"

// maxPacketSize bounds what one cache slot holds; larger packets are not
// cached (they cannot be forwarded over a 1500-byte path anyway).
const maxPacketSize = 1500

// packetCache keeps the last packets of one publisher track, indexed by
// extended sequence number. All subscribers of the track share it to answer
// NACKs, so nothing is copied per subscriber.
type packetCache struct {
	mu    sync.Mutex
	slots []cacheSlot
	mask  uint64
}

type cacheSlot struct {
	extSeq uint64
	n      int
	buf    [maxPacketSize]byte
}

// newPacketCache makes a cache of size slots; size must be a power of two.
func newPacketCache(size int) *packetCache {
	if size&(size-1) != 0 || size == 0 {
		panic("sfu: packet cache size must be a power of two")
	}
	return &packetCache{slots: make([]cacheSlot, size), mask: uint64(size - 1)}
}

// store copies pkt into the slot of extSeq.
func (c *packetCache) store(extSeq uint64, pkt []byte) {
	if len(pkt) > maxPacketSize {
		return
	}
	c.mu.Lock()
	s := &c.slots[extSeq&c.mask]
	s.extSeq = extSeq
	s.n = copy(s.buf[:], pkt)
	c.mu.Unlock()
}

// get copies the packet with extSeq into dst and returns its length, or 0
// when it has been overwritten or was never stored.
func (c *packetCache) get(extSeq uint64, dst []byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.slots[extSeq&c.mask]
	if s.n == 0 || s.extSeq != extSeq {
		return 0
	}
	return copy(dst, s.buf[:s.n])
}
