package sfu

import (
	"sync"
	"time"

	"github.com/pion/rtcp"
)

// sendHistory numbers the packets sent on one subscriber transport with
// transport-wide sequence numbers (the TWCC header extension) and keeps
// when each left and how big it was, until the subscriber's feedback
// says when it arrived.
type sendHistory struct {
	mu    sync.Mutex
	next  uint64 // extended sequence number of the next packet
	slots [historySize]sentPacket
}

// historySize packets are remembered: at 1,000 packets a second, one
// second, ten times the feedback interval of browsers (16 KiB a
// subscriber).
const historySize = 1024

type sentPacket struct {
	at    int64  // unix nanos
	ext   uint32 // extended sequence number + 1 (its low 32 bits); 0 = empty
	probe uint16 // the probe cluster it was sent in, 0 = none
	size  uint16 // bytes on the wire (RTP)
}

// add numbers a packet of size bytes sent at now, during probe cluster
// probe (0: none).
func (h *sendHistory) add(size int, now time.Time, probe uint32) uint16 {
	h.mu.Lock()
	ext := h.next
	h.next++
	h.slots[ext%historySize] = sentPacket{ext: uint32(ext + 1), at: now.UnixNano(), size: uint16(min(size, 0xffff)), probe: uint16(probe)}
	h.mu.Unlock()
	return uint16(ext)
}

// packetResult is one packet of a feedback: when it was sent and arrived.
type packetResult struct {
	sent     time.Time
	arrived  time.Time // zero when lost
	size     int
	received bool
	probe    uint32
}

// feedbackResults turns a TWCC feedback into results of the packets it
// reports, in sequence order; packets no longer (or never) in the history
// are left out. out is reused.
func (h *sendHistory) feedbackResults(fb *rtcp.TransportLayerCC, out []packetResult) []packetResult {
	out = out[:0]
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.next == 0 {
		return out
	}
	// The extended number of the base: the one nearest the newest sent.
	base := extendNear(h.next-1, fb.BaseSequenceNumber)
	arrival := int64(fb.ReferenceTime) * 64 * int64(time.Millisecond)
	deltas := fb.RecvDeltas
	seq := base
	remaining := int(fb.PacketStatusCount)
	status := func(received bool) {
		if remaining == 0 {
			return
		}
		remaining--
		r := packetResult{received: received}
		if received && len(deltas) > 0 {
			arrival += deltas[0].Delta * int64(time.Microsecond)
			deltas = deltas[1:]
			r.arrived = time.Unix(0, arrival)
		}
		if s := h.slots[seq%historySize]; s.ext == uint32(seq+1) {
			r.sent, r.size, r.probe = time.Unix(0, s.at), int(s.size), uint32(s.probe)
			out = append(out, r)
		}
		seq++
	}
	for _, chunk := range fb.PacketChunks {
		switch c := chunk.(type) {
		case *rtcp.RunLengthChunk:
			received := c.PacketStatusSymbol != rtcp.TypeTCCPacketNotReceived
			for range c.RunLength {
				status(received)
			}
		case *rtcp.StatusVectorChunk:
			for _, sym := range c.SymbolList {
				if c.SymbolSize == rtcp.TypeTCCSymbolSizeOneBit {
					status(sym != 0)
				} else {
					status(sym != rtcp.TypeTCCPacketNotReceived)
				}
			}
		}
	}
	return out
}
