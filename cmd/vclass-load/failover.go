package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/client"
)

// member is one session of the failover run: it publishes synthetic video
// and notes when it last heard each other peer's camera.
type member struct {
	s          *client.Session
	mu         sync.Mutex
	last       map[string]*atomic.Int64 // remote peer id -> unix ns of its last video packet
	down       atomic.Int64             // unix ns of the first "reconnecting", 0 before
	reconnects atomic.Int32
}

func (m *member) onTrack(rt *client.RemoteTrack) {
	if rt.Source != "video:cam" {
		return
	}
	t := &atomic.Int64{}
	m.mu.Lock()
	m.last[rt.PeerID] = t
	m.mu.Unlock()
	for {
		if _, _, err := rt.Track.ReadRTP(); err != nil {
			return
		}
		t.Store(time.Now().UnixNano())
	}
}

// heard reports whether a video packet of peer came after since.
func (m *member) heard(peer string, since int64) bool {
	m.mu.Lock()
	t := m.last[peer]
	m.mu.Unlock()
	return t != nil && t.Load() > since
}

// receiving reports whether every member of a room hears every other's
// camera, as it is now (its peer id), after since.
func receiving(room []*member, since int64) bool {
	for _, a := range room {
		for _, b := range room {
			if a != b && !a.heard(b.s.Client().PeerID, since) {
				return false
			}
		}
	}
	return true
}

// runFailover puts rooms of sessions on a cluster, waits until everyone
// receives everyone, says "ready" (the caller then kills a node), and
// measures, for each room disrupted, the time from its first session
// losing its connection to every session receiving every other again.
func runFailover(ctx context.Context, o options, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, o.duration+3*time.Minute)
	defer cancel()
	entries := strings.Split(o.url, ",")
	rooms := make([][]*member, o.rooms)
	var wg sync.WaitGroup
	playCtx, stopPlaying := context.WithCancel(ctx)
	defer func() {
		for _, room := range rooms {
			for _, m := range room {
				m.s.Close()
			}
		}
		stopPlaying()
		wg.Wait()
	}()
	for i := range o.rooms * o.perRoom {
		entry := i % len(entries)
		more := slices.Concat(entries[entry+1:], entries[:entry])
		name := fmt.Sprintf("p%d", i)
		m := &member{last: map[string]*atomic.Int64{}}
		m.s = client.NewSession(client.Options{URL: entries[entry], DisplayName: name, Sources: []string{"video:cam"}},
			fmt.Sprintf("%s-%d", o.room, i/o.perRoom))
		m.s.OnTrack(m.onTrack)
		m.s.OnStateChange(func(ev client.SessionEvent) {
			switch ev.State {
			case "reconnecting":
				m.down.CompareAndSwap(0, time.Now().UnixNano())
			case "reconnected":
				m.reconnects.Add(1)
			}
		})
		if _, err := m.s.Join(ctx, client.SessionOptions{MoreURLs: more}); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		rooms[i/o.perRoom] = append(rooms[i/o.perRoom], m)
		track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "cam", name)
		if err != nil {
			return err
		}
		src := client.SyntheticVP8(o.fps, o.frameBytes, 2*o.fps)
		if _, err := m.s.Publish(ctx, client.LocalTrack{Track: track, Source: "video:cam", OnKeyframeRequest: src.RequestKeyframe}); err != nil {
			return fmt.Errorf("%s: publish: %w", name, err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = client.Play(playCtx, track, src) }()
	}
	if err := poll(ctx, time.Minute, func() bool {
		for _, room := range rooms {
			if !receiving(room, 0) {
				return false
			}
		}
		return true
	}); err != nil {
		return errors.New("not every session received every other within a minute")
	}
	nodes := map[string]int{}
	for _, room := range rooms {
		nodes[room[0].s.Client().URL()]++
	}
	fmt.Fprintf(out, "ready: %d rooms of %d sessions, rooms per node %v; kill a node now\n", o.rooms, o.perRoom, nodes)

	// Each disrupted room's recovery, once it has one.
	recovered := make([]time.Duration, o.rooms)
	deadline := time.Now().Add(o.duration)
	_ = poll(ctx, o.duration, func() bool {
		pending, disrupted := 0, 0
		for i, room := range rooms {
			var first int64
			for _, m := range room {
				if d := m.down.Load(); d != 0 && (first == 0 || d < first) {
					first = d
				}
			}
			if first == 0 {
				continue
			}
			disrupted++
			if recovered[i] == 0 && receiving(room, first) {
				recovered[i] = time.Since(time.Unix(0, first))
			}
			if recovered[i] == 0 {
				pending++
			}
		}
		// Done once some room was hit and every room hit is back (or at
		// the deadline).
		return disrupted > 0 && pending == 0
	})
	var times []time.Duration
	disrupted, reconnects, ended := 0, 0, 0
	for i, room := range rooms {
		hit := false
		for _, m := range room {
			hit = hit || m.down.Load() != 0
			reconnects += int(m.reconnects.Load())
			select {
			case <-m.s.Done():
				ended++
			default:
			}
		}
		if hit {
			disrupted++
			if recovered[i] > 0 {
				times = append(times, recovered[i])
			}
		}
	}
	slices.Sort(times)
	fmt.Fprintf(out, "rooms disrupted %d of %d, back %d; sessions reconnected %d, ended %d\n", disrupted, o.rooms, len(times), reconnects, ended)
	if len(times) > 0 {
		fmt.Fprintf(out, "time until every session of a room receives every other again: min %.1f s, median %.1f s, max %.1f s\n",
			times[0].Seconds(), times[len(times)/2].Seconds(), times[len(times)-1].Seconds())
	}
	if disrupted == 0 && time.Now().After(deadline) {
		return errors.New("no room was disrupted: was a node killed?")
	}
	if len(times) < disrupted {
		return fmt.Errorf("%d disrupted rooms did not come back within %v", disrupted-len(times), o.duration)
	}
	return nil
}

// poll checks cond every 50 ms until it holds or d has passed.
func poll(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}
