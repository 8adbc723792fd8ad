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
	// VP9: where each frame of the current picture begins (a scalable
	// stream's picture has one per spatial layer), and the largest
	// layer's size from the latest scalability structure.
	vp9Starts        []int
	vp9SIDs          []uint8 // the spatial layer of each
	vp9Top           uint8   // the largest layer kept since the last key picture
	vp9Intra         bool    // the current picture's first frame is not inter-picture predicted
	vp9KeyTS         uint32  // the RTP time of the last key picture written
	vp9Width, vp9Hgt int
	lostHeld         bool   // a loss noted on a padding packet, for the next one
	slab             []byte // audio frames' bytes, copied out of their packets
}

// slabSize is how much audio a slab holds before the next is made (the
// frames keep theirs alive until written): 64 KiB, 10 s of Opus at 50 kbit/s.
const slabSize = 64 << 10

// keep copies b into the slab: one allocation for many small frames
// rather than one each.
func (a *assembler) keep(b []byte) []byte {
	if len(a.slab)+len(b) > cap(a.slab) {
		a.slab = make([]byte, 0, max(slabSize, len(b)))
	}
	start := len(a.slab)
	a.slab = append(a.slab, b...)
	return a.slab[start:len(a.slab):len(a.slab)]
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
		return frame{rtpTS: p.pkt.Timestamp, arrival: p.arrival, key: true, data: a.keep(p.pkt.Payload)}, true, false
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
		a.vp9Starts, a.vp9SIDs = a.vp9Starts[:0], a.vp9SIDs[:0]
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
	case "vp9":
		rest := false
		if n := len(a.vp9SIDs); n > 0 {
			// The largest layer kept changes only at a key picture: a
			// layer's frames refer to that layer's frames before, which
			// are not in the file if another layer was kept (the server
			// moved to a smaller layer between key pictures).
			top := a.vp9SIDs[n-1]
			switch {
			case a.cur.key:
				a.vp9Top, a.vp9KeyTS = top, a.cur.rtpTS
			case !a.needKey && a.vp9Intra && a.cur.rtpTS == a.vp9KeyTS && a.vp9SIDs[0] == a.vp9Top+1:
				// The key picture's larger layers, after the marker the
				// server put on the largest it sent then (it moved up
				// within the picture): predicted from the layers written.
				rest = true
				a.vp9Top = top
			case top != a.vp9Top:
				a.needKey = true
			}
		}
		if len(a.vp9Starts) > 1 {
			a.cur.data = a.vp9Picture(a.cur.data, a.cur.key || rest)
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
		// The base layer's first frame, a keyframe by its own header: a
		// larger layer's frame of a key picture (not inter-picture
		// predicted either) refers to the layers below it.
		var vp9 codecs.VP9Packet
		data, err := vp9.Unmarshal(payload)
		a.vp9Intra = err == nil && !vp9.P
		return a.vp9Intra && vp9.B && vp9.SID == 0 && vp9Keyframe(data)
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
		data, err := vp9.Unmarshal(payload)
		if err != nil {
			a.broken = true
			return
		}
		if vp9.B {
			a.vp9Starts = append(a.vp9Starts, len(a.cur.data))
			a.vp9SIDs = append(a.vp9SIDs, vp9.SID)
		}
		if vp9.V && len(vp9.Width) > 0 && len(vp9.Width) == len(vp9.Height) {
			a.vp9Width, a.vp9Hgt = int(vp9.Width[len(vp9.Width)-1]), int(vp9.Height[len(vp9.Height)-1])
		}
		a.cur.data = append(a.cur.data, data...)
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

// vp9Picture keeps the largest layer of a scalable VP9 picture (k-SVC, as
// browsers send it: spatial layers refer to the layers below only in key
// pictures). A picture that is not a key picture needs only its largest
// layer's frame; a key picture needs every layer's, which go in one block
// as a superframe, the keyframe at its base made not to be shown (a
// decoder would show each layer's frame of the picture).
func (a *assembler) vp9Picture(data []byte, key bool) []byte {
	starts := a.vp9Starts
	if !key {
		top := starts[len(starts)-1]
		return append(data[:0], data[top:]...)
	}
	hideKeyframe(data[:starts[1]])
	return appendSuperframeIndex(data, starts)
}

// vp9Keyframe reads frame_type in a VP9 frame's uncompressed header
// (VP9 bitstream specification 6.2).
func vp9Keyframe(frame []byte) bool {
	if len(frame) == 0 || frame[0]>>6 != 2 {
		return false
	}
	bit := 4 // show_existing_frame, profiles 0-2
	if frame[0]>>4&3 == 3 {
		bit = 5 // profile 3 has a reserved bit first
	}
	showExisting, keyframe := frame[0]>>(7-bit)&1 == 1, frame[0]>>(6-bit)&1 == 0
	return !showExisting && keyframe
}

// hideKeyframe clears show_frame in a VP9 keyframe's uncompressed header
// (VP9 bitstream specification 6.2: after the frame marker, the profile
// bits, show_existing_frame and frame_type). Only a keyframe: another
// frame's header reads one more bit when it is not shown.
func hideKeyframe(frame []byte) {
	if !vp9Keyframe(frame) {
		return
	}
	bit := 4 // show_existing_frame, profiles 0-2
	if frame[0]>>4&3 == 3 {
		bit = 5
	}
	frame[0] &^= 1 << (5 - bit) // show_frame, after frame_type
}

// appendSuperframeIndex ends the frames of a VP9 picture, beginning at
// starts, with the superframe index (VP9 bitstream specification, annex
// B): a marker byte, each frame's size in 4 little-endian bytes, the
// marker again.
func appendSuperframeIndex(data []byte, starts []int) []byte {
	if len(starts) > 8 || starts[0] != 0 {
		return data // not a picture of frames we can index
	}
	marker := byte(0xc0 | 3<<3 | (len(starts) - 1)) // 4 bytes per size
	end := len(data)
	data = append(data, marker)
	for i, start := range starts {
		next := end
		if i+1 < len(starts) {
			next = starts[i+1]
		}
		data = binary.LittleEndian.AppendUint32(data, uint32(next-start))
	}
	return append(data, marker)
}
