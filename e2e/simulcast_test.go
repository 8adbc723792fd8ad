package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/client"
)

// simulcastPublisher publishes a camera of three synthetic VP8 layers whose
// frames differ in size (the layer a subscriber gets shows in its bytes);
// stop ends one layer's stream.
type simulcastPublisher struct {
	stop [3]context.CancelFunc
}

var layerFrameBytes = [3]int{300, 1200, 4000}

func publishSimulcast(t *testing.T, ctx context.Context, c *client.Client) *simulcastPublisher {
	t.Helper()
	sp := &simulcastPublisher{}
	var tracks [3]*webrtc.TrackLocalStaticSample
	var srcs [3]*client.SyntheticVideo
	for i, rid := range []string{"l", "m", "h"} {
		tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "cam", "simulcast", webrtc.WithRTPStreamID(rid))
		if err != nil {
			t.Fatal(err)
		}
		tracks[i], srcs[i] = tr, client.SyntheticVP8(30, layerFrameBytes[i], 90).WithSize(320<<i, 180<<i)
		layerCtx, cancel := context.WithCancel(ctx)
		sp.stop[i] = cancel
		go func() { _ = client.Play(layerCtx, tr, srcs[i]) }()
	}
	_, err := c.Publish(ctx, client.LocalTrack{
		Track: tracks[0], Source: "video:cam", OnKeyframeRequest: srcs[0].RequestKeyframe,
		Layers: []client.SimulcastLayer{
			{Track: tracks[1], OnKeyframeRequest: srcs[1].RequestKeyframe},
			{Track: tracks[2], OnKeyframeRequest: srcs[2].RequestKeyframe},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// frameMeter measures the size of the frames a track carries and checks
// that its sequence numbers have no hole: a number never received, once
// 50 later ones have come (a packet lost on the way and resent comes out
// of order, which is no hole).
type frameMeter struct {
	mu        sync.Mutex
	frame     int // bytes of the frame being received
	lastFrame int // bytes of the last complete frame
	packets   int
	seen      map[uint64]bool // extended sequence numbers received
	first     uint64
	highest   uint64
}

func (m *frameMeter) read(rt *client.RemoteTrack) {
	for {
		pkt, _, err := rt.Track.ReadRTP()
		if err != nil {
			return
		}
		m.mu.Lock()
		if m.packets == 0 {
			m.seen = map[uint64]bool{}
			m.first, m.highest = 1<<32+uint64(pkt.SequenceNumber), 1<<32+uint64(pkt.SequenceNumber)
		}
		// The extended number nearest the highest so far.
		ext := m.highest + uint64(int64(int16(pkt.SequenceNumber-uint16(m.highest))))
		m.seen[ext] = true
		m.highest = max(m.highest, ext)
		m.packets++
		if len(pkt.Payload) == 0 {
			m.mu.Unlock()
			continue // padding: the server probing the link
		}
		m.frame += len(pkt.Payload) - vp8DescriptorSize(pkt.Payload)
		if pkt.Marker {
			m.lastFrame, m.frame = m.frame, 0
		}
		m.mu.Unlock()
	}
}

// vp8DescriptorSize is the length of a VP8 payload descriptor (RFC 7741).
func vp8DescriptorSize(p []byte) int {
	if len(p) < 2 || p[0]&0x80 == 0 {
		return 1
	}
	n := 2
	if p[1]&0x80 != 0 { // I
		n++
		if len(p) > 2 && p[2]&0x80 != 0 { // M: 15-bit picture ID
			n++
		}
	}
	if p[1]&0x40 != 0 { // L
		n++
	}
	if p[1]&0x30 != 0 { // T or K
		n++
	}
	return n
}

func (m *frameMeter) state() (lastFrame, packets, holes int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for ext := m.first; ext+50 < m.highest; ext++ {
		if !m.seen[ext] {
			holes++
		}
	}
	return m.lastFrame, m.packets, holes
}

// A Go client publishes three simulcast layers. A subscriber gets the
// largest by default, the one it asks for with setConsumerPreferredLayers,
// hears of each switch, and is moved down when the publisher stops sending
// its layer; its sequence numbers run on without a gap throughout.
func TestGoSimulcastLayers(t *testing.T) {
	srv := startMedia(t, loopbackConfig(23120, 23129, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub, sub := teacherAndPupil(t, ctx, srv.WS, "simulcast")
	var mu sync.Mutex
	var consumerID string
	var layers []int
	var newConsumer map[string]any
	sub.On("consumerLayersChanged", func(data json.RawMessage) {
		var n struct {
			SpatialLayer int `json:"spatialLayer"`
		}
		_ = json.Unmarshal(data, &n)
		mu.Lock()
		layers = append(layers, n.SpatialLayer)
		mu.Unlock()
	})
	sub.On("newConsumer", func(data json.RawMessage) {
		mu.Lock()
		_ = json.Unmarshal(data, &newConsumer)
		mu.Unlock()
	})
	meter := &frameMeter{}
	sub.OnTrack(func(rt *client.RemoteTrack) {
		mu.Lock()
		consumerID = rt.ConsumerID
		mu.Unlock()
		meter.read(rt)
	})
	if _, err := sub.JoinRoom(ctx, "simulcast"); err != nil {
		t.Fatal(err)
	}
	sp := publishSimulcast(t, ctx, pub)

	receiving := func(what string, frameBytes int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			f, packets, _ := meter.state()
			if f == frameBytes {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: frames of %d bytes after %d packets, want %d", what, f, packets, frameBytes)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	receiving("the largest layer by default", layerFrameBytes[2])
	mu.Lock()
	if got := fmt.Sprint(newConsumer["layers"]); got != "[map[rid:l spatialLayer:0] map[rid:m spatialLayer:1] map[rid:h spatialLayer:2]]" {
		t.Errorf("newConsumer layers %s, want l, m, h", got)
	}
	id := consumerID
	mu.Unlock()

	for _, want := range []int{0, 1, 2} {
		if err := sub.Request(ctx, "setConsumerPreferredLayers", map[string]any{"consumerId": id, "spatialLayer": want}, nil); err != nil {
			t.Fatal(err)
		}
		receiving(fmt.Sprintf("layer %d once preferred", want), layerFrameBytes[want])
	}
	// The publisher stops its largest layer (as a browser does when its
	// uplink shrinks): the subscriber falls back to the middle one.
	sp.stop[2]()
	receiving("the middle layer once the largest stopped", layerFrameBytes[1])

	mu.Lock()
	got := fmt.Sprint(layers)
	mu.Unlock()
	// Before the largest layer's first keyframe the subscriber may have
	// started on a smaller one: only the end of the list is certain.
	if want := "[0 1 2 1]"; len(got) < len(want) || got[len(got)-len(want)+1:] != want[1:] {
		t.Errorf("consumerLayersChanged %s, want it to end with %s", got, want)
	}
	if _, packets, holes := meter.state(); holes != 0 {
		t.Errorf("%d holes in the sequence numbers of %d packets across the switches", holes, packets)
	}
	var se *client.ServerError
	if err := sub.Request(ctx, "setConsumerPreferredLayers", map[string]any{"consumerId": id, "spatialLayer": 3}, nil); err == nil || !asServerError(err, &se) || se.Code != "badRequest" {
		t.Errorf("spatialLayer 3: %v, want badRequest", err)
	}
	if err := sub.Request(ctx, "setConsumerPreferredLayers", map[string]any{"consumerId": "nope", "spatialLayer": 0}, nil); err == nil || !asServerError(err, &se) || se.Code != "unknownConsumer" {
		t.Errorf("unknown consumer: %v, want unknownConsumer", err)
	}
}

func asServerError(err error, se **client.ServerError) bool { return errors.As(err, se) }

// teacherAndPupil dials two Go clients: a teacher in room who may publish
// a camera, and a pupil not in it yet (it sets its handlers first). Both
// close when the test ends.
func teacherAndPupil(t *testing.T, ctx context.Context, wsURL, room string) (pub, sub *client.Client) {
	t.Helper()
	pub, err := client.Dial(ctx, client.Options{URL: wsURL, DisplayName: "teacher", Sources: []string{"video:cam"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	if _, err := pub.JoinRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	sub, err = client.Dial(ctx, client.Options{URL: wsURL, DisplayName: "pupil"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return pub, sub
}

// Adaptive stream: a subscriber that says how large it shows a video gets
// the smallest layer that covers it (the layers' sizes read from their
// keyframes), the largest when it says nothing, and nothing while the
// video is hidden; with no gap in the sequence numbers throughout.
func TestGoAdaptiveStream(t *testing.T) {
	srv := startMedia(t, loopbackConfig(23170, 23179, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub, sub := teacherAndPupil(t, ctx, srv.WS, "adaptive")
	meter := &frameMeter{}
	ids := make(chan string, 1)
	sub.OnTrack(func(rt *client.RemoteTrack) {
		ids <- rt.ConsumerID
		meter.read(rt)
	})
	if _, err := sub.JoinRoom(ctx, "adaptive"); err != nil {
		t.Fatal(err)
	}
	publishSimulcast(t, ctx, pub)
	var id string
	select {
	case id = <-ids:
	case <-ctx.Done():
		t.Fatal("no track")
	}
	view := func(w, h int, visible bool) {
		t.Helper()
		if err := sub.Request(ctx, "setConsumerView", map[string]any{"consumerId": id, "width": w, "height": h, "visible": visible}, nil); err != nil {
			t.Fatalf("setConsumerView %dx%d %v: %v", w, h, visible, err)
		}
	}
	receiving := func(what string, frameBytes int) {
		t.Helper()
		waitFor(t, 10*time.Second, what, func() bool { f, _, _ := meter.state(); return f == frameBytes })
	}
	receiving("the largest layer before any view is said", layerFrameBytes[2])
	for _, step := range []struct {
		w, h, layer int
	}{{600, 330, 1}, {200, 112, 0}, {1000, 560, 2}, {340, 190, 0}, {0, 0, 2}} {
		view(step.w, step.h, true)
		receiving(fmt.Sprintf("layer %d for a %dx%d view", step.layer, step.w, step.h), layerFrameBytes[step.layer])
	}
	view(320, 180, false)
	// What was on its way has come once no packet came for 200 ms.
	last, since := -1, time.Now()
	waitFor(t, 5*time.Second, "packets to stop once the view is hidden", func() bool {
		if _, n, _ := meter.state(); n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) >= 200*time.Millisecond
	})
	_, before, _ := meter.state()
	time.Sleep(time.Second) // hidden for a while: a duration, not an event
	if _, after, _ := meter.state(); after != before {
		t.Errorf("%d packets arrived in a second while the view was hidden", after-before)
	}
	view(320, 180, true)
	receiving("the smallest layer once shown again at 320x180", layerFrameBytes[0])
	if _, packets, holes := meter.state(); holes != 0 {
		t.Errorf("%d holes in the sequence numbers of %d packets", holes, packets)
	}
	var se *client.ServerError
	if err := sub.Request(ctx, "setConsumerView", map[string]any{"consumerId": id, "width": -1, "height": 10}, nil); err == nil || !asServerError(err, &se) || se.Code != "badRequest" {
		t.Errorf("a negative width: %v, want badRequest", err)
	}
	if err := sub.Request(ctx, "setConsumerView", map[string]any{"consumerId": "nope", "width": 10, "height": 10}, nil); err == nil || !asServerError(err, &se) || se.Code != "unknownConsumer" {
		t.Errorf("unknown consumer: %v, want unknownConsumer", err)
	}
}

// The recorder gets the largest layer; when the publisher stops it, the
// recording goes on with the middle one, and the manifest (and the API)
// say when the camera's file switched.
func TestRecordingNotesLayerSwitches(t *testing.T) {
	parallel(t)
	media := startMedia(t, loopbackConfig(23160, 23169, ""), "VCLASS_AUTH_SECRET="+testSecret)
	rec := startRecorder(t, "", recorderConfig(oneClient(2, false)), media)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub, err := client.Dial(ctx, client.Options{URL: media.WS, DisplayName: "Tess", Sources: []string{"video:cam"}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if _, err := pub.JoinRoom(ctx, "layers"); err != nil {
		t.Fatal(err)
	}
	sp := publishSimulcast(t, ctx, pub)
	job := rec.start(t, "user1", "user1", "layers")
	rec.waitState(t, "user1", "user1", job.ID, "recording", 15*time.Second)
	began := time.Now()
	time.Sleep(3 * time.Second) // the largest layer recorded for a while
	sp.stop[2]()
	stopped := time.Since(began).Seconds()
	time.Sleep(3 * time.Second) // and then the middle one
	rec.call(t, "POST", "/api/v1/recordings/"+job.ID+"/stop", "user1", "user1", nil, nil)
	done := rec.waitState(t, "user1", "user1", job.ID, "done", 60*time.Second)
	var man recording
	data, err := os.ReadFile(filepath.Join(rec.Dir, "records", job.ID, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &man); err != nil {
		t.Fatal(err)
	}
	for _, r := range []recording{man, done} {
		found := false
		for _, f := range r.Files {
			if f.Name != "Tess.webm" {
				continue
			}
			found = true
			if n := len(f.Layers); n < 2 || f.Layers[0].At > 0.5 || f.Layers[0].SpatialLayer != 2 || f.Layers[n-1].SpatialLayer != 1 {
				t.Fatalf("Tess.webm layers %+v, want layer 2 from the start, then a switch to layer 1:\n%s", f.Layers, data)
			}
			// The switch comes once the largest layer is found stopped
			// (within a second or two) and the middle one's keyframe is in.
			last := f.Layers[len(f.Layers)-1]
			if at := last.At + f.Offset; at < stopped || at > stopped+3 {
				t.Errorf("Tess.webm switched to layer 1 %.2f s into the recording, want soon after %.2f s (layer 2 stopped); layers %+v", at, stopped, f.Layers)
			}
		}
		if !found {
			t.Fatalf("no Tess.webm in %+v", r.Files)
		}
	}
}
