package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/client"
)

// A participant that publishes a synthetic camera and stays in its room:
// if its node dies, the session comes back through the entry URL (the
// cluster sends it to the room's new node) and publishes again.
func ExampleSession() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	s := client.NewSession(client.Options{
		URL:         "wss://wt-vclass.local/ws",
		DisplayName: "Ann",
		Sources:     []string{"video:cam"},
	}, "math-101")
	s.OnTrack(func(t *client.RemoteTrack) {
		for {
			if _, _, err := t.Track.ReadRTP(); err != nil {
				return // ended: its peer left, or this connection was replaced
			}
		}
	})
	s.OnStateChange(func(ev client.SessionEvent) {
		fmt.Println(ev.State, ev.Reason, ev.URL)
	})
	if _, err := s.Join(ctx, client.SessionOptions{}); err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	cam, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "cam", "ann")
	src := client.SyntheticVP8(30, 1200, 60)
	if _, err := s.Publish(ctx, client.LocalTrack{Track: cam, Source: "video:cam", OnKeyframeRequest: src.RequestKeyframe}); err != nil {
		log.Fatal(err)
	}
	go func() { _ = client.Play(ctx, cam, src) }()

	select {
	case <-s.Done():
		log.Print("session ended: ", s.Err())
	case <-ctx.Done():
	}
}
