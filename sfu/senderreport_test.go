package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// A subscriber's sender report carries the publisher's clock, moved on by
// the time since the publisher's report, in the subscriber's numbering:
// after a pause the forwarder shifts timestamps, and the report follows.
func TestSenderReportCarriesPublisherClock(t *testing.T) {
	up := makeUpTrack("up", &Engine{}, vp8Codec, 1111, 0, func([]rtcp.Packet) error { return nil })
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

	// Pause, resume 2 s later on a keyframe whose timestamp says 10 s: the
	// forwarder keeps numbering continuous, and the report maps the new
	// numbering to the same publisher clock.
	d.Pause()
	d.Resume()
	d.mu.Lock()
	d.fwd.lastOutTime = t0
	d.mu.Unlock()
	p := vp8Packet(300, 90000+900000, true)
	up.handle(&r, p)
	d.mu.Lock()
	shift := d.fwd.tsOffset
	d.mu.Unlock()
	if shift == 0 {
		t.Fatal("the forwarder did not shift timestamps")
	}
	sr, _ = d.senderReport(t0.Add(1500 * time.Millisecond))
	if want := uint32(90000+135000) - shift; sr.RTPTime != want {
		t.Errorf("after resume rtp %d, want %d", sr.RTPTime, want)
	}
}
