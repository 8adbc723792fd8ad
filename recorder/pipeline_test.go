package recorder

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

func pkt(seq uint16, ts uint32, marker bool, payload ...byte) *packet {
	return &packet{Packet: rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: ts, Marker: marker}, Payload: payload}}
}

func seqs(out []outPacket) (s []uint16, lost []bool) {
	for _, p := range out {
		s = append(s, p.pkt.SequenceNumber)
		lost = append(lost, p.lost)
	}
	return s, lost
}

// Packets come out in order across the 16-bit wrap; a hole is waited for
// until a later packet has waited the latency, then given up as lost;
// duplicates and late packets are dropped.
func TestJitterBufferOrdersAndGivesUp(t *testing.T) {
	j := newJitterBuffer(100 * time.Millisecond)
	t0 := time.Now()
	for _, s := range []uint16{65534, 0, 65535, 1, 0} { // reordered across the wrap, one duplicate
		j.push(pkt(s, 0, false), t0)
	}
	got, _ := seqs(j.pop(t0, nil))
	if want := []uint16{65534, 65535, 0, 1}; !equalSeqs(got, want) {
		t.Fatalf("out %v, want %v", got, want)
	}
	j.push(pkt(4, 0, false), t0) // 2 and 3 missing
	if out := j.pop(t0.Add(50*time.Millisecond), nil); len(out) != 0 {
		t.Fatalf("released %v before the latency ran out", out)
	}
	j.push(pkt(2, 0, false), t0.Add(60*time.Millisecond)) // 2 comes back (a NACK answered)
	got, lost := seqs(j.pop(t0.Add(60*time.Millisecond), nil))
	if !equalSeqs(got, []uint16{2}) || lost[0] {
		t.Fatalf("after 2 came back: %v %v, want [2] not lost", got, lost)
	}
	got, lost = seqs(j.pop(t0.Add(101*time.Millisecond), nil))
	if !equalSeqs(got, []uint16{4}) || !lost[0] || j.lost != 1 {
		t.Fatalf("after the latency: %v %v lost count %d, want [4] marked after 1 lost", got, lost, j.lost)
	}
	j.push(pkt(3, 0, false), t0.Add(120*time.Millisecond)) // too late
	if out := j.pop(t0.Add(200*time.Millisecond), nil); len(out) != 0 {
		t.Fatalf("a packet given up came out later: %v", out)
	}
	// A jump far ahead (the sender restarted) starts over there.
	j.push(pkt(30000, 0, false), t0.Add(300*time.Millisecond))
	got, lost = seqs(j.pop(t0.Add(300*time.Millisecond), nil))
	if !equalSeqs(got, []uint16{30000}) || !lost[0] {
		t.Fatalf("after a jump: %v %v, want [30000] marked after a loss", got, lost)
	}
}

func equalSeqs(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// vp8 makes a VP8 RTP payload: the descriptor (S bit on the first packet
// of a frame) and, on a frame's first packet, the keyframe bit.
func vp8(first, key bool, data ...byte) []byte {
	desc := byte(0)
	if first {
		desc = 0x10
	}
	body := append([]byte(nil), data...)
	if first {
		b0 := byte(1) // inter frame
		if key {
			b0 = 0
		}
		body = append([]byte{b0}, body...)
	}
	return append([]byte{desc}, body...)
}

// Frames are rebuilt from their packets; a frame that lost a packet is
// dropped, and so is every frame after it until a keyframe, with a
// keyframe asked for.
func TestAssemblerDropsUntilKeyframe(t *testing.T) {
	a := newAssembler("video/VP8")
	t0 := time.Now()
	feed := func(p *packet, lost bool) (frame, bool, bool) {
		return a.add(outPacket{pkt: p, arrival: t0, lost: lost})
	}
	// A delta frame first: no decoder can start there.
	if _, ok, want := feed(pkt(1, 100, true, vp8(true, false, 9)...), false); ok || !want {
		t.Fatalf("a first delta frame: ok %v, keyframe wanted %v", ok, want)
	}
	// A keyframe in two packets.
	if _, ok, _ := feed(pkt(2, 200, false, vp8(true, true, 1, 2)...), false); ok {
		t.Fatal("a frame came out before its marker")
	}
	f, ok, _ := feed(pkt(3, 200, true, vp8(false, false, 3)...), false)
	if !ok || !f.key || f.rtpTS != 200 || string(f.data) != string([]byte{0, 1, 2, 3}) {
		t.Fatalf("keyframe: %+v ok %v", f, ok)
	}
	if f, ok, _ := feed(pkt(4, 300, true, vp8(true, false, 7)...), false); !ok || f.key {
		t.Fatalf("delta frame after the keyframe: ok %v key %v", ok, f.key)
	}
	// The next frame lost its first packet: dropped, and the one after too.
	if _, ok, want := feed(pkt(6, 400, true, vp8(false, false, 5)...), true); ok || !want {
		t.Fatalf("frame with a lost packet: ok %v want %v", ok, want)
	}
	if _, ok, want := feed(pkt(7, 500, true, vp8(true, false, 6)...), false); ok || !want {
		t.Fatalf("delta frame after a loss: ok %v want %v", ok, want)
	}
	if f, ok, _ := feed(pkt(8, 600, true, vp8(true, true, 8)...), false); !ok || !f.key {
		t.Fatalf("keyframe after a loss: ok %v key %v", ok, f.key)
	}
	// A new timestamp before the last frame's marker: that frame is lost.
	feed(pkt(9, 700, false, vp8(true, false, 1)...), false)
	if _, ok, want := feed(pkt(10, 800, true, vp8(true, false, 1)...), false); ok || !want {
		t.Fatalf("frame after an unfinished one: ok %v want %v", ok, want)
	}

	// Audio: every packet is a frame, losses or not.
	au := newAssembler("audio/opus")
	if f, ok, _ := au.add(outPacket{pkt: pkt(1, 960, true, 1, 2), lost: true}); !ok || f.rtpTS != 960 {
		t.Fatalf("audio frame: %+v %v", f, ok)
	}
}

// The sender report puts a track on the publisher's clock; the least
// delayed frame sets the peer's offset, which the peer's other tracks
// share; a track with no report is placed by arrival after srWait.
func TestClockPlacesByPublisherClock(t *testing.T) {
	peer := &peerClock{}
	audio := &trackClock{rate: 48000, peer: peer}
	video := &trackClock{rate: 90000, peer: peer}
	const ntp0 = 1000 * time.Second
	// Audio RTP 48000 is publisher time ntp0; frames arrive 50 ms and 30 ms late.
	audio.report(senderReport{ntp: ntp0, rtp: 48000})
	pending := []timed{
		{ext: audio.extend(48000), arrived: 2*time.Second + 50*time.Millisecond},
		{ext: audio.extend(48960), arrived: 2*time.Second + 20*time.Millisecond + 30*time.Millisecond},
	}
	if ok, _ := audio.anchor(pending, 0, true); !ok {
		t.Fatal("audio not placed with a report")
	}
	if at := audio.place(pending[0]); at != 2*time.Second+30*time.Millisecond {
		t.Errorf("first audio frame at %v, want 2.03 s (the least delayed frame's offset)", at)
	}
	// Video on the same publisher clock: RTP 9000 is ntp0 + 0.5 s.
	video.report(senderReport{ntp: ntp0 + 500*time.Millisecond, rtp: 9000})
	v := timed{ext: video.extend(9000), arrived: 2*time.Second + 600*time.Millisecond}
	if ok, _ := video.anchor([]timed{v}, 0, true); !ok {
		t.Fatal("video not placed")
	}
	if at := video.place(v); at != 2*time.Second+530*time.Millisecond {
		t.Errorf("video frame at %v, want 2.53 s: the peer's offset, not its own arrival", at)
	}
	// Across the RTP wrap the clock goes on.
	w := &trackClock{rate: 90000, peer: &peerClock{}}
	w.report(senderReport{ntp: ntp0, rtp: 0xffffff00})
	a := timed{ext: w.extend(0xffffff00), arrived: time.Second}
	w.anchor([]timed{a}, 0, true)
	b := timed{ext: w.extend(0x00000100 + 90000 - 0x200), arrived: 2 * time.Second}
	if at := w.place(b); at != 2*time.Second {
		t.Errorf("after the wrap at %v, want 2 s", at)
	}
	// No report: not placed before srWait, then by arrival.
	n := &trackClock{rate: 48000, peer: &peerClock{}}
	f := timed{ext: n.extend(5000), arrived: 3 * time.Second}
	if ok, _ := n.anchor([]timed{f}, srWait/2, true); ok {
		t.Fatal("placed without a report before srWait")
	}
	if ok, _ := n.anchor([]timed{f}, srWait, true); !ok || n.place(f) != 3*time.Second {
		t.Fatal("not placed by arrival after srWait")
	}
	g := timed{ext: n.extend(5000 + 48000), arrived: 4*time.Second + 40*time.Millisecond}
	if at := n.place(g); at != 4*time.Second {
		t.Errorf("by arrival: next second at %v, want 4 s (RTP time, not arrival jitter)", at)
	}
}

// A peer's offset comes from its least-delayed frames: a keyframe that
// came late sets it first, audio placed afterwards lowers it and says by
// how much the frames placed so far move.
func TestClockOffsetLoweredByALaterTrack(t *testing.T) {
	peer := &peerClock{}
	video := &trackClock{rate: 90000, peer: peer}
	audio := &trackClock{rate: 48000, peer: peer}
	const ntp0 = 50 * time.Second
	video.report(senderReport{ntp: ntp0, rtp: 0})
	v := timed{ext: video.extend(0), arrived: time.Second + 700*time.Millisecond} // 700 ms late
	if ok, shift := video.anchor([]timed{v}, 0, true); !ok || shift != 0 {
		t.Fatalf("video: %v %v", ok, shift)
	}
	audio.report(senderReport{ntp: ntp0, rtp: 0})
	a := timed{ext: audio.extend(0), arrived: time.Second + 20*time.Millisecond}
	ok, shift := audio.anchor([]timed{a}, 0, true)
	if !ok || shift != 680*time.Millisecond {
		t.Fatalf("audio: placed %v, shift %v; want the offset lowered by 680 ms", ok, shift)
	}
	if at := video.place(v); at != time.Second+20*time.Millisecond {
		t.Errorf("the keyframe now at %v, want 1.02 s, with the audio captured at the same time", at)
	}
	// Once something is written the offset stays.
	other := &trackClock{rate: 48000, peer: peer}
	other.report(senderReport{ntp: ntp0, rtp: 0})
	o := timed{ext: other.extend(0), arrived: time.Second}
	if _, shift := other.anchor([]timed{o}, 0, false); shift != 0 || peer.delta != time.Second+20*time.Millisecond-ntp0 {
		t.Errorf("offset moved after writing began: shift %v", shift)
	}
}

// Padding packets (a sender's bandwidth probes, empty after their padding
// is stripped) are no part of a picture and break nothing; a loss before
// one still counts for the next picture.
func TestAssemblerSkipsPadding(t *testing.T) {
	a := newAssembler("video/VP8")
	add := func(p *packet, lost bool) (frame, bool, bool) { return a.add(outPacket{pkt: p, lost: lost}) }
	if _, ok, _ := add(pkt(1, 100, true, vp8(true, true, 1)...), false); !ok {
		t.Fatal("keyframe not out")
	}
	add(pkt(2, 100, false), false) // padding with the last picture's timestamp
	add(pkt(3, 100, false), false)
	for i, seq := range []uint16{4, 5, 6} {
		if _, ok, want := add(pkt(seq, 200+uint32(i)*100, true, vp8(true, false, 2)...), false); !ok || want {
			t.Fatalf("delta frame %d after padding: ok %v, keyframe wanted %v", i, ok, want)
		}
	}
	add(pkt(9, 400, false), true) // padding after a loss
	if _, ok, want := add(pkt(10, 500, true, vp8(true, false, 3)...), false); ok || !want {
		t.Fatalf("delta frame after a loss hidden by padding: ok %v want %v", ok, want)
	}
}

// ntp0 is the sender's clock at startedClock's first report.
const ntp0 = 100 * time.Second

// startedClock is a track's clock at rate, started by a first report (RTP
// time 0 at ntp0) and a first packet (arrived at 1 s, RTP time 0), placed
// at the time it returns.
func startedClock(rate uint32) (*trackClock, time.Duration) {
	c := &trackClock{rate: rate, peer: &peerClock{}}
	c.report(senderReport{ntp: ntp0, rtp: 0})
	first := timed{ext: c.extend(0), arrived: time.Second}
	c.anchor([]timed{first}, 0, true)
	return c, c.place(first)
}

// Reports that jitter (a sender writing late under load) move frames only
// a little at a time, and never back; a lasting change (clock drift) is
// followed at the slew rate.
func TestClockSmoothsJitteryReports(t *testing.T) {
	c, last := startedClock(90000)
	jitter := []time.Duration{40, -35, 25, -40, 30, -20, 35, -30}
	for i := 1; i <= 240; i++ { // 8 s at 30 fps, a report a second off by ±40 ms
		ts := uint32(i * 3000)
		if i%30 == 0 {
			c.report(senderReport{ntp: ntp0 + time.Duration(i)*time.Second/30 + jitter[i/30-1]*time.Millisecond, rtp: ts})
		}
		at := c.place(timed{ext: c.extend(ts), arrived: time.Second + time.Duration(i)*time.Second/30})
		if step := at - last; step < 32*time.Millisecond || step > 35*time.Millisecond {
			t.Fatalf("frame %d: %v after the last, want 33 ms give or take 2", i, step)
		}
		last = at
	}
	// A lasting 100 ms shift of the sender's clock back is taken up at
	// 20 ms a second.
	for i := 241; i <= 600; i++ {
		ts := uint32(i * 3000)
		if i%30 == 0 {
			c.report(senderReport{ntp: ntp0 + time.Duration(i)*time.Second/30 - 100*time.Millisecond, rtp: ts})
		}
		at := c.place(timed{ext: c.extend(ts), arrived: time.Second + time.Duration(i)*time.Second/30})
		if step := at - last; step < 32*time.Millisecond || step > 35*time.Millisecond {
			t.Fatalf("frame %d: %v after the last, want 33 ms give or take 2", i, step)
		}
		last = at
	}
	if want := time.Second + 20*time.Second - 100*time.Millisecond; last < want-2*time.Millisecond || last > want+2*time.Millisecond {
		t.Errorf("after a lasting shift the frame at 20 s is at %v, want %v", last, want)
	}
}

// A sender whose capture stalled (its microphone: the RTP clock counts
// samples, the reports say when they were captured) reports its RTP times
// 60 ms later from then on: once two reports agree, what follows goes 60
// ms later at once and stays there, not slewed in over seconds.
func TestClockFollowsAStalledCapture(t *testing.T) {
	c, _ := startedClock(48000)
	var at time.Duration
	for i := 1; i <= 500; i++ { // 10 s of 20 ms packets, a report a second
		ts := uint32(i * 960)
		stalled := time.Duration(0)
		if i > 150 {
			stalled = 60 * time.Millisecond
		}
		if i%50 == 0 {
			c.report(senderReport{ntp: ntp0 + time.Duration(i)*20*time.Millisecond + stalled, rtp: ts})
		}
		at = c.place(timed{ext: c.extend(ts), arrived: time.Second + time.Duration(i)*20*time.Millisecond + stalled})
		want := time.Second + time.Duration(i)*20*time.Millisecond
		switch {
		case i < 250 && at != want:
			t.Fatalf("packet %d at %v before the second report of the stall, want %v", i, at, want)
		case i >= 250 && at != want+60*time.Millisecond:
			t.Fatalf("packet %d at %v after two reports of the stall, want %v", i, at, want+60*time.Millisecond)
		}
	}
}
