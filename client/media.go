package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// SampleSource yields media samples (encoded frames) in order.
type SampleSource interface {
	Next() (media.Sample, error)
}

// Play writes samples to track in real time until the source ends
// (io.EOF gives nil) or ctx is done.
func Play(ctx context.Context, track *webrtc.TrackLocalStaticSample, src SampleSource) error {
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		s, err := src.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := track.WriteSample(s); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			return err
		}
		next = next.Add(s.Duration)
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
	}
}

// syntheticVP8 makes frames that parse as VP8 (a keyframe every keyEvery
// frames) without being decodable pictures: enough to exercise forwarding.
type syntheticVP8 struct {
	n, size, keyEvery int
	width, height     int // said by keyframes; 0: not said
	frame             time.Duration
	forceKey          atomic.Bool
}

// SyntheticVP8 is a VP8-shaped source at fps frames of size bytes, with a
// keyframe every keyEvery frames and on request.
func SyntheticVP8(fps, size, keyEvery int) *SyntheticVideo {
	return &SyntheticVideo{&syntheticVP8{size: size, keyEvery: keyEvery, frame: time.Second / time.Duration(fps)}}
}

// SyntheticVideo is a synthetic video source.
type SyntheticVideo struct{ *syntheticVP8 }

// WithSize has the keyframes say a picture size, as an encoder's do (a
// server reads it to match layers to what subscribers show). Call it
// before playing; frames must be at least 10 bytes.
func (v *SyntheticVideo) WithSize(width, height int) *SyntheticVideo {
	v.width, v.height = width, height
	return v
}

// RequestKeyframe makes the next frame a keyframe; use it as a
// LocalTrack's OnKeyframeRequest.
func (v *SyntheticVideo) RequestKeyframe() { v.forceKey.Store(true) }

func (s *syntheticVP8) Next() (media.Sample, error) {
	data := make([]byte, s.size)
	for i := range data {
		data[i] = byte(s.n + i)
	}
	// Frame tag: bit 0 is the inverse keyframe flag (RFC 6386 section 9.1).
	data[0] = 0x11
	if s.n%s.keyEvery == 0 || s.forceKey.Swap(false) {
		data[0] = 0x10
		if s.width > 0 && s.size >= 10 {
			// The keyframe start code and the 14-bit sizes (section 9.1).
			copy(data[3:], []byte{0x9d, 0x01, 0x2a, byte(s.width), byte(s.width >> 8 & 0x3f), byte(s.height), byte(s.height >> 8 & 0x3f)})
		}
	}
	s.n++
	return media.Sample{Data: data, Duration: s.frame}, nil
}

// syntheticOpus makes 20 ms Opus packets of silence-like bytes.
type syntheticOpus struct{}

// SyntheticOpus is an Opus-shaped source of 20 ms frames.
func SyntheticOpus() SampleSource { return syntheticOpus{} }

func (syntheticOpus) Next() (media.Sample, error) {
	// TOC 0x78: config 15 (hybrid, fullband, 20 ms), mono, one frame.
	data := make([]byte, 40)
	data[0] = 0x78
	return media.Sample{Data: data, Duration: 20 * time.Millisecond}, nil
}

// ivfSource reads VP8/VP9/AV1 frames from an IVF file.
type ivfSource struct {
	f     *os.File
	r     *ivfreader.IVFReader
	frame time.Duration
}

// IVFFile opens an IVF file; mime is the codec of its frames.
func IVFFile(path string) (src SampleSource, mime string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	r, h, err := ivfreader.NewWith(f)
	if err != nil {
		f.Close()
		return nil, "", fmt.Errorf("client: %s: %w", path, err)
	}
	switch string(h.FourCC[:]) {
	case "VP80":
		mime = webrtc.MimeTypeVP8
	case "VP90":
		mime = webrtc.MimeTypeVP9
	case "AV01":
		mime = webrtc.MimeTypeAV1
	default:
		f.Close()
		return nil, "", fmt.Errorf("client: %s: unknown IVF codec %q", path, h.FourCC)
	}
	frame := time.Second * time.Duration(h.TimebaseNumerator) / time.Duration(h.TimebaseDenominator)
	return &ivfSource{f: f, r: r, frame: frame}, mime, nil
}

func (s *ivfSource) Next() (media.Sample, error) {
	frame, _, err := s.r.ParseNextFrame()
	if err != nil {
		s.f.Close()
		return media.Sample{}, err
	}
	return media.Sample{Data: frame, Duration: s.frame}, nil
}

// oggSource reads Opus packets from an Ogg file, one page at a time.
type oggSource struct {
	f       *os.File
	r       *oggreader.OggReader
	lastPos uint64
}

// OggOpusFile opens an Ogg Opus file.
func OggOpusFile(path string) (SampleSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, _, err := oggreader.NewWith(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("client: %s: %w", path, err)
	}
	return &oggSource{f: f, r: r}, nil
}

func (s *oggSource) Next() (media.Sample, error) {
	for {
		page, h, err := s.r.ParseNextPage()
		if err != nil {
			s.f.Close()
			return media.Sample{}, err
		}
		if h.GranulePosition <= s.lastPos { // header pages
			continue
		}
		samples := h.GranulePosition - s.lastPos
		s.lastPos = h.GranulePosition
		return media.Sample{Data: page, Duration: time.Duration(samples) * time.Second / 48000}, nil
	}
}

// h264Source reads an H.264 Annex B stream and yields one access unit (the
// parameter sets and slices of a picture) per sample.
type h264Source struct {
	f     *os.File
	r     *h264reader.H264Reader
	frame time.Duration
	held  []byte // NAL units read ahead of the picture they belong to
}

// H264File opens an H.264 Annex B file (one slice per picture, as libx264
// writes by default) to play at fps pictures a second.
func H264File(path string, fps int) (SampleSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := h264reader.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("client: %s: %w", path, err)
	}
	return &h264Source{f: f, r: r, frame: time.Second / time.Duration(fps)}, nil
}

func (s *h264Source) Next() (media.Sample, error) {
	for {
		nal, err := s.r.NextNAL()
		if err != nil {
			s.f.Close()
			return media.Sample{}, err
		}
		s.held = append(s.held, 0, 0, 0, 1)
		s.held = append(s.held, nal.Data...)
		if t := nal.UnitType; t == h264reader.NalUnitTypeCodedSliceNonIdr || t == h264reader.NalUnitTypeCodedSliceIdr {
			au := s.held
			s.held = nil
			return media.Sample{Data: au, Duration: s.frame}, nil
		}
	}
}

// rawSource cuts a file of fixed-size frames, such as G.711.
type rawSource struct {
	data  []byte
	size  int
	frame time.Duration
}

// RawFrames plays a file as frames of size bytes lasting frame each: 160
// bytes of G.711 (PCMA or PCMU at 8 kHz) are 20 ms.
func RawFrames(path string, size int, frame time.Duration) (SampleSource, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return &rawSource{data: data, size: size, frame: frame}, nil
}

func (s *rawSource) Next() (media.Sample, error) {
	if len(s.data) < s.size {
		return media.Sample{}, io.EOF
	}
	d := s.data[:s.size]
	s.data = s.data[s.size:]
	return media.Sample{Data: d, Duration: s.frame}, nil
}
