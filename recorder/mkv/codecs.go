package mkv

import (
	"encoding/binary"
	"errors"
	"time"
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
