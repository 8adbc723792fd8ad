package room

import (
	"testing"

	"github.com/vclass/vclass/config"
)

func TestServeModeRules(t *testing.T) {
	t.Parallel()
	teacher := &Peer{id: "teacher", sources: []string{"audio:mic", "video:cam"}}
	student := &Peer{id: "student", sources: []string{"audio:mic"}}
	cam := &Producer{id: "cam", source: "video:cam", kind: "video", peer: teacher}

	publish := []struct {
		mode   config.ServeMode
		peer   *Peer
		source string
		want   bool
	}{
		{config.ServeOpen, teacher, "video:cam", true},
		{config.ServeOpen, student, "audio:mic", true},
		{config.ServeOpen, student, "video:cam", false}, // not declared
		{config.ServeOpen, student, "video:screen", false},
		{config.ServePull, teacher, "video:cam", true},
		{config.ServePull, student, "video:cam", false},
	}
	for _, tt := range publish {
		if got := mayPublish(tt.mode, tt.peer, tt.source); got != tt.want {
			t.Errorf("mayPublish(%s, %s, %s) = %v, want %v", tt.mode, tt.peer.id, tt.source, got, tt.want)
		}
	}

	subscribe := []struct {
		mode config.ServeMode
		sub  *Peer
		want bool
	}{
		{config.ServeOpen, student, true},
		{config.ServeOpen, teacher, false}, // never one's own producer
		{config.ServePull, student, false}, // only on request
		{config.ServePull, teacher, false},
	}
	for _, tt := range subscribe {
		if got := autoSubscribe(tt.mode, tt.sub, cam); got != tt.want {
			t.Errorf("autoSubscribe(%s, %s, teacher's cam) = %v, want %v", tt.mode, tt.sub.id, got, tt.want)
		}
	}
}
