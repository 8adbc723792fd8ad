package sfu

import (
	"fmt"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// srtpWriter stands where Pion's sender would be: it marshals and
// encrypts each packet (AES-GCM, the profile the server prefers) into a
// reused buffer, then drops it instead of sending it.
type srtpWriter struct {
	ctx      *srtp.Context
	plain    []byte
	out      []byte
	packets  int
	lastSeq  uint16
	lastTS   uint32
	payloads int
}

func newSRTPWriter(tb testing.TB) *srtpWriter {
	ctx, err := srtp.CreateContext(make([]byte, 16), make([]byte, 12), srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		tb.Fatal(err)
	}
	return &srtpWriter{ctx: ctx, plain: make([]byte, 0, 1600), out: make([]byte, 0, 1600)}
}

func (w *srtpWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	n := h.MarshalSize()
	w.plain = w.plain[:n+len(payload)]
	if _, err := h.MarshalTo(w.plain); err != nil {
		return 0, err
	}
	copy(w.plain[n:], payload)
	out, err := w.ctx.EncryptRTP(w.out[:0], w.plain, h)
	if err != nil {
		return 0, err
	}
	w.out = out
	w.packets++
	w.lastSeq, w.lastTS = h.SequenceNumber, h.Timestamp
	w.payloads += len(payload)
	return len(out), nil
}

func (w *srtpWriter) Write(b []byte) (int, error) { return len(b), nil }

// trackContext is what Pion hands a track when it binds it.
type trackContext struct {
	codecs  []webrtc.RTPCodecParameters
	ssrc    webrtc.SSRC
	rtxSSRC webrtc.SSRC
	writer  webrtc.TrackLocalWriter
	exts    []webrtc.RTPHeaderExtensionParameter
}

func (c *trackContext) CodecParameters() []webrtc.RTPCodecParameters { return c.codecs }
func (c *trackContext) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter {
	return c.exts
}
func (c *trackContext) SSRC() webrtc.SSRC                       { return c.ssrc }
func (c *trackContext) SSRCRetransmission() webrtc.SSRC         { return c.rtxSSRC }
func (c *trackContext) SSRCForwardErrorCorrection() webrtc.SSRC { return 0 }
func (c *trackContext) WriteStream() webrtc.TrackLocalWriter    { return c.writer }
func (c *trackContext) ID() string                              { return "ctx" }
func (c *trackContext) RTCPReader() interceptor.RTCPReader      { return nil }

var vp8Codec = webrtc.RTPCodecParameters{
	RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
	PayloadType:        96,
}

// benchFanout makes an up track of VP8 with n bound down tracks; with
// twcc, each subscriber numbers its packets for congestion control.
func benchFanout(tb testing.TB, n int, twcc bool) (*UpTrack, []*srtpWriter) {
	e := testEngine()
	up := testUpTrack("up", e, vp8Codec, 1111, 0, func([]rtcp.Packet) error { return nil })
	return up, bindDowns(tb, up, n, twcc)
}

func bindDowns(tb testing.TB, up *UpTrack, n int, twcc bool) []*srtpWriter {
	writers := make([]*srtpWriter, n)
	for i := range n {
		writers[i] = newSRTPWriter(tb)
		d := NewDownTrack(up, fmt.Sprintf("d%d", i), "s")
		codec := vp8Codec
		codec.PayloadType = 100
		ctx := &trackContext{codecs: []webrtc.RTPCodecParameters{codec}, ssrc: webrtc.SSRC(5000 + i), writer: writers[i]}
		if twcc {
			ctx.codecs[0].RTCPFeedback = []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}}
			ctx.exts = []webrtc.RTPHeaderExtensionParameter{{URI: sdp.TransportCCURI, ID: 3}}
			d.bw = newBandwidth(0, 0)
			d.bw.ready.Store(true)
		}
		if _, err := d.Bind(ctx); err != nil {
			tb.Fatal(err)
		}
	}
	return writers
}

// vp8Packet is a 1100-byte VP8 RTP packet; keyframe sets the P bit to 0.
func vp8Packet(seq uint16, ts uint32, keyframe bool) []byte {
	payload := make([]byte, 1100-12)
	payload[0] = 0x10 // S=1, PID 0, no extensions
	payload[1] = 0x01 // inter frame
	if keyframe {
		payload[1] = 0x00
	}
	pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, SSRC: 1111}, Payload: payload}).Marshal()
	return pkt
}

// BenchmarkForward measures the forwarding path per forwarded packet: one
// publisher track's packet parsed, cached and rewritten for each
// subscriber, marshalled and AES-GCM encrypted. Socket writes and Pion's
// ICE and DTLS layers are not included (see docs/BENCHMARKS.md).
func BenchmarkForward(b *testing.B) {
	for _, twcc := range []bool{false, true} {
		for _, n := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("twcc=%v/subscribers=%d", twcc, n), func(b *testing.B) { benchForward(b, n, twcc) })
		}
	}
}

func benchForward(b *testing.B, n int, twcc bool) {
	up, writers := benchFanout(b, n, twcc)
	r := upReader{level: 127}
	first := vp8Packet(0, 0, true)
	up.handle(&r, first)
	pkt := vp8Packet(1, 3000, false)
	b.SetBytes(int64(len(pkt) * n))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		seq := uint16(i + 1)
		pkt[2], pkt[3] = byte(seq>>8), byte(seq)
		up.handle(&r, pkt)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/fwd-pkt")
	if writers[n-1].packets != b.N+1 {
		b.Fatalf("subscriber got %d packets, want %d", writers[n-1].packets, b.N+1)
	}
}

// BenchmarkForwardSimulcast is BenchmarkForward with the publisher sending
// three simulcast layers (the small ones at a third and an eighth of the
// large one's packets, as a camera's do) and every subscriber taking the
// large one: the cost per forwarded packet includes passing over the
// packets of the layers not taken. TWCC numbering is on.
func BenchmarkForwardSimulcast(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			up := makeUpTrack("up", testEngine(), vp8Codec, 0, []string{"l", "m", "h"}, func([]rtcp.Packet) error { return nil })
			var layers [3]*upLayer
			for i := range layers {
				layers[i], _ = up.addLayer(int8(i), "lmh"[i:i+1], uint32(1111+i), nil)
			}
			writers := bindDowns(b, up, n, true)
			var readers [3]upReader
			for i, l := range layers {
				l.handle(&readers[i], vp8Packet(0, 0, true))
			}
			pkts := [3][]byte{vp8Packet(1, 3000, false), vp8Packet(1, 3000, false), vp8Packet(1, 3000, false)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				seq := uint16(i + 1)
				for l, every := range [3]int{8, 3, 1} {
					if i%every == 0 {
						p := pkts[l]
						p[2], p[3] = byte(seq>>8), byte(seq)
						layers[l].handle(&readers[l], p)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/fwd-pkt")
			if writers[n-1].packets < b.N {
				b.Fatalf("subscriber got %d packets of %d", writers[n-1].packets, b.N)
			}
		})
	}
}
