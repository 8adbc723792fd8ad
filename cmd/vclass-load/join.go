package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/client"
)

// measureJoins times n joins, one after another (-join-gap apart), each a fresh client in
// the room the publishers are in: from dialing to the answer of joinRoom,
// to the first packet of a camera, and to the end of its first frame (the
// packet with the marker bit: the server starts a new subscriber at a
// keyframe, so that frame decodes).
func measureJoins(ctx context.Context, o options, n int, out io.Writer) error {
	var joined, connected, firstPacket, firstFrame []time.Duration
	for i := range n {
		var mu sync.Mutex
		var ice, packet, frame time.Duration
		done := make(chan struct{})
		t0 := time.Now()
		c, err := client.Dial(ctx, client.Options{URL: o.url, DisplayName: fmt.Sprintf("joiner%d", i),
			OnICEState: func(transport string, state webrtc.ICEConnectionState) {
				mu.Lock()
				defer mu.Unlock()
				if transport == "recv" && state == webrtc.ICEConnectionStateConnected && ice == 0 {
					ice = time.Since(t0)
				}
			}})
		if err != nil {
			return err
		}
		c.OnTrack(func(rt *client.RemoteTrack) {
			if !strings.HasPrefix(rt.Source, "video") {
				_ = rt.ReceiveInfo(func(client.PacketInfo) {})
				return
			}
			_ = rt.ReceiveInfo(func(p client.PacketInfo) {
				mu.Lock()
				defer mu.Unlock()
				if packet == 0 {
					packet = p.Arrival.Sub(t0)
				}
				if p.Marker && frame == 0 {
					frame = p.Arrival.Sub(t0)
					close(done)
				}
			})
		})
		if _, err := c.JoinRoom(ctx, o.room); err != nil {
			c.Close()
			return err
		}
		joined = append(joined, time.Since(t0))
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.Close()
			return fmt.Errorf("join %d: no camera frame within 10 s", i)
		case <-ctx.Done():
			c.Close()
			return ctx.Err()
		}
		mu.Lock()
		firstPacket, firstFrame = append(firstPacket, packet), append(firstFrame, frame)
		connected = append(connected, ice)
		mu.Unlock()
		c.Close()
		// Apart by more than the server's keyframe throttle (one request
		// a layer per 500 ms): a join that comes sooner after another
		// waits up to that long more for its first keyframe.
		if i < n-1 {
			if err := sleep(ctx, o.joinGap); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(out, "joins %d, from dialing: joinRoom answered %s; receive transport connected (ICE) %s; first camera packet %s; first camera frame %s\n",
		n, spread(joined), spread(connected), spread(firstPacket), spread(firstFrame))
	return nil
}

// spread is a sample's median and extremes.
func spread(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	r := func(x time.Duration) string { return x.Round(100 * time.Microsecond).String() }
	return fmt.Sprintf("p50 %s (min %s, max %s)", r(s[len(s)/2]), r(s[0]), r(s[len(s)-1]))
}
