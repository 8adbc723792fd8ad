package recorder

import (
	"sync"

	"github.com/pion/rtp"
)

// packet is an RTP packet read into a buffer of its own (its payload
// points into it). The buffer goes back to the pool once the packet's
// frame has taken the payload: a recording allocates nothing per packet.
type packet struct {
	rtp.Packet
	buf [1500]byte // the client reads no packet larger than 1,460 bytes
}

var packetPool = sync.Pool{New: func() any { return new(packet) }}

func newPacket() *packet { return packetPool.Get().(*packet) }

// release gives p back to the pool; nothing may use it after.
func (p *packet) release() {
	if p != nil {
		packetPool.Put(p)
	}
}
