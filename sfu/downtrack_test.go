package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// recordingWriter keeps copies of what a down track writes (as sent:
// marshalled, its header's slices are reused).
type recordingWriter struct{ packets []rtp.Packet }

func (w *recordingWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	raw, err := (&rtp.Packet{Header: *h, Payload: payload}).Marshal()
	if err != nil {
		return 0, err
	}
	var p rtp.Packet
	if err := p.Unmarshal(raw); err != nil {
		return 0, err
	}
	w.packets = append(w.packets, p)
	return len(raw), nil
}

func (w *recordingWriter) Write(b []byte) (int, error) { return len(b), nil }

// A NACKed packet is resent from the cache: on the RTX stream (RFC 4588:
// original sequence number first, then the payload) when RTX was
// negotiated, else as it was first sent.
func TestDownTrackRetransmit(t *testing.T) {
	rtxCodec := webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=100"},
		PayloadType:        101,
	}
	for _, withRTX := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "rtx"}[withRTX], func(t *testing.T) {
			up := testUpTrack("up", testEngine(), vp8Codec, 1111, 0, func([]rtcp.Packet) error { return nil })
			d := NewDownTrack(up, "d", "s")
			codec := vp8Codec
			codec.PayloadType = 100
			ctx := &trackContext{codecs: []webrtc.RTPCodecParameters{codec}, ssrc: 5000}
			if withRTX {
				ctx.codecs = append(ctx.codecs, rtxCodec)
				ctx.rtxSSRC = 6000
			}
			w := &recordingWriter{}
			ctx.writer = w
			if _, err := d.Bind(ctx); err != nil {
				t.Fatal(err)
			}
			r := upReader{level: 127}
			for i := range uint16(5) {
				up.handle(&r, vp8Packet(40000+i, 9000+uint32(i)*3000, i == 0))
			}
			if len(w.packets) != 5 {
				t.Fatalf("forwarded %d packets, want 5", len(w.packets))
			}
			orig := w.packets[2]
			if !d.retransmit(orig.SequenceNumber) {
				t.Fatal("retransmit failed")
			}
			if d.retransmit(orig.SequenceNumber + 100) {
				t.Error("retransmitted a packet that was never sent")
			}
			re := w.packets[5]
			if !withRTX {
				if re.SSRC != 5000 || re.PayloadType != 100 || re.SequenceNumber != orig.SequenceNumber || re.Timestamp != orig.Timestamp || string(re.Payload) != string(orig.Payload) {
					t.Errorf("plain retransmission %+v differs from the original %+v", re.Header, orig.Header)
				}
				return
			}
			if re.SSRC != 6000 || re.PayloadType != 101 || re.Timestamp != orig.Timestamp {
				t.Errorf("RTX header %+v: want SSRC 6000, PT 101, timestamp %d", re.Header, orig.Timestamp)
			}
			if osn := uint16(re.Payload[0])<<8 | uint16(re.Payload[1]); osn != orig.SequenceNumber {
				t.Errorf("RTX original sequence number %d, want %d", osn, orig.SequenceNumber)
			}
			if string(re.Payload[2:]) != string(orig.Payload) {
				t.Error("RTX payload differs from the original payload")
			}
			d.retransmit(orig.SequenceNumber)
			if next := w.packets[6]; next.SequenceNumber != re.SequenceNumber+1 {
				t.Errorf("RTX sequence numbers %d then %d, want consecutive", re.SequenceNumber, next.SequenceNumber)
			}
		})
	}
}

// A NACK is answered once per packet per resendInterval, and at most
// maxResendsPerNack packets per NACK.
func TestDownTrackNackLimits(t *testing.T) {
	up := testUpTrack("up", testEngine(), vp8Codec, 1111, 0, func([]rtcp.Packet) error { return nil })
	d := NewDownTrack(up, "d", "s")
	w := &recordingWriter{}
	codec := vp8Codec
	codec.PayloadType = 100
	if _, err := d.Bind(&trackContext{codecs: []webrtc.RTPCodecParameters{codec}, ssrc: 5000, writer: w}); err != nil {
		t.Fatal(err)
	}
	r := upReader{level: 127}
	for i := range uint16(200) {
		up.handle(&r, vp8Packet(1000+i, uint32(i)*3000, i == 0))
	}
	sent := len(w.packets)
	resends := func(f func()) int { before := len(w.packets); f(); return len(w.packets) - before }
	now := time.Now()
	nack := func(pairs ...rtcp.NackPair) *rtcp.TransportLayerNack {
		return &rtcp.TransportLayerNack{MediaSSRC: 5000, Nacks: pairs}
	}

	// The same packet three times in one NACK: one resend.
	if n := resends(func() {
		d.answerNack(nack(rtcp.NackPair{PacketID: 1010}, rtcp.NackPair{PacketID: 1010}, rtcp.NackPair{PacketID: 1009, LostPackets: 1}), now)
	}); n != 2 {
		t.Errorf("1010 three times and 1009 once: %d resends, want 2", n)
	}
	// Again within resendInterval: nothing; after it: resent.
	if n := resends(func() { d.answerNack(nack(rtcp.NackPair{PacketID: 1010}), now.Add(resendInterval/2)) }); n != 0 {
		t.Errorf("resent again within %v", resendInterval)
	}
	if n := resends(func() { d.answerNack(nack(rtcp.NackPair{PacketID: 1010}), now.Add(resendInterval)) }); n != 1 {
		t.Errorf("not resent after %v", resendInterval)
	}
	// 10 pairs of 17 packets: capped.
	var pairs []rtcp.NackPair
	for i := range uint16(10) {
		pairs = append(pairs, rtcp.NackPair{PacketID: 1020 + i*17, LostPackets: 0xffff})
	}
	if n := resends(func() { d.answerNack(nack(pairs...), now) }); n != maxResendsPerNack {
		t.Errorf("170 packets asked for: %d resends, want %d", n, maxResendsPerNack)
	}
	if sent != 200 {
		t.Errorf("forwarded %d, want 200", sent)
	}
}

// recordPLIs is a publisher's RTCP writer that notes the SSRC of each PLI.
func recordPLIs(plis *[]uint32) func([]rtcp.Packet) error {
	return func(pkts []rtcp.Packet) error {
		for _, p := range pkts {
			if pli, ok := p.(*rtcp.PictureLossIndication); ok {
				*plis = append(*plis, pli.MediaSSRC)
			}
		}
		return nil
	}
}

// Keyframe requests from any number of subscribers reach the publisher at
// most once per keyframeInterval, as a PLI for its SSRC; audio never asks.
func TestKeyframeRequestsThrottled(t *testing.T) {
	var plis []uint32
	up := testUpTrack("up", testEngine(), vp8Codec, 1111, 0, recordPLIs(&plis))
	for range 10 {
		up.requestKeyframe(0)
	}
	if len(plis) != 1 || plis[0] != 1111 {
		t.Fatalf("10 requests at once sent %v, want one PLI for SSRC 1111", plis)
	}
	up.layer(0).lastKeyframeReq.Store(time.Now().Add(-keyframeInterval).UnixNano())
	up.lastKeyframeReq.Store(time.Now().Add(-keyframeInterval).UnixNano())
	up.requestKeyframe(0)
	if len(plis) != 2 {
		t.Errorf("a request after %v sent no PLI", keyframeInterval)
	}
	opus := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}
	audio := testUpTrack("a", testEngine(), opus, 2222, 0, func([]rtcp.Packet) error { t.Error("audio asked for a keyframe"); return nil })
	audio.requestKeyframe(0)
}

// A publisher's encoder ignores a request for any layer sent within
// 300 ms of one for another (and answers that one with keyframes of
// every layer): a request for another layer waits publisherKeyframeGap,
// then goes.
func TestKeyframeRequestsForAnotherLayerWait(t *testing.T) {
	var plis []uint32
	up := testUpTrack("up", testEngine(), vp8Codec, 1111, 0, recordPLIs(&plis))
	up.addLayer(1, "m", 2222, nil)
	up.requestKeyframe(0)
	up.requestKeyframe(1)
	if len(plis) != 1 || plis[0] != 1111 {
		t.Fatalf("requests for layers 0 and 1 at once sent %v, want one PLI for SSRC 1111", plis)
	}
	up.lastKeyframeReq.Store(time.Now().Add(-publisherKeyframeGap).UnixNano())
	up.requestKeyframe(0) // its own interval is not over
	up.requestKeyframe(1)
	if len(plis) != 2 || plis[1] != 2222 {
		t.Errorf("after %v: PLIs %v, want one more for SSRC 2222", publisherKeyframeGap, plis)
	}
}

// Without RTX a resend goes under the packet's first SRTP index, so it
// must be the very bytes first sent, transport-wide number included (one
// index sealed twice with different headers gives away AES-GCM's
// authentication key); a packet whose number is no longer known is not
// resent.
func TestDownTrackResendIsTheSameBytes(t *testing.T) {
	up := testUpTrack("up", testEngine(), vp8Codec, 1111, 0, func([]rtcp.Packet) error { return nil })
	d := NewDownTrack(up, "d", "s")
	codec := vp8Codec
	codec.PayloadType = 100
	codec.RTCPFeedback = []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}}
	w := &recordingWriter{}
	ctx := &trackContext{codecs: []webrtc.RTPCodecParameters{codec}, ssrc: 5000, writer: w,
		exts: []webrtc.RTPHeaderExtensionParameter{{URI: sdp.TransportCCURI, ID: 3}}}
	d.bw = newBandwidth(0, 0)
	d.bw.ready.Store(true)
	if _, err := d.Bind(ctx); err != nil {
		t.Fatal(err)
	}
	r := upReader{level: 127}
	n := uint16(twccRing + 10)
	for i := range n {
		up.handle(&r, vp8Packet(40000+i, 9000+uint32(i/4)*3000, i == 0))
	}
	if len(w.packets) != int(n) {
		t.Fatalf("forwarded %d packets, want %d", len(w.packets), n)
	}
	marshal := func(p rtp.Packet) string {
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	orig := w.packets[n-3]
	if !d.retransmit(orig.SequenceNumber) {
		t.Fatal("retransmit failed")
	}
	if re := w.packets[n]; marshal(re) != marshal(orig) {
		t.Errorf("resent %+v, first sent %+v", re.Header, orig.Header)
	}
	if d.retransmit(w.packets[5].SequenceNumber) {
		t.Error("resent a packet whose transport-wide number is forgotten")
	}
}
