package sfu

import (
	"fmt"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// A subscriber's sender report carries the publisher's clock, moved on by
// the time since the publisher's report, in the subscriber's numbering:
// after a pause the forwarder shifts timestamps, and the report follows.
func TestSenderReportCarriesPublisherClock(t *testing.T) {
	up := testUpTrack("up", testEngine(), vp8Codec, 1111, 0, func([]rtcp.Packet) error { return nil })
	d := NewDownTrack(up, "d", "s")
	codec := vp8Codec
	codec.PayloadType = 100
	ctx := &trackContext{codecs: []webrtc.RTPCodecParameters{codec}, ssrc: 5000, writer: &recordingWriter{}}
	if _, err := d.Bind(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if _, ok := d.senderReport(t0); ok {
		t.Fatal("a report before the publisher's")
	}
	up.noteSenderReport(&rtcp.SenderReport{SSRC: 9999, NTPTime: 1 << 32, RTPTime: 5}, t0) // another stream
	if _, ok := d.senderReport(t0); ok {
		t.Fatal("a report from another stream's clock")
	}
	const ntp0 = uint64(3_900_000_000) << 32
	up.noteSenderReport(&rtcp.SenderReport{SSRC: 1111, NTPTime: ntp0, RTPTime: 90000}, t0)
	if _, ok := d.senderReport(t0); ok {
		t.Fatal("a report before anything was sent")
	}
	r := upReader{level: 127}
	up.handle(&r, vp8Packet(100, 90000, true))
	up.handle(&r, vp8Packet(101, 93000, false))

	sr, ok := d.senderReport(t0.Add(1500 * time.Millisecond))
	if !ok {
		t.Fatal("no report")
	}
	if sr.SSRC != 5000 || sr.PacketCount != 2 {
		t.Errorf("ssrc %d packets %d, want 5000 and 2", sr.SSRC, sr.PacketCount)
	}
	if want := ntp0 + 3<<31; sr.NTPTime != want {
		t.Errorf("ntp %x, want %x", sr.NTPTime, want)
	}
	if want := uint32(90000 + 135000); sr.RTPTime != want {
		t.Errorf("rtp %d, want %d", sr.RTPTime, want)
	}

	// Pause, resume 2 s later (by arrival) on a keyframe captured 10 s
	// later: the publisher's clock is known, so the numbering follows it
	// (no shift), and the report stays the same.
	d.Pause()
	d.Resume()
	d.mu.Lock()
	d.fwd.lastOutTime = t0
	d.mu.Unlock()
	up.handle(&r, vp8Packet(300, 90000+900000, true))
	d.mu.Lock()
	shift := d.fwd.tsOffset
	d.mu.Unlock()
	if shift != 0 {
		t.Errorf("the forwarder shifted timestamps by %d though the publisher's clock is known", shift)
	}
	if again, _ := d.senderReport(t0.Add(1500 * time.Millisecond)); again.RTPTime != sr.RTPTime {
		t.Errorf("after resume rtp %d, want %d", again.RTPTime, sr.RTPTime)
	}
}

// A switch between simulcast layers, whose RTP clocks are unrelated, keeps
// the subscriber's timestamps on the publisher's capture clock (placed by
// each layer's sender reports), and the subscriber's report follows.
func TestLayerSwitchKeepsCaptureClock(t *testing.T) {
	up := makeUpTrack("up", testEngine(), vp8Codec, 0, []string{"l", "h"}, func([]rtcp.Packet) error { return nil })
	low, _ := up.addLayer(0, "l", 1111, nil)
	high, _ := up.addLayer(1, "h", 2222, nil)
	d := NewDownTrack(up, "d", "s")
	codec := vp8Codec
	codec.PayloadType = 100
	w := &recordingWriter{}
	if _, err := d.Bind(&trackContext{codecs: []webrtc.RTPCodecParameters{codec}, ssrc: 5000, writer: w}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	const ntp0 = uint64(3_900_000_000) << 32
	// The same instant: 90000 on the low layer's clock, 7_000_000 on the high one's.
	up.noteSenderReport(&rtcp.SenderReport{SSRC: 1111, NTPTime: ntp0, RTPTime: 90000}, t0)
	up.noteSenderReport(&rtcp.SenderReport{SSRC: 2222, NTPTime: ntp0, RTPTime: 7_000_000}, t0)
	d.SetMaxLayer(0)
	var rl, rh upReader
	for i := range uint16(3) {
		low.handle(&rl, vp8Packet(100+i, 90000+uint32(i)*3000, i == 0))
		high.handle(&rh, vp8Packet(5000+i, 7_000_000+uint32(i)*3000, i == 0))
	}
	before, _ := d.senderReport(t0.Add(time.Second))
	d.SetMaxLayer(1)
	low.handle(&rl, vp8Packet(103, 99000, false))
	high.handle(&rh, vp8Packet(5003, 7_009_000, true)) // the high layer's keyframe: the switch
	high.handle(&rh, vp8Packet(5004, 7_012_000, false))
	low.handle(&rl, vp8Packet(104, 102000, false)) // no longer sent
	if cur, _ := d.Layers(); cur != 1 {
		t.Fatalf("layer %d after the high layer's keyframe, want 1", cur)
	}
	var seqs []uint16
	var stamps []uint32
	for _, p := range w.packets {
		seqs = append(seqs, p.SequenceNumber)
		stamps = append(stamps, p.Timestamp)
	}
	if want := []uint16{100, 101, 102, 103, 104, 105}; fmt.Sprint(seqs) != fmt.Sprint(want) {
		t.Errorf("sequence numbers %v, want %v", seqs, want)
	}
	// The high layer's keyframe is the frame the low layer sent as 99000:
	// it goes one tick later, so that no two frames share a timestamp.
	if want := []uint32{90000, 93000, 96000, 99000, 99001, 102001}; fmt.Sprint(stamps) != fmt.Sprint(want) {
		t.Errorf("timestamps %v, want %v", stamps, want)
	}
	if after, _ := d.senderReport(t0.Add(time.Second)); after.RTPTime != before.RTPTime+1 {
		t.Errorf("the report's rtp time moved from %d to %d with the switch, want one tick", before.RTPTime, after.RTPTime)
	}
}

// Nothing goes to a subscriber whose transport is not up (Pion would drop
// it, a keyframe with it): the down track starts at the first keyframe
// after.
func TestDownTrackWaitsForTheTransport(t *testing.T) {
	up := testUpTrack("up", testEngine(), vp8Codec, 1111, 0, func([]rtcp.Packet) error { return nil })
	d := NewDownTrack(up, "d", "s")
	d.bw = newBandwidth(1_000_000, 10_000_000)
	codec := vp8Codec
	codec.PayloadType = 100
	w := &recordingWriter{}
	if _, err := d.Bind(&trackContext{codecs: []webrtc.RTPCodecParameters{codec}, ssrc: 5000, writer: w}); err != nil {
		t.Fatal(err)
	}
	r := upReader{level: 127}
	up.handle(&r, vp8Packet(100, 90000, true))
	up.handle(&r, vp8Packet(101, 93000, false))
	if len(w.packets) != 0 {
		t.Fatalf("%d packets sent before the transport was up", len(w.packets))
	}
	d.bw.ready.Store(true)
	up.handle(&r, vp8Packet(102, 96000, false))
	if len(w.packets) != 0 {
		t.Fatal("a delta frame sent first")
	}
	up.handle(&r, vp8Packet(103, 99000, true))
	if len(w.packets) != 1 {
		t.Fatalf("%d packets sent after the keyframe, want 1", len(w.packets))
	}
}
