package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vclass/vclass/client"
)

// svcCodecs is a codec list with VP9 and AV1 next to VP8.
const svcCodecs = `[
	{"Kind": "audio", "MimeType": "audio/opus", "ClockRate": 48000, "Channels": 2},
	{"Kind": "video", "MimeType": "video/VP8", "ClockRate": 90000},
	{"Kind": "video", "MimeType": "video/VP9", "ClockRate": 90000, "Parameters": {"profile-id": 0}},
	{"Kind": "video", "MimeType": "video/AV1", "ClockRate": 90000}]`

// A teacher's Chromium publishes its camera in VP9 as one scalable stream
// (three spatial and three temporal layers, L3T3_KEY); a student's decodes
// the largest spatial layer, and then exactly the one it asks for with
// setPreferredLayers, with no keyframe needed to go down, decoding all
// along.
//
// With VCLASS_CAPTURE_SVC=dir, a Go subscriber also writes the first 8 s
// of the stream it receives (every layer, as the teacher sends it) to
// dir/vp9_l3t3_key.txt (and the AV1 test to av1_l3t3_key.txt), one packet
// a line: the captures sfu's tests replay.
func TestBrowserVP9SVC(t *testing.T) {
	testBrowserSVC(t, browserContext(t), "VP9", 23150)
}

// The same in AV1, whose layers the dependency descriptor tells: this
// Chromium offers the extension only when told to (a field trial).
func TestBrowserAV1SVC(t *testing.T) {
	path := chromiumPath(t)
	dir := t.TempDir()
	opts := chromiumOptions(path, filepath.Join(dir, "profile"), "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		chromedp.Flag("force-fieldtrials", "WebRTC-DependencyDescriptorAdvertised/Enabled/"))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	testBrowserSVC(t, ctx, "AV1", 23160)
}

func testBrowserSVC(t *testing.T, browserCtx context.Context, codec string, ports int) {
	srv := startMedia(t, loopbackConfig(ports, ports+9, svcCodecs))
	mime := "video/" + codec
	teacher := openPageIn(t, browserCtx, srv.URL+"/?room=svc&name=Teacher&autojoin=1&adaptive=0&codec="+codec, "teacher")
	teacherID := inRoom(t, teacher)
	student := openPageIn(t, browserCtx, srv.URL+"/?room=svc&name=Student&autojoin=1&adaptive=0", "student")

	// One stream for the camera, encoding at the captured size.
	waitFor(t, 20*time.Second, "the camera sent as one "+codec+" stream", func() bool {
		n, ok := 0, false
		for _, out := range teacher.stats().Outbound {
			if out.Source == "video:cam" {
				n++
				ok = strings.EqualFold(out.Codec, mime) && out.FramesEncoded > 0 && out.FrameHeight >= 480
			}
		}
		return n == 1 && ok
	})
	if dir := os.Getenv("VCLASS_CAPTURE_SVC"); dir != "" {
		captureSVC(t, srv.WS, mime, filepath.Join(dir, strings.ToLower(codec)+"_l3t3_key.txt"))
	}

	// A Go participant watches every layer: the teacher goes on encoding
	// all three (no dynacast) while the student moves between them.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	watcher, _, err := client.DialRoom(ctx, client.Options{URL: srv.WS, DisplayName: "watcher"}, "svc", func(c *client.Client) {
		c.OnTrack(func(rt *client.RemoteTrack) {
			for {
				if _, _, err := rt.Track.ReadRTP(); err != nil {
					return
				}
			}
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(watcher.Close)
	// encoded is the largest layer's height the teacher encodes now
	// (Chromium lowers it when the machine is busy).
	encoded := func() float64 {
		for _, out := range teacher.stats().Outbound {
			if out.Source == "video:cam" {
				return out.FrameHeight
			}
		}
		return 0
	}

	inbound := func() (consumer, codec string, height, frames float64) {
		for _, in := range student.stats().Inbound {
			if in.PeerID == teacherID && in.Source == "video:cam" {
				return in.ConsumerID, in.Codec, in.FrameHeight, in.FramesDecoded
			}
		}
		return "", "", 0, 0
	}
	var consumer, got string
	var top float64
	waitFor(t, 20*time.Second, "the student decoding the largest spatial layer", func() bool {
		var frames float64
		consumer, got, top, frames = inbound()
		return frames > 0 && top >= 480
	})
	if !strings.EqualFold(got, mime) {
		t.Fatalf("the student decodes %s, want %s", got, mime)
	}
	for _, step := range []struct {
		layer int
		div   float64 // the layer's height is the largest's over div
	}{{1, 2}, {0, 4}, {2, 1}} {
		if err := student.eval(fmt.Sprintf(`window.vclass.client.setPreferredLayers(%q, %d).then(() => true)`, consumer, step.layer), nil); err != nil {
			t.Fatalf("setPreferredLayers %d: %v", step.layer, err)
		}
		_, _, _, before := inbound()
		var h, want float64
		defer func() {
			if t.Failed() {
				t.Logf("layer %d: last %.0f lines decoded, want %.0f", step.layer, h, want)
			}
		}()
		waitFor(t, 20*time.Second, fmt.Sprintf("frames of 1/%.0f the largest layer's height after asking for layer %d", step.div, step.layer), func() bool {
			var frames float64
			_, _, h, frames = inbound()
			want = encoded() / step.div
			return h >= want-1 && h <= want+1 && frames > before+20
		})
		t.Logf("layer %d: %.0f lines (the teacher's largest %.0f)", step.layer, h, want*step.div)
	}
}

// captureSVC joins the room of the only publisher on ws as a Go client and
// writes 8 s of the camera it receives in mime to path: sequence number,
// timestamp, marker, packet size, the first 32 bytes of payload (the
// descriptor and then some) in hex and the dependency descriptor in hex
// ("-" for none), a packet a line (the server's probe padding left out).
func captureSVC(t *testing.T, ws, mime, path string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{URL: ws, DisplayName: "capture"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan *client.RemoteTrack, 4)
	c.OnTrack(func(rt *client.RemoteTrack) {
		if strings.EqualFold(rt.Track.Codec().MimeType, mime) {
			got <- rt
			return
		}
		go func() { // read, so that its packets count as received
			for {
				if _, _, err := rt.Track.ReadRTP(); err != nil {
					return
				}
			}
		}()
	})
	if _, err := c.JoinRoom(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s L3T3_KEY from Chromium's fake camera, as forwarded with every layer: seq ts marker size payload[:32] dependency-descriptor\n", mime)
	var rt *client.RemoteTrack
	select {
	case rt = <-got:
	case <-ctx.Done():
		t.Fatal("capture: no " + mime + " track")
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
		dd := "-"
		for _, ext := range rt.Receiver.GetParameters().HeaderExtensions {
			if v := p.GetExtension(uint8(ext.ID)); ext.URI == client.DependencyDescriptorURI && len(v) > 0 {
				dd = fmt.Sprintf("%x", v)
			}
		}
		fmt.Fprintf(&b, "%d %d %d %d %x %s\n", p.SequenceNumber, p.Timestamp, marker, p.MarshalSize(), p.Payload[:min(32, len(p.Payload))], dd)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("captured to %s", path)
}

// AV1 asked for (codec=AV1) from a Chromium that does not offer the
// dependency descriptor (its default): the server could not tell an SVC
// stream's layers apart, and this Chromium sends no AV1 simulcast, so the
// camera goes out as one plain AV1 stream, which a student decodes whole
// at 720 lines.
func TestBrowserAV1WithoutDescriptor(t *testing.T) {
	srv := startMedia(t, loopbackConfig(23230, 23239, svcCodecs))
	teacher := openPage(t, srv.URL+"/?room=av1&name=Teacher&autojoin=1&adaptive=0&codec=AV1", "teacher")
	teacherID := inRoom(t, teacher)
	student := openPage(t, srv.URL+"/?room=av1&name=Student&autojoin=1&adaptive=0", "student")
	waitFor(t, 20*time.Second, "the teacher sending one plain AV1 stream", func() bool {
		n, plain := 0, false
		for _, o := range teacher.stats().Outbound {
			if o.Source == "video:cam" && o.FramesEncoded > 0 {
				n++
				plain = strings.EqualFold(o.Codec, "video/AV1") && o.RID == "" && !strings.HasPrefix(o.ScalabilityMode, "L3")
			}
		}
		return n == 1 && plain
	})
	waitFor(t, 20*time.Second, "the student decoding the teacher in AV1 at 720 lines", func() bool {
		in := cameraOf(student, teacherID)
		return in.height == 720 && in.frames > 20
	})
	for _, in := range student.stats().Inbound {
		if in.PeerID == teacherID && in.Source == "video:cam" && !strings.EqualFold(in.Codec, "video/AV1") {
			t.Errorf("the student receives %s, want AV1", in.Codec)
		}
	}
}
