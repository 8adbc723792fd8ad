package e2e

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// A teacher's Chromium publishes its camera as three simulcast layers; a
// student's gets the largest, and exactly the layer it asks for with
// setPreferredLayers, decoding all along.
func TestBrowserSimulcast(t *testing.T) {
	testBrowserSimulcast(t, loopbackConfig(23130, 23139, ""), "video/VP8")
}

// The same in H.264 (Chromium's OpenH264 encodes each layer; a switch
// lands on the new layer's IDR).
func TestBrowserSimulcastH264(t *testing.T) {
	testBrowserSimulcast(t, loopbackConfig(23180, 23189, `[
		{"Kind": "audio", "MimeType": "audio/opus", "ClockRate": 48000, "Channels": 2},
		{"Kind": "video", "MimeType": "video/H264", "ClockRate": 90000,
		 "Parameters": {"packetization-mode": 1, "profile-level-id": "42e01f", "level-asymmetry-allowed": 1}}]`), "video/H264")
}

func testBrowserSimulcast(t *testing.T, config, codec string) {
	srv := startMedia(t, config)
	teacher := openPage(t, srv.URL+"/?room=simulcast&name=Teacher&autojoin=1&adaptive=0", "teacher")
	student := openPage(t, srv.URL+"/?room=simulcast&name=Student&autojoin=1&adaptive=0", "student")
	teacherID := inRoom(t, teacher)
	t.Cleanup(func() {
		if t.Failed() { // what the teacher's encoder did, layer by layer
			for _, out := range teacher.stats().Outbound {
				if out.Source == "video:cam" {
					t.Logf("teacher's %s: %.0f lines, %.0f frames, %.0f keyframes, %.0f PLIs, active %v, limited by %q",
						out.RID, out.FrameHeight, out.FramesEncoded, out.KeyFrames, out.PLIs, out.Active, out.Limitation)
				}
			}
		}
	})

	// The teacher's camera goes out as l, m and h, each encoding, for a
	// second on end. (Chromium encodes every layer's first frames, then
	// only those its estimate allows until it rises: on a loaded machine
	// the top layer took over 20 s to come back.)
	var rids []string
	waitFor(t, 40*time.Second, "three camera layers being sent in "+codec, func() bool {
		frames := func() (map[string]float64, map[string]float64) {
			n, lines := map[string]float64{}, map[string]float64{}
			for _, out := range teacher.stats().Outbound {
				if out.Source == "video:cam" && strings.EqualFold(out.Codec, codec) {
					n[out.RID], lines[out.RID] = out.FramesEncoded, out.FrameHeight
				}
			}
			return n, lines
		}
		before, _ := frames()
		time.Sleep(time.Second)
		rids = rids[:0]
		after, lines := frames()
		for rid, n := range after {
			if n >= before[rid]+10 {
				rids = append(rids, fmt.Sprintf("%s:%.0f", rid, lines[rid]))
			}
		}
		sort.Strings(rids)
		return len(rids) == 3
	})
	t.Logf("teacher sends %s", strings.Join(rids, " "))

	studentStepsThroughLayers(t, student, teacherID)
	_, metrics := srv.get(t, "/metrics")
	for _, want := range []string{"vclass_layer_switches_total ", "vclass_subscriber_estimate_bps_count "} {
		var n float64
		for _, line := range strings.Split(metrics, "\n") {
			if rest, ok := strings.CutPrefix(line, want); ok {
				fmt.Sscan(rest, &n)
			}
		}
		if n < 2 {
			t.Errorf("metrics: %s%.0f, want at least 2", want, n)
		}
	}
}

// studentStepsThroughLayers checks that student decodes the teacher's
// camera at its largest layer, then at each layer it asks for with
// setPreferredLayers (a quarter, half and all of the largest's lines), and
// at the middle one for a view of half the lines.
func studentStepsThroughLayers(t *testing.T, student *page, teacherID string) {
	t.Helper()
	inbound := func() (consumer string, height, frames float64) {
		for _, in := range student.stats().Inbound {
			if in.PeerID == teacherID && in.Source == "video:cam" {
				return in.ConsumerID, in.FrameHeight, in.FramesDecoded
			}
		}
		return "", 0, 0
	}
	var consumer string
	var top float64
	waitFor(t, 20*time.Second, "the student decoding the largest layer", func() bool {
		var frames float64
		consumer, top, frames = inbound()
		return frames > 0 && top >= 480
	})
	for _, step := range []struct {
		layer  int
		height float64
	}{{0, top / 4}, {1, top / 2}, {2, top}} {
		if err := student.eval(fmt.Sprintf(`window.vclass.client.setPreferredLayers(%q, %d).then(() => true)`, consumer, step.layer), nil); err != nil {
			t.Fatalf("setPreferredLayers %d: %v", step.layer, err)
		}
		_, _, before := inbound()
		waitFor(t, 20*time.Second, fmt.Sprintf("frames of %.0f lines after asking for layer %d", step.height, step.layer), func() bool {
			_, h, frames := inbound()
			return h == step.height && frames > before+10
		})
	}
	// A view of 360 lines needs no more than the middle layer (its size
	// read from the layers' keyframes).
	if err := student.eval(fmt.Sprintf(`window.vclass.client.setConsumerView(%q, {width: %.0f, height: %.0f}).then(() => true)`, consumer, top*8/9, top/2), nil); err != nil {
		t.Fatalf("setConsumerView: %v", err)
	}
	_, _, before := inbound()
	waitFor(t, 20*time.Second, fmt.Sprintf("frames of %.0f lines for a view of %.0f", top/2, top/2), func() bool {
		_, h, frames := inbound()
		return h == top/2 && frames > before+10
	})
}
