package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A codec list with a single video codec (and a single audio codec) makes
// the browser send exactly that, and the other browser decode it.
func TestBrowserSendsTheOnlyConfiguredCodec(t *testing.T) {
	tests := []struct {
		name, codecs, wantVideo, wantAudio string
	}{
		{"H264 and PCMA", `[
			{"Kind": "audio", "MimeType": "audio/PCMA", "ClockRate": 8000, "Channels": 1},
			{"Kind": "video", "MimeType": "video/H264", "ClockRate": 90000,
			 "Parameters": {"packetization-mode": 1, "profile-level-id": "42e01f", "level-asymmetry-allowed": 1}}]`,
			"video/H264", "audio/PCMA"},
		{"VP9", `[
			{"Kind": "audio", "MimeType": "audio/opus", "ClockRate": 48000, "Channels": 2},
			{"Kind": "video", "MimeType": "video/VP9", "ClockRate": 90000, "Parameters": {"profile-id": 0}}]`,
			"video/VP9", "audio/opus"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo := 22600 + 20*i
			srv := startMedia(t, loopbackConfig(lo, lo+9, tt.codecs))
			room := fmt.Sprintf("codec-%d", i)
			a := openPage(t, classURL(srv, room, "a", ""), "a")
			b := openPage(t, classURL(srv, room, "b", ""), "b")
			waitFor(t, 15*time.Second, "both joined", func() bool { return a.peerID() != "" && b.peerID() != "" })
			aID := a.peerID()
			waitFor(t, 20*time.Second, "a sending "+tt.wantVideo, func() bool {
				for _, o := range a.stats().Outbound {
					if o.Kind == "video" && strings.EqualFold(o.Codec, tt.wantVideo) && o.PacketsSent > 0 {
						return true
					}
				}
				return false
			})
			waitFor(t, 20*time.Second, "b decoding "+tt.wantVideo+" and hearing "+tt.wantAudio, func() bool {
				var video, audio bool
				for _, in := range b.stats().Inbound {
					if in.PeerID != aID {
						continue
					}
					video = video || in.Kind == "video" && strings.EqualFold(in.Codec, tt.wantVideo) && in.FramesDecoded > 10
					audio = audio || in.Kind == "audio" && strings.EqualFold(in.Codec, tt.wantAudio) && in.TotalAudioEnergy > 0
				}
				return video && audio
			})
			for _, o := range a.stats().Outbound {
				if want := map[string]string{"video": tt.wantVideo, "audio": tt.wantAudio}[o.Kind]; !strings.EqualFold(o.Codec, want) {
					t.Errorf("a sends %s with %s, want %s", o.Kind, o.Codec, want)
				}
			}
		})
	}
}
