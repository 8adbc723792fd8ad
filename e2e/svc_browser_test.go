package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vclass/vclass/client"
)

// vp9Codecs is a codec list that has VP9 next to VP8.
const vp9Codecs = `[
	{"Kind": "audio", "MimeType": "audio/opus", "ClockRate": 48000, "Channels": 2},
	{"Kind": "video", "MimeType": "video/VP8", "ClockRate": 90000},
	{"Kind": "video", "MimeType": "video/VP9", "ClockRate": 90000, "Parameters": {"profile-id": 0}}]`

// A teacher's Chromium publishes its camera in VP9 as one scalable stream
// (three spatial and three temporal layers, L3T3_KEY); a student's decodes
// the largest spatial layer, and then exactly the one it asks for with
// setPreferredLayers, with no keyframe needed to go down, decoding all
// along.
//
// With VCLASS_CAPTURE_VP9=file, a Go subscriber also writes the first 8 s
// of the stream it receives (every layer, as the teacher sends it) to
// file, one packet a line: the capture sfu's VP9 tests replay.
func TestBrowserVP9SVC(t *testing.T) {
	srv := startMedia(t, loopbackConfig(35150, 35159, vp9Codecs))
	teacher := openPage(t, srv.URL+"/?room=svc&name=Teacher&autojoin=1&adaptive=0&codec=VP9", "teacher")
	waitFor(t, 15*time.Second, "the teacher in the room", func() bool { return teacher.peerID() != "" })
	teacherID := teacher.peerID()
	student := openPage(t, srv.URL+"/?room=svc&name=Student&autojoin=1&adaptive=0", "student")

	// One VP9 stream for the camera, encoding at the captured size.
	waitFor(t, 20*time.Second, "the camera sent as one VP9 stream", func() bool {
		n, vp9 := 0, false
		for _, out := range teacher.stats().Outbound {
			if out.Source == "video:cam" {
				n++
				vp9 = strings.EqualFold(out.Codec, "video/VP9") && out.FramesEncoded > 0 && out.FrameHeight >= 480
			}
		}
		return n == 1 && vp9
	})
	if path := os.Getenv("VCLASS_CAPTURE_VP9"); path != "" {
		captureVP9(t, srv.WS, path)
	}

	inbound := func() (consumer, codec string, height, frames float64) {
		for _, in := range student.stats().Inbound {
			if in.PeerID == teacherID && in.Source == "video:cam" {
				return in.ConsumerID, in.Codec, in.FrameHeight, in.FramesDecoded
			}
		}
		return "", "", 0, 0
	}
	var consumer, codec string
	var top float64
	waitFor(t, 20*time.Second, "the student decoding the largest spatial layer", func() bool {
		var frames float64
		consumer, codec, top, frames = inbound()
		return frames > 0 && top >= 480
	})
	if !strings.EqualFold(codec, "video/VP9") {
		t.Fatalf("the student decodes %s, want video/VP9", codec)
	}
	for _, step := range []struct {
		layer  int
		height float64
	}{{1, top / 2}, {0, top / 4}, {2, top}} {
		if err := student.eval(fmt.Sprintf(`window.vclass.client.setPreferredLayers(%q, %d).then(() => true)`, consumer, step.layer), nil); err != nil {
			t.Fatalf("setPreferredLayers %d: %v", step.layer, err)
		}
		_, _, _, before := inbound()
		waitFor(t, 10*time.Second, fmt.Sprintf("frames of %.0f lines after asking for layer %d", step.height, step.layer), func() bool {
			_, _, h, frames := inbound()
			return h == step.height && frames > before+20
		})
	}
}

// captureVP9 joins the room of the only publisher on ws as a Go client and
// writes 8 s of the VP9 camera it receives to path: sequence number,
// timestamp, marker, packet size and the first 32 bytes of payload (the
// descriptor and then some) in hex, a packet a line (the server's probe
// padding left out).
func captureVP9(t *testing.T, ws, path string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{URL: ws, DisplayName: "capture"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan *client.RemoteTrack, 4)
	c.OnTrack(func(rt *client.RemoteTrack) { got <- rt })
	if _, err := c.JoinRoom(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("# VP9 L3T3_KEY from Chromium's fake camera, as forwarded with every layer: seq ts marker size payload[:32]\n")
	for {
		var rt *client.RemoteTrack
		select {
		case rt = <-got:
		case <-ctx.Done():
			t.Fatal("capture: no VP9 track")
		}
		if !strings.EqualFold(rt.Track.Codec().MimeType, "video/VP9") {
			go func() { // read, so that its packets count as received
				for {
					if _, _, err := rt.Track.ReadRTP(); err != nil {
						return
					}
				}
			}()
			continue
		}
		_ = rt.RequestKeyframe()
		end := time.Now().Add(8 * time.Second)
		_ = rt.Track.SetReadDeadline(end.Add(2 * time.Second))
		for time.Now().Before(end) {
			p, _, err := rt.Track.ReadRTP()
			if err != nil {
				t.Fatalf("capture: %v", err)
			}
			if len(p.Payload) == 0 {
				continue // the server's probe padding
			}
			marker := 0
			if p.Marker {
				marker = 1
			}
			fmt.Fprintf(&b, "%d %d %d %d %x\n", p.SequenceNumber, p.Timestamp, marker, p.MarshalSize(), p.Payload[:min(32, len(p.Payload))])
		}
		break
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("captured to %s", path)
}
