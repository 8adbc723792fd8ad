package sfu

import (
	"bufio"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// capturedPacket is one packet of a browser capture in testdata.
type capturedPacket struct {
	seq      uint16
	ts       uint32
	marker   bool
	payload  []byte // its first bytes
	desc     payloadDesc
	keyframe bool
}

// loadVP9Capture reads testdata/vp9_l3t3_key.txt: a real Chromium's VP9
// camera in three spatial and three temporal layers.
func loadVP9Capture(t *testing.T) []capturedPacket {
	return loadCapture(t, "testdata/vp9_l3t3_key.txt", func(p *capturedPacket, _ []byte) bool {
		ok := parseVP9(p.payload, &p.desc)
		p.keyframe = p.desc.start && !p.desc.interPic
		return ok
	})
}

// loadAV1Capture reads testdata/av1_l3t3_key.txt: the same in AV1, its
// layers told by the dependency descriptor.
func loadAV1Capture(t *testing.T) []capturedPacket {
	var s ddStructure
	return loadCapture(t, "testdata/av1_l3t3_key.txt", func(p *capturedPacket, dd []byte) bool {
		ok := parseDD(dd, &s, &p.desc)
		p.keyframe = p.desc.start && isKeyframe(codecAV1, p.payload)
		return ok
	})
}

// loadCapture reads a capture, each packet's descriptor by parse (given
// the dependency descriptor, if any).
func loadCapture(t *testing.T, path string, parse func(p *capturedPacket, dd []byte) bool) []capturedPacket {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []capturedPacket
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 5 {
			t.Fatalf("capture line %q", line)
		}
		var dd []byte
		if len(fields) > 5 && fields[5] != "-" {
			if dd, err = hex.DecodeString(fields[5]); err != nil {
				t.Fatal(err)
			}
		}
		seq, _ := strconv.ParseUint(fields[0], 10, 16)
		ts, _ := strconv.ParseUint(fields[1], 10, 32)
		payload, err := hex.DecodeString(fields[4])
		if err != nil {
			t.Fatal(err)
		}
		p := capturedPacket{seq: uint16(seq), ts: uint32(ts), marker: fields[2] == "1", payload: payload}
		if !parse(&p, dd) {
			t.Fatalf("packet %d: descriptor % x % x does not parse", seq, payload, dd)
		}
		out = append(out, p)
	}
	if len(out) < 300 {
		t.Fatalf("capture has %d packets", len(out))
	}
	return out
}

// in is the forwarder's view of a captured packet.
func (c capturedPacket) in(ext uint64, t0 time.Time) InPacket {
	d := c.desc
	return InPacket{
		ExtSeq: ext, Timestamp: c.ts, Keyframe: c.keyframe, Marker: c.marker, SVC: true, Desc: &d,
		Arrival: t0.Add(time.Duration(c.ts) * time.Second / 90000),
	}
}

// forEachCapture runs test on the VP9 and the AV1 capture.
func forEachCapture(t *testing.T, test func(t *testing.T, pkts []capturedPacket)) {
	t.Run("VP9", func(t *testing.T) { test(t, loadVP9Capture(t)) })
	t.Run("AV1", func(t *testing.T) { test(t, loadAV1Capture(t)) })
}

func TestParseVP9Capture(t *testing.T) {
	pkts := loadVP9Capture(t)
	first := pkts[0].desc
	if !first.start || first.interPic || first.layerCount != 3 {
		t.Fatalf("first packet: %+v, want a keyframe's start with three spatial layers", first)
	}
	want := [MaxLayers]uint32{320<<16 | 180, 640<<16 | 360, 1280<<16 | 720}
	if first.sizes != want {
		t.Errorf("sizes %x, want %x", first.sizes, want)
	}
	var perSpatial [MaxLayers]int
	var perTemporal [3]int
	for _, p := range pkts {
		d := p.desc
		if !d.vp9 || !d.hasTID || d.picIDLen != 2 || d.tl0At != 0 {
			t.Fatalf("packet %d: %+v, want layer indices and a 15-bit picture ID in flexible mode (no TL0PICIDX)", p.seq, d)
		}
		perSpatial[min(d.sid, 2)]++
		perTemporal[min(d.tid, 2)]++
	}
	for s, n := range perSpatial {
		if n == 0 {
			t.Errorf("no packet of spatial layer %d", s)
		}
	}
	for k, n := range perTemporal {
		if n == 0 {
			t.Errorf("no packet of temporal layer %d", k)
		}
	}
}

// forwardCapture runs the capture through a forwarder, calling step before
// each packet, and returns what went out: the packets (by index) with
// their decisions.
func forwardCapture(pkts []capturedPacket, f *Forwarder, step func(i int)) (sent []int, decs []Decision) {
	t0 := time.Unix(1000, 0)
	var unwrap seqUnwrapper
	for i, p := range pkts {
		if step != nil {
			step(i)
		}
		d := f.Process(p.in(unwrap.unwrap(p.seq), t0))
		if d.Forward {
			sent = append(sent, i)
			decs = append(decs, d)
		}
	}
	return sent, decs
}

// checkVP9Out checks what a subscriber gets: sequence numbers without a
// gap but those in the capture (its padding left out), and every picture
// ended by exactly one marker, on its last packet, the end of the highest
// layer frame it got.
func checkVP9Out(t *testing.T, pkts []capturedPacket, sent []int, decs []Decision) {
	t.Helper()
	for k := 1; k < len(decs); k++ {
		i, j := sent[k-1], sent[k]
		missing := int(pkts[j].seq-pkts[i].seq) - (j - i) // not in the capture
		if decs[k].Seq != decs[k-1].Seq+1+uint16(missing) {
			t.Fatalf("sequence gap: %d then %d (packets %d, %d)", decs[k-1].Seq, decs[k].Seq, pkts[sent[k-1]].seq, pkts[sent[k]].seq)
		}
	}
	for k := range decs {
		p := pkts[sent[k]]
		lastOfPicture := k == len(decs)-1 || decs[k+1].Timestamp != decs[k].Timestamp
		if decs[k].Marker != lastOfPicture && k != len(decs)-1 {
			t.Fatalf("packet %d (spatial %d, E %v): marker %v, last of its picture %v", p.seq, p.desc.sid, p.desc.layerEnd, decs[k].Marker, lastOfPicture)
		}
	}
}

func TestForwarderSVCAllLayers(t *testing.T) {
	forEachCapture(t, func(t *testing.T, pkts []capturedPacket) {
		f := NewForwarder(90000, true)
		f.SetTarget(2)
		sent, decs := forwardCapture(pkts, f, nil)
		if len(sent) != len(pkts) {
			t.Fatalf("forwarded %d of %d packets", len(sent), len(pkts))
		}
		for k, d := range decs {
			if p := pkts[k]; d.Seq != p.seq || d.Marker != p.marker || d.Timestamp != p.ts {
				t.Fatalf("packet %d: sent as seq %d ts %d marker %v, want it as it came", p.seq, d.Seq, d.Timestamp, d.Marker)
			}
		}
		if f.Layer() != 2 {
			t.Errorf("Layer() = %d, want 2", f.Layer())
		}
	})
}

func TestForwarderSVCSpatialAndTemporal(t *testing.T) {
	forEachCapture(t, func(t *testing.T, pkts []capturedPacket) {
		for _, tt := range []struct {
			spatial  int8
			temporal uint8
		}{{0, AllTemporal}, {1, AllTemporal}, {1, 1}, {0, 0}, {2, 0}} {
			f := NewForwarder(90000, true)
			f.SetTarget(tt.spatial)
			f.SetMaxTemporal(tt.temporal)
			sent, decs := forwardCapture(pkts, f, nil)
			pictures := map[uint32]uint8{} // timestamp -> spatial layers got, a bit each
			for _, i := range sent {
				d := pkts[i].desc
				if int8(d.sid) > tt.spatial || d.tid > tt.temporal {
					t.Fatalf("S%dT%d: forwarded a packet of S%dT%d", tt.spatial, tt.temporal, d.sid, d.tid)
				}
				pictures[pkts[i].ts] |= 1 << d.sid
			}
			// Every picture of the chosen temporal layers arrives, with every
			// spatial layer up to the one chosen the capture has for it.
			want := map[uint32]uint8{}
			for _, p := range pkts {
				if p.desc.tid <= tt.temporal && int8(p.desc.sid) <= tt.spatial {
					want[p.ts] |= 1 << p.desc.sid
				}
			}
			if len(pictures) != len(want) {
				t.Errorf("S%dT%d: %d pictures sent, want %d", tt.spatial, tt.temporal, len(pictures), len(want))
			}
			for ts, layers := range want {
				if pictures[ts] != layers {
					t.Errorf("S%dT%d: picture %d sent with layers %03b, want %03b", tt.spatial, tt.temporal, ts, pictures[ts], layers)
				}
			}
			checkVP9Out(t, pkts, sent, decs)
			t.Logf("S%dT%d: %d of %d packets, %d pictures", tt.spatial, tt.temporal, len(sent), len(pkts), len(pictures))
		}
	})
}

// Going down takes effect at the next picture, with no keyframe; going up
// waits for a keyframe (asking for one meanwhile), whose layer frames
// raise the layer one at a time.
func TestForwarderSVCSwitches(t *testing.T) {
	forEachCapture(t, func(t *testing.T, pkts []capturedPacket) {
		f := NewForwarder(90000, true)
		f.SetTarget(2)
		downAt, upAt := len(pkts)/4, len(pkts)/2
		var asked bool
		var sentAfterDown, sentAfterUp []int
		t0 := time.Unix(1000, 0)
		var unwrap seqUnwrapper
		var decs []Decision
		var sent []int
		for i, p := range pkts {
			switch i {
			case downAt:
				f.SetTarget(0)
			case upAt:
				f.SetTarget(2)
			}
			d := f.Process(p.in(unwrap.unwrap(p.seq), t0))
			if i >= upAt && d.RequestKeyframe {
				asked = true
			}
			if !d.Forward {
				continue
			}
			sent, decs = append(sent, i), append(decs, d)
			switch {
			case i >= upAt:
				sentAfterUp = append(sentAfterUp, i)
			case i >= downAt:
				sentAfterDown = append(sentAfterDown, i)
			}
		}
		checkVP9Out(t, pkts, sent, decs)
		// Down: from the first picture that starts after the switch, spatial
		// layer 0 only.
		started := false
		for _, i := range sentAfterDown {
			d := pkts[i].desc
			started = started || d.start
			if started && d.sid != 0 {
				t.Fatalf("packet %d of spatial layer %d after going down to 0", pkts[i].seq, d.sid)
			}
		}
		// Up: layer 0 until the first keyframe after the switch, then all.
		key := -1
		for i := upAt; i < len(pkts); i++ {
			if pkts[i].keyframe {
				key = i
				break
			}
		}
		if key < 0 {
			t.Fatal("the capture has no keyframe in its second half")
		}
		if !asked {
			t.Error("no keyframe asked for to go up")
		}
		var top uint8
		for _, i := range sentAfterUp {
			d := pkts[i].desc
			if i < key && d.sid != 0 {
				t.Fatalf("packet %d of spatial layer %d before the keyframe", pkts[i].seq, d.sid)
			}
			top = max(top, d.sid)
		}
		if top != 2 || f.Layer() != 2 {
			t.Errorf("after the keyframe: top layer sent %d, Layer() %d, want 2", top, f.Layer())
		}
	})
}

// A NACK of a packet sent while a smaller spatial layer was the top says
// so: its retransmission ends the picture as the original did.
func TestForwarderSVCNackSpatial(t *testing.T) {
	forEachCapture(t, func(t *testing.T, pkts []capturedPacket) {
		f := NewForwarder(90000, true)
		f.SetTarget(1)
		var markerSeq uint16
		found := false
		switchAt := len(pkts) / 2
		sent, decs := forwardCapture(pkts[:switchAt+20], f, func(i int) {
			if i == switchAt {
				f.SetTarget(0)
			}
		})
		for k, i := range sent {
			if i < switchAt && decs[k].Marker && !pkts[i].marker {
				markerSeq, found = decs[k].Seq, true
			}
		}
		if !found {
			t.Fatal("no marker set by the forwarder before the switch")
		}
		target, ok := f.MapNackTarget(markerSeq)
		if !ok || target.Spatial != 1 {
			t.Fatalf("MapNackTarget(%d) = %+v, %v; want spatial 1", markerSeq, target, ok)
		}
	})
}

func TestParseAV1Capture(t *testing.T) {
	pkts := loadAV1Capture(t)
	first := pkts[0].desc
	if !first.start || !pkts[0].keyframe || first.layerCount != 3 {
		t.Fatalf("first packet: %+v, want a keyframe's start with three spatial layers", first)
	}
	want := [MaxLayers]uint32{320<<16 | 180, 640<<16 | 360, 1280<<16 | 720}
	if first.sizes != want {
		t.Errorf("sizes %x, want %x", first.sizes, want)
	}
	var n [MaxLayers][3]int
	for _, p := range pkts {
		n[min(p.desc.sid, 2)][min(p.desc.tid, 2)]++
	}
	for s := range n {
		for k, c := range n[s] {
			if c == 0 {
				t.Errorf("no packet of S%dT%d", s, k)
			}
		}
	}
	// Malformed or unknown: refused, not misread.
	var s ddStructure
	var d payloadDesc
	for _, b := range [][]byte{nil, {0x80}, {0xc0, 0x00}} {
		if parseDD(b, &s, &d) {
			t.Errorf("parseDD(% x) without a structure = true", b)
		}
	}
	dd, _ := hex.DecodeString("c0002480081485214eaaaaa8000600004000100002aa80a8000600004000100002a000a800060000400016d549241b5524906d54923157e001974ca864330e222396eca8655304224390eca87753013f00b3027f016704ff02cf")
	for cut := 4; cut < len(dd)-1; cut += 7 {
		if parseDD(dd[:cut], &s, &d) {
			t.Errorf("a structure cut at %d of %d bytes parses", cut, len(dd))
		}
	}
	if !parseDD(dd, &s, &d) || s.layers != 3 {
		t.Errorf("the whole structure: %+v", s)
	}
}

// FuzzDependencyDescriptor: any bytes, after any structure, parse without
// a panic into a layer the structure has.
func FuzzDependencyDescriptor(f *testing.F) {
	f.Add([]byte{0xc0, 0x00, 0x24, 0x80, 0x08, 0x14, 0x85, 0x21, 0x4e, 0xaa, 0xaa, 0xa8, 0x00}, []byte{0x85, 0x00, 0x25})
	f.Add([]byte{0x80, 0x00, 0x01}, []byte{0x40, 0x00, 0x02, 0xff})
	f.Fuzz(func(t *testing.T, first, second []byte) {
		var s ddStructure
		var d payloadDesc
		for _, b := range [][]byte{first, second} {
			if parseDD(b, &s, &d) && (!s.valid || d.sid >= s.layers || d.tid > 63) {
				t.Fatalf("% x: %+v of %+v", b, d, s)
			}
		}
	})
}

// A scalable stream's spatial layers are the track's layers: arriving,
// sized from the keyframe's structure, chosen for a view.
func TestScalableTrackLayers(t *testing.T) {
	forEachCapture(t, func(t *testing.T, pkts []capturedPacket) {
		vp9 := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000}}
		up := testUpTrack("up", testEngine(), vp9, 1, 0, func([]rtcp.Packet) error { return nil })
		if up.Layered() || up.LiveLayers(time.Now()) != 0 {
			t.Fatal("layered before any packet")
		}
		now := time.Now()
		for _, p := range pkts {
			up.layers[0].Load().noteSVC(&p.desc, 1000, now)
		}
		if !up.Layered() || up.LiveLayers(now) != 0b111 {
			t.Fatalf("Layered %v, live layers %03b; want three", up.Layered(), up.LiveLayers(now))
		}
		for _, tt := range []struct {
			w, h int
			want int8
		}{{160, 90, 0}, {320, 180, 0}, {600, 340, 1}, {1280, 720, 2}, {1920, 1080, 2}} {
			if got := up.layerFor(tt.w, tt.h); got != tt.want {
				t.Errorf("layerFor(%d, %d) = %d, want %d", tt.w, tt.h, got, tt.want)
			}
		}
		if up.LiveLayers(now.Add(2*layerStale)) != 0 {
			t.Error("layers still live long after the last packet")
		}
	})
}

// Temporal layers come back after a picture that allows it, without a
// keyframe: from T0 alone to every layer within a few pictures.
func TestForwarderSVCTemporalUp(t *testing.T) {
	forEachCapture(t, func(t *testing.T, pkts []capturedPacket) {
		f := NewForwarder(90000, true)
		f.SetTarget(2)
		f.SetMaxTemporal(0)
		at := len(pkts) / 3
		sent, decs := forwardCapture(pkts, f, func(i int) {
			if i == at {
				f.SetMaxTemporal(AllTemporal)
			}
		})
		checkVP9Out(t, pkts, sent, decs)
		first := -1
		for _, i := range sent {
			if i >= at && pkts[i].desc.tid == 2 {
				first = i
				break
			}
		}
		if first < 0 {
			t.Fatal("no T2 frame after raising the temporal layer")
		}
		pictures := map[uint32]bool{}
		for i := at; i < first; i++ {
			pictures[pkts[i].ts] = true
		}
		if len(pictures) > 5 {
			t.Errorf("T2 back after %d pictures, want within 5", len(pictures))
		}
	})
}

// An AV1 subscriber of a scalable stream gets each packet's dependency
// descriptor, and a resent packet ends its picture as the original did:
// the capture through an up track and a down track held at spatial
// layer 1.
func TestDownTrackAV1Descriptor(t *testing.T) {
	f, err := os.Open("testdata/av1_l3t3_key.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	av1 := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}, PayloadType: 45}
	up := testUpTrack("up", testEngine(), av1, 1111, 7, func([]rtcp.Packet) error { return nil })
	d := NewDownTrack(up, "d", "s")
	w := &recordingWriter{}
	ctx := &trackContext{codecs: []webrtc.RTPCodecParameters{av1}, ssrc: 5000, writer: w,
		exts: []webrtc.RTPHeaderExtensionParameter{{URI: dependencyDescriptorURI, ID: 9}}}
	if _, err := d.Bind(ctx); err != nil {
		t.Fatal(err)
	}
	d.SetMaxLayer(1)
	r := upReader{level: 127}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 6 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		seq, _ := strconv.ParseUint(fields[0], 10, 16)
		ts, _ := strconv.ParseUint(fields[1], 10, 32)
		payload, _ := hex.DecodeString(fields[4])
		dd, _ := hex.DecodeString(fields[5])
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 45, SequenceNumber: uint16(seq), Timestamp: uint32(ts), SSRC: 1111, Marker: fields[2] == "1"}, Payload: payload}
		if err := pkt.Header.SetExtension(7, dd); err != nil {
			t.Fatal(err)
		}
		raw, _ := pkt.Marshal()
		up.handle(&r, raw)
	}
	if !up.Layered() || len(w.packets) < 100 {
		t.Fatalf("layered %v, %d packets forwarded", up.Layered(), len(w.packets))
	}
	var s ddStructure
	var marked []rtp.Packet
	for _, p := range w.packets {
		var desc payloadDesc
		dd := p.Header.GetExtension(9)
		if !parseDD(dd, &s, &desc) {
			t.Fatalf("packet %d: descriptor % x does not parse", p.SequenceNumber, dd)
		}
		if desc.sid > 1 {
			t.Fatalf("packet %d of spatial layer %d sent", p.SequenceNumber, desc.sid)
		}
		if p.Marker {
			marked = append(marked, p)
		}
	}
	if len(marked) < 20 {
		t.Fatalf("%d pictures ended with a marker", len(marked))
	}
	// The publisher's clock goes on to the subscriber with layer 1 sent
	// (the stream's one clock, whichever spatial layer).
	now := time.Now()
	up.noteSenderReport(&rtcp.SenderReport{SSRC: 1111, NTPTime: 3_900_000_000 << 32, RTPTime: 90000}, now)
	if sr, ok := d.senderReport(now); !ok || sr.SSRC != 5000 {
		t.Errorf("sender report %+v, %v; want one for ssrc 5000", sr, ok)
	}
	// The last few pictures' ends, resent: with their marker.
	for _, orig := range marked[len(marked)-3:] {
		n := len(w.packets)
		if !d.retransmit(orig.SequenceNumber) || len(w.packets) != n+1 {
			t.Fatalf("packet %d not resent", orig.SequenceNumber)
		}
		if again := w.packets[n]; !again.Marker || string(again.Header.GetExtension(9)) != string(orig.Header.GetExtension(9)) {
			t.Errorf("packet %d resent with marker %v, descriptor % x; want the marker and % x", orig.SequenceNumber, again.Marker, again.Header.GetExtension(9), orig.Header.GetExtension(9))
		}
	}
}

// An AV1 keyframe's first packet tells the stream's largest picture
// size (its sequence header): Chromium's L3T3_KEY capture, and the same
// sequence header as the single element of a packet.
func TestAV1KeyframeSize(t *testing.T) {
	caps := loadAV1Capture(t)
	first := caps[0].payload
	if w, h, ok := av1KeyframeSize(first); !ok || w != 1280 || h != 720 {
		t.Fatalf("capture: %dx%d %v, want 1280x720", w, h, ok)
	}
	for _, p := range caps[1:] {
		if _, _, ok := av1KeyframeSize(p.payload); ok && p.payload[0]&0x08 == 0 {
			t.Fatalf("packet %d (no new sequence) has a size", p.seq)
		}
	}
	// W=1: one element, no length; its OBU with a size field.
	seq := first[3:31] // the sequence header's payload in the capture
	single := append([]byte{0x18, 0x0a, byte(len(seq))}, seq...)
	if w, h, ok := av1KeyframeSize(single); !ok || w != 1280 || h != 720 {
		t.Fatalf("single element: %dx%d %v", w, h, ok)
	}
	for cut := range len(single) - 1 {
		if w, h, ok := av1KeyframeSize(single[:cut]); ok {
			t.Fatalf("cut at %d: %dx%d", cut, w, h)
		}
	}
}
