package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/vclass/vclass/auth"
)

// Invite mode in Chromium: a student's camera reaches nobody until the
// teacher invites; a raised hand reaches the teacher's page; after the
// invite the teacher decodes it; after deinvite it is gone.
func TestBrowserInviteMode(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	cfg := strings.Replace(strings.Replace(loopbackConfig(22560, 22569, ""), `"ServeMode": "Open"`, `"ServeMode": "Invite"`, 1),
		`"AllowEmptyTickets": true`, `"AllowEmptyTickets": false, "Secret": "`+secret+`"`, 1)
	srv := startMedia(t, cfg)
	ticket := func(sub, name string, role auth.Role) string {
		tk, err := auth.Mint(secret, auth.Claims{Room: "lesson", Name: name, Role: role, RegisteredClaims: jwt.RegisteredClaims{Subject: sub}}, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	teacher := openPage(t, classURL(srv, "lesson", "x", "&ticket="+ticket("t", "Teacher", auth.RoleAdmin)), "teacher")
	student := openPage(t, classURL(srv, "lesson", "x", "&cam=0&mic=0&ticket="+ticket("s", "Student", auth.RoleNormal)), "student")
	waitFor(t, 15*time.Second, "both joined", func() bool { return teacher.peerID() != "" && student.peerID() != "" })
	sid := student.peerID()

	// The teacher's camera reaches the student; nothing goes the other way.
	waitFor(t, 20*time.Second, "the student decoding the teacher", func() bool {
		frames, _ := student.stats().inboundFrom(teacher.peerID(), "video:cam")
		return frames > 10
	})
	if frames, _ := teacher.stats().inboundFrom(sid, "video:cam"); frames > 0 {
		t.Fatalf("the teacher decodes %v frames of an uninvited student", frames)
	}

	if err := student.click(`[data-action="raise-hand"]`); err != nil {
		t.Fatalf("raise hand: %v", err)
	}
	waitFor(t, 10*time.Second, "the raised hand on the teacher's page", func() bool {
		var n string
		_ = teacher.eval(`document.body.dataset.raisedHands || "0"`, &n)
		return n == "1"
	})

	if err := teacher.click(`[data-action="invite"][data-peer-id="` + sid + `"]`); err != nil {
		t.Fatalf("invite: %v", err)
	}
	waitFor(t, 20*time.Second, "the teacher decoding the invited student", func() bool {
		frames, _ := teacher.stats().inboundFrom(sid, "video:cam")
		return frames > 10
	})

	// The teacher mutes the student's microphone: its audio stops for everyone.
	waitFor(t, 10*time.Second, "the teacher hearing the student", func() bool {
		_, energy := teacher.stats().inboundFrom(sid, "audio:mic")
		return energy > 0
	})
	if err := teacher.click(`[data-action="mute"][data-peer-id="` + sid + `"]`); err != nil {
		t.Fatalf("mute: %v", err)
	}
	// The fake microphone beeps about once a second: unchanged energy over
	// 2 s means no audio, not a pause between beeps.
	last, stable := -1.0, 0
	waitFor(t, 15*time.Second, "the student's audio energy to stop growing at the teacher", func() bool {
		_, energy := teacher.stats().inboundFrom(sid, "audio:mic")
		if energy == last {
			stable++
		} else {
			stable = 0
		}
		last = energy
		time.Sleep(500 * time.Millisecond) // samples half a second apart
		return stable >= 4
	})

	if err := teacher.click(`[data-action="deinvite"][data-peer-id="` + sid + `"]`); err != nil {
		t.Fatalf("deinvite: %v", err)
	}
	waitFor(t, 10*time.Second, "the student's camera gone from the teacher's page", func() bool {
		for _, in := range teacher.stats().Inbound {
			if in.PeerID == sid && in.Source == "video:cam" {
				return false
			}
		}
		return true
	})
}
