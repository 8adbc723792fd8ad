package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/client"
)

// participant is a Go client that publishes synthetic audio and video and
// counts what it receives, per source of each remote peer.
type participant struct {
	c        *client.Client
	mu       sync.Mutex
	received map[string]*atomic.Int64 // peerId/source -> packets
}

func (p *participant) count(key string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := p.received[key]; n != nil {
		return n.Load()
	}
	return 0
}

// track counts the packets c receives, by peer and source.
func (p *participant) track(c *client.Client) { c.OnTrack(p.onTrack) }

func (p *participant) onTrack(rt *client.RemoteTrack) {
	key := rt.PeerID + "/" + rt.Source
	n := &atomic.Int64{}
	p.mu.Lock()
	p.received[key] = n
	p.mu.Unlock()
	for {
		if _, _, err := rt.Track.ReadRTP(); err != nil {
			return
		}
		n.Add(1)
	}
}

func joinParticipant(t *testing.T, ctx context.Context, wsURL, roomID, name string, publish bool) *participant {
	t.Helper()
	c, err := client.Dial(ctx, client.Options{URL: wsURL, DisplayName: name, Sources: []string{"audio:mic", "video:cam"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p := &participant{c: c, received: map[string]*atomic.Int64{}}
	p.track(c)
	if _, err := c.JoinRoom(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	if publish {
		publishSynthetic(t, ctx, c, name)
	}
	return p
}

func publishSynthetic(t *testing.T, ctx context.Context, c *client.Client, name string) {
	t.Helper()
	if _, err := c.Publish(ctx, syntheticTracks(t, ctx, name)...); err != nil {
		t.Fatal(err)
	}
}

// syntheticTracks are a camera and a microphone playing synthetic media
// until ctx ends.
func syntheticTracks(t *testing.T, ctx context.Context, name string) []client.LocalTrack {
	t.Helper()
	return syntheticTracksOf(t, ctx, name, client.SyntheticVP8(30, 2500, 60))
}

// syntheticTracksOf are a camera playing src and a microphone.
func syntheticTracksOf(t *testing.T, ctx context.Context, name string, src *client.SyntheticVideo) []client.LocalTrack {
	t.Helper()
	video, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "cam", name)
	if err != nil {
		t.Fatal(err)
	}
	audio, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", name)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = client.Play(ctx, video, src) }()
	go func() { _ = client.Play(ctx, audio, client.SyntheticOpus()) }()
	return []client.LocalTrack{
		{Track: video, Source: "video:cam", OnKeyframeRequest: src.RequestKeyframe},
		{Track: audio, Source: "audio:mic"},
	}
}

// Three Go clients in one room each receive the other two's audio and video.
func TestGoClientsExchangeMedia(t *testing.T) {
	srv := startMedia(t, loopbackConfig(31000, 31099, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var ps []*participant
	for i := range 3 {
		ps = append(ps, joinParticipant(t, ctx, srv.WS, "class-1", fmt.Sprintf("p%d", i), true))
	}
	for i, p := range ps {
		for j, o := range ps {
			if i == j {
				continue
			}
			for _, src := range []string{"audio:mic", "video:cam"} {
				key := o.c.PeerID + "/" + src
				waitFor(t, 15*time.Second, fmt.Sprintf("p%d receiving %s of p%d", i, src, j), func() bool { return p.count(key) > 20 })
			}
		}
	}
	if _, body := srv.get(t, "/metrics"); !containsMetric(body, "vclass_peers 3") {
		t.Errorf("metrics do not show 3 peers:\n%s", body)
	}
}

// A publish the server refuses takes nothing with it: the same connection
// then publishes what it may, and it reaches the others, both on a send
// transport not negotiated yet and on one already carrying a track.
func TestRefusedPublishLeavesClientUsable(t *testing.T) {
	srv := startMedia(t, loopbackConfig(27440, 27449, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ann, err := client.Dial(ctx, client.Options{URL: srv.WS, DisplayName: "Ann", Sources: []string{"audio:mic", "video:screen"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ann.Close()
	if _, err := ann.JoinRoom(ctx, "refused-publish"); err != nil {
		t.Fatal(err)
	}
	bob := joinParticipant(t, ctx, srv.WS, "refused-publish", "Bob", false)
	cam := func() client.LocalTrack { return syntheticTracks(t, ctx, "Ann")[0] } // video:cam, not declared
	refused := func(when string) {
		t.Helper()
		var se *client.ServerError
		if _, err := ann.Publish(ctx, cam()); !errors.As(err, &se) || se.Code != "sourceNotAllowed" {
			t.Fatalf("%s: publishing an undeclared camera: %v, want sourceNotAllowed", when, err)
		}
	}
	refused("first")
	if _, err := ann.Publish(ctx, syntheticTracks(t, ctx, "Ann")[1]); err != nil {
		t.Fatalf("publishing the microphone after the refusal: %v", err)
	}
	waitFor(t, 10*time.Second, "Bob receiving Ann's microphone", func() bool { return bob.count(ann.PeerID+"/audio:mic") > 20 })

	refused("with the microphone on")
	screen := cam()
	screen.Source = "video:screen"
	if _, err := ann.Publish(ctx, screen); err != nil {
		t.Fatalf("publishing the screen after the second refusal: %v", err)
	}
	waitFor(t, 10*time.Second, "Bob receiving Ann's screen", func() bool { return bob.count(ann.PeerID+"/video:screen") > 20 })
	before := bob.count(ann.PeerID + "/audio:mic")
	waitFor(t, 5*time.Second, "the microphone still flowing", func() bool { return bob.count(ann.PeerID+"/audio:mic") > before+20 })
}

// A track read with Receive takes the direct path (decrypted off the
// socket, read at ticks with ReceiveEvery) and loses nothing: its
// sequence numbers run on without a gap, and the arrival times are the
// kernel's, not the tick's.
func TestGoClientReceivesDirect(t *testing.T) {
	srv := startMedia(t, loopbackConfig(27270, 27279, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	joinParticipant(t, ctx, srv.WS, "direct", "Ann", true)
	type video struct {
		mu       sync.Mutex
		rt       *client.RemoteTrack
		seqs     []uint16
		arrivals map[time.Time]bool
	}
	v := &video{arrivals: map[time.Time]bool{}}
	c, err := client.Dial(ctx, client.Options{URL: srv.WS, DisplayName: "Bob", ReceiveEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.OnTrack(func(rt *client.RemoteTrack) {
		if rt.Source != "video:cam" {
			go func() { _ = rt.Receive(func([]byte, time.Time) {}) }()
			return
		}
		v.mu.Lock()
		v.rt = rt
		v.mu.Unlock()
		_ = rt.Receive(func(p []byte, at time.Time) {
			v.mu.Lock()
			defer v.mu.Unlock()
			v.seqs = append(v.seqs, uint16(p[2])<<8|uint16(p[3]))
			v.arrivals[at] = true
		})
	})
	if _, err := c.JoinRoom(ctx, "direct"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "Bob's video to go direct", func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		return v.rt != nil && v.rt.Direct()
	})
	waitFor(t, 10*time.Second, "150 packets of Bob's video", func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		return len(v.seqs) >= 150
	})
	v.mu.Lock()
	defer v.mu.Unlock()
	// The first packets, which Pion read, may be handed on just after the
	// first direct ones: in order of their numbers, none is missing.
	offsets := make([]int, len(v.seqs))
	for i, s := range v.seqs {
		offsets[i] = int(int16(s - v.seqs[0]))
	}
	slices.Sort(offsets)
	for i := 1; i < len(offsets); i++ {
		if offsets[i] != offsets[i-1]+1 {
			t.Fatalf("sequence numbers %d and then %d after the first", offsets[i-1], offsets[i])
		}
	}
	// At 20 ms ticks a 30 fps camera's frames arrive a few to a tick; had
	// they the tick's time, there would be at most 50 times a second.
	if len(v.arrivals) < len(v.seqs)*2/3 {
		t.Errorf("%d packets arrived at %d distinct times", len(v.seqs), len(v.arrivals))
	}
}
