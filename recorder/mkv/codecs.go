package mkv

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/vclass/vclass/internal/obu"
)

// OpusTrack is an Opus track as WebRTC sends it (48 kHz).
func OpusTrack(name string, channels int) Track {
	const preSkip = 312 // what libopus encoders put before the first sample
	head := []byte("OpusHead")
	head = append(head, 1, byte(channels))
	head = binary.LittleEndian.AppendUint16(head, preSkip)
	head = binary.LittleEndian.AppendUint32(head, 48000)
	head = append(head, 0, 0, 0) // output gain, mapping family 0
	return Track{
		Type: Audio, Name: name, CodecID: "A_OPUS", CodecPrivate: head,
		CodecDelay:  time.Duration(preSkip) * time.Second / 48000,
		SeekPreRoll: 80 * time.Millisecond,
		SampleRate:  48000, Channels: channels,
	}
}

// G711Track is a PCMA (alaw) or PCMU (mulaw) track: Matroska has no ID of
// its own for them, so they go as a WAVEFORMATEX, as ffmpeg writes them.
func G711Track(name string, alaw bool, rate, channels int) Track {
	tag := uint16(7) // WAVE_FORMAT_MULAW
	if alaw {
		tag = 6 // WAVE_FORMAT_ALAW
	}
	var wf []byte
	wf = binary.LittleEndian.AppendUint16(wf, tag)
	wf = binary.LittleEndian.AppendUint16(wf, uint16(channels))
	wf = binary.LittleEndian.AppendUint32(wf, uint32(rate))
	wf = binary.LittleEndian.AppendUint32(wf, uint32(rate*channels))
	wf = binary.LittleEndian.AppendUint16(wf, uint16(channels))
	wf = binary.LittleEndian.AppendUint16(wf, 8)
	wf = binary.LittleEndian.AppendUint16(wf, 0)
	return Track{Type: Audio, Name: name, CodecID: "A_MS/ACM", CodecPrivate: wf, SampleRate: float64(rate), Channels: channels, BitDepth: 8}
}

// AVCConfig is the AVCDecoderConfigurationRecord (ISO 14496-15) of an SPS
// and a PPS: the CodecPrivate of a V_MPEG4/ISO/AVC track.
func AVCConfig(sps, pps []byte) ([]byte, error) {
	if len(sps) < 4 || len(pps) < 1 {
		return nil, errors.New("mkv: short SPS or PPS")
	}
	b := []byte{1, sps[1], sps[2], sps[3], 0xff, 0xe1}
	b = binary.BigEndian.AppendUint16(b, uint16(len(sps)))
	b = append(b, sps...)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pps)))
	return append(b, pps...), nil
}

// AV1SequenceHeader finds the sequence header OBU in a temporal unit in
// the low overhead bitstream format (every OBU with its size, as Matroska
// stores AV1): the whole OBU, and its payload.
func AV1SequenceHeader(tu []byte) (seqOBU, payload []byte, ok bool) {
	for len(tu) > 0 {
		hdr := 1
		if tu[0]&0x04 != 0 { // extension header
			hdr++
		}
		if tu[0]&0x02 == 0 || len(tu) < hdr { // no size field: not this format
			return nil, nil, false
		}
		size, n := obu.LEB128(tu[hdr:])
		if n == 0 || uint64(len(tu)-hdr-n) < size {
			return nil, nil, false
		}
		end := hdr + n + int(size)
		if tu[0]>>3&0x0f == 1 { // OBU_SEQUENCE_HEADER
			return tu[:end], tu[hdr+n : end], true
		}
		tu = tu[end:]
	}
	return nil, nil, false
}

// AV1Config is the AV1CodecConfigurationRecord (the av1C box of the AV1
// ISOBMFF binding) of a sequence header OBU: the CodecPrivate of a V_AV1
// track. Profile, level and tier are read from the header; the colour
// fields say 8-bit 4:2:0 for the main profile (what WebRTC encoders
// send), 4:4:4 for the high profile; decoders take the exact values from
// the sequence header it carries.
func AV1Config(seqOBU, payload []byte) ([]byte, error) {
	if len(payload) < 1 {
		return nil, errors.New("mkv: empty AV1 sequence header")
	}
	profile := payload[0] >> 5
	var level, tier byte
	b := payload[0]
	switch {
	case b&0x08 != 0: // reduced_still_picture_header: the level follows
		if len(payload) < 2 {
			return nil, errors.New("mkv: short AV1 sequence header")
		}
		level = (b&0x07)<<2 | payload[1]>>6
	case b&0x04 == 0 && len(payload) >= 4: // no timing info: the first operating point's level
		// bits: initial_display_delay_present (1), operating_points_cnt_minus_1 (5),
		// operating_point_idc[0] (12), seq_level_idx[0] (5), seq_tier[0] (1 if level > 7)
		bits := uint32(payload[0])<<24 | uint32(payload[1])<<16 | uint32(payload[2])<<8 | uint32(payload[3])
		level = byte(bits >> (32 - 6 - 18 - 5) & 0x1f)
		if level > 7 {
			tier = byte(bits >> (32 - 6 - 18 - 5 - 1) & 1)
		}
	default:
		level = 31 // not read (timing info first): "maximum parameters"
	}
	colour := byte(0x0c) // 8-bit, 4:2:0 (subsampling x and y)
	if profile == 1 {
		colour = 0x00 // 4:4:4
	}
	out := []byte{0x81, profile<<5 | level, tier<<7 | colour, 0}
	return append(out, seqOBU...), nil
}
