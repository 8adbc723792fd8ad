package sfu

import (
	"math"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// rtcpFuzzSent is how many packets FuzzSubscriberRTCP's down track sends
// before its subscriber's RTCP comes.
const rtcpFuzzSent = 40

// FuzzSubscriberRTCP: whatever RTCP a subscriber sends (NACKs, PLIs,
// FIRs, REMBs, transport-wide feedback, reports), acted on as the server
// does, no panic, and:
//   - a resend is the packet first sent under that number, byte for
//     byte, and a NACK packet has at most maxResendsPerNack resends;
//   - each PLI or FIR entry naming the track is one keyframe request;
//   - the estimate stays within its bounds, and a REMB alone sets it to
//     the receiver's rate within them;
//   - a feedback's results are at most the packets it reports and the
//     packets remembered.
func FuzzSubscriberRTCP(f *testing.F) {
	for _, pkts := range [][]rtcp.Packet{
		{&rtcp.TransportLayerNack{MediaSSRC: 5000, Nacks: []rtcp.NackPair{{PacketID: 40010, LostPackets: 0xffff}}}},
		{&rtcp.PictureLossIndication{MediaSSRC: 5000}, &rtcp.FullIntraRequest{FIR: []rtcp.FIREntry{{SSRC: 5000}, {SSRC: 7}}}},
		{&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: 1.5e6, SSRCs: []uint32{5000}}},
		{&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 5000, FractionLost: 20, LastSequenceNumber: 40039}}}},
		{&rtcp.TransportLayerCC{MediaSSRC: 5000, BaseSequenceNumber: 0, PacketStatusCount: 3, ReferenceTime: 1,
			PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketReceivedSmallDelta, RunLength: 3}},
			RecvDeltas:   []*rtcp.RecvDelta{{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 1000}, {Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 2000}, {Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 250}}}},
	} {
		b, err := rtcp.Marshal(pkts)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x8f, 0xce, 0x00, 0x05, 0, 0, 0, 1, 0, 0, 0, 0, 'R', 'E', 'M', 'B', 0x01, 0xff, 0xff, 0xff, 0, 0, 0x13, 0x88}) // the largest REMB
	f.Fuzz(func(t *testing.T, raw []byte) {
		pkts, err := rtcp.Unmarshal(raw)
		if err != nil {
			return
		}
		d, w := rtcpFuzzTrack(t)
		now := time.Unix(1_700_000_000, 0)
		plis, nacks, twcc := 0, 0, false
		var remb *rtcp.ReceiverEstimatedMaximumBitrate
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication:
				plis += boolInt(p.MediaSSRC == 5000)
			case *rtcp.FullIntraRequest:
				for _, e := range p.FIR {
					plis += boolInt(e.SSRC == 5000)
				}
			case *rtcp.TransportLayerNack:
				nacks += boolInt(p.MediaSSRC == 5000)
			case *rtcp.TransportLayerCC:
				twcc = true
				results := d.bw.history.feedbackResults(p, nil)
				if len(results) > int(p.PacketStatusCount) || len(results) > historySize {
					t.Fatalf("%d results of a feedback of %d packets", len(results), p.PacketStatusCount)
				}
			case *rtcp.ReceiverEstimatedMaximumBitrate:
				remb = p
			}
		}
		actOnRTCP(pkts, now, d.bw, func(ssrc uint32) *DownTrack {
			if ssrc == 5000 {
				return d
			}
			return nil
		})
		if got := int(d.stats.PLIsIn.Load()); got != plis {
			t.Fatalf("%d keyframe requests, %d asked", got, plis)
		}
		resent := w.packets[rtcpFuzzSent:]
		if len(resent) > nacks*maxResendsPerNack {
			t.Fatalf("%d packets resent for %d NACKs", len(resent), nacks)
		}
		for _, re := range resent {
			i := int(re.SequenceNumber - w.packets[0].SequenceNumber)
			if i >= rtcpFuzzSent {
				t.Fatalf("resent %d, which was never sent", re.SequenceNumber)
			}
			if orig := w.packets[i]; marshalRTP(t, re) != marshalRTP(t, orig) {
				t.Fatalf("resent %+v, first sent %+v", re.Header, orig.Header)
			}
		}
		est, bw := d.bw.est.Estimate(), d.bw.est
		if float64(est) < bw.min || float64(est) > bw.max {
			t.Fatalf("estimate %d outside %v..%v", est, bw.min, bw.max)
		}
		if remb != nil && !twcc {
			if want := math.Max(bw.min, math.Min(float64(remb.Bitrate), bw.max)); math.Abs(float64(est)-want) > 1 {
				t.Fatalf("REMB of %v bps: estimate %d, want %v", remb.Bitrate, est, want)
			}
		}
	})
}

// rtcpFuzzTrack is a VP8 down track (SSRC 5000, transport-wide numbers,
// no RTX) that has sent rtcpFuzzSent packets, 40000 on.
func rtcpFuzzTrack(t *testing.T) (*DownTrack, *recordingWriter) {
	up := testUpTrack("up", testEngine(), vp8Codec, 1111, 0, func([]rtcp.Packet) error { return nil })
	d := NewDownTrack(up, "d", "s")
	codec := vp8Codec
	codec.PayloadType = 100
	codec.RTCPFeedback = []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}}
	w := &recordingWriter{}
	d.bw = newBandwidth(0, 0)
	d.bw.ready.Store(true)
	ctx := &trackContext{codecs: []webrtc.RTPCodecParameters{codec}, ssrc: 5000, writer: w,
		exts: []webrtc.RTPHeaderExtensionParameter{{URI: sdp.TransportCCURI, ID: 3}}}
	if _, err := d.Bind(ctx); err != nil {
		t.Fatal(err)
	}
	r := upReader{level: 127}
	for i := range uint16(rtcpFuzzSent) {
		up.handle(&r, vp8Packet(40000+i, 9000+uint32(i/4)*3000, i == 0))
	}
	if len(w.packets) != rtcpFuzzSent {
		t.Fatalf("sent %d packets, want %d", len(w.packets), rtcpFuzzSent)
	}
	return d, w
}

func marshalRTP(t *testing.T, p rtp.Packet) string {
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
