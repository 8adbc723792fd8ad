package recorder

import (
	"encoding/binary"
	"strings"
	"time"

	"github.com/pion/rtp/codecs"

	"github.com/vclass/vclass/recorder/mkv"
)

// frame is one coded picture or audio packet, rebuilt from RTP.
type frame struct {
	rtpTS   uint32
	arrival time.Time // of its first packet
	key     bool
	data    []byte
}

// assembler turns a track's packets, in order, into frames. Video frames
// with a missing packet are dropped, and so is everything after until a
// keyframe: a decoder cannot use them.
type assembler struct {
	codec string // lower-case MIME subtype: vp8, vp9, h264, av1, opus, pcma, pcmu
	video bool

	cur      frame
	have     bool // cur holds packets
	broken   bool // cur lost a packet
	needKey  bool // drop frames until a keyframe
	h264     *codecs.H264Packet
	sps, pps []byte // the latest H.264 parameter sets
	av1      *codecs.AV1Depacketizer
	av1Seq   []byte // the latest AV1 sequence header OBU
	lostHeld bool   // a loss noted on a padding packet, for the next one
}

func newAssembler(mime string) *assembler {
	codec := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(mime, "video/"), "audio/"))
	a := &assembler{codec: codec, video: strings.HasPrefix(strings.ToLower(mime), "video/"), needKey: true}
	switch codec {
	case "h264":
		a.h264 = &codecs.H264Packet{IsAVC: true}
	case "av1":
		a.av1 = &codecs.AV1Depacketizer{}
	}
	return a
}

// add takes the next packet and returns a finished frame, if any; keyframe
// says a keyframe should be asked for.
func (a *assembler) add(p outPacket) (f frame, ok bool, keyframe bool) {
	if !a.video {
		if len(p.pkt.Payload) == 0 {
			return frame{}, false, false
		}
		return frame{rtpTS: p.pkt.Timestamp, arrival: p.arrival, key: true, data: p.pkt.Payload}, true, false
	}
	if len(p.pkt.Payload) == 0 {
		// Padding (bandwidth probes on the media stream): no part of a
		// picture; a loss before it counts for the next real packet.
		a.lostHeld = a.lostHeld || p.lost
		return frame{}, false, false
	}
	if a.lostHeld {
		p.lost, a.lostHeld = true, false
	}
	if p.lost && a.h264 != nil {
		a.h264 = &codecs.H264Packet{IsAVC: true}
	}
	if p.lost && a.av1 != nil {
		a.av1 = &codecs.AV1Depacketizer{} // no fragment across the loss
	}
	if a.have && p.pkt.Timestamp != a.cur.rtpTS {
		// A new picture began before the last one's marker: that one is lost.
		a.have = false
		a.needKey = true
	}
	if !a.have {
		// After a loss this picture may lack its start, or follow a lost
		// picture it depends on: only a keyframe is safe.
		a.cur = frame{rtpTS: p.pkt.Timestamp, arrival: p.arrival, key: a.startsKeyframe(p.pkt.Payload)}
		a.have, a.broken = true, p.lost
		if p.lost {
			a.needKey = true
		}
	} else if p.lost {
		a.broken = true
	}
	a.appendPayload(p.pkt.Payload)
	if !p.pkt.Marker {
		return frame{}, false, false
	}
	a.have = false
	if a.broken || len(a.cur.data) == 0 {
		a.needKey = true
		return frame{}, false, true
	}
	switch a.codec {
	case "h264":
		a.cur.key = a.h264Keyframe(a.cur.data)
	case "av1":
		if seq, _, ok := mkv.AV1SequenceHeader(a.cur.data); ok {
			a.av1Seq = append(a.av1Seq[:0], seq...)
		}
	}
	if a.needKey && !a.cur.key {
		return frame{}, false, true
	}
	a.needKey = false
	return a.cur, true, false
}

func (a *assembler) startsKeyframe(payload []byte) bool {
	switch a.codec {
	case "vp8":
		var vp8 codecs.VP8Packet
		data, err := vp8.Unmarshal(payload)
		return err == nil && vp8.S == 1 && vp8.PID == 0 && len(data) > 0 && data[0]&1 == 0
	case "vp9":
		var vp9 codecs.VP9Packet
		_, err := vp9.Unmarshal(payload)
		return err == nil && vp9.B && !vp9.P
	case "av1":
		// Aggregation header bit N: the first packet of a coded video sequence.
		return len(payload) > 0 && payload[0]&0x08 != 0
	}
	return false
}

func (a *assembler) appendPayload(payload []byte) {
	switch a.codec {
	case "vp8":
		var vp8 codecs.VP8Packet
		if data, err := vp8.Unmarshal(payload); err == nil {
			a.cur.data = append(a.cur.data, data...)
		} else {
			a.broken = true
		}
	case "vp9":
		var vp9 codecs.VP9Packet
		if data, err := vp9.Unmarshal(payload); err == nil {
			a.cur.data = append(a.cur.data, data...)
		} else {
			a.broken = true
		}
	case "h264":
		data, err := a.h264.Unmarshal(payload)
		if err != nil {
			a.broken = true
			a.h264 = &codecs.H264Packet{IsAVC: true}
			return
		}
		a.cur.data = append(a.cur.data, data...)
	case "av1":
		// OBUs as Matroska stores them: each with its size, no temporal
		// delimiters.
		data, err := a.av1.Unmarshal(payload)
		if err != nil {
			a.broken = true
			a.av1 = &codecs.AV1Depacketizer{}
			return
		}
		a.cur.data = append(a.cur.data, data...)
	default:
		a.cur.data = append(a.cur.data, payload...)
	}
}

// h264Keyframe walks the length-prefixed NAL units of a picture: an IDR
// slice makes it a keyframe; parameter sets are kept for the track header.
func (a *assembler) h264Keyframe(b []byte) bool {
	key := false
	for len(b) >= 4 {
		n := int(binary.BigEndian.Uint32(b))
		if n == 0 || n > len(b)-4 {
			break
		}
		nal := b[4 : 4+n]
		switch nal[0] & 0x1f {
		case 5:
			key = true
		case 7:
			a.sps = append(a.sps[:0], nal...)
		case 8:
			a.pps = append(a.pps[:0], nal...)
		}
		b = b[4+n:]
	}
	return key
}
