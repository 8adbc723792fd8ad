// Package icecand holds a transport's remote ICE candidates until the
// description they belong to is applied, for the server and the Go client
// alike.
//
// Candidates trickle on their own path, so one may arrive before its
// description: before the first, and during an ICE restart, when a
// candidate of the new generation (new credentials) can come before the
// offer or answer that brings them. Pion drops such a candidate without an
// error, and a restart whose candidates were all dropped stays checking.
package icecand

import (
	"errors"
	"strings"
	"sync"

	"github.com/pion/ice/v4"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Max bounds the candidates held at once (a browser gathers a handful per
// generation).
const Max = 64

// ErrTooMany refuses a candidate beyond Max held ones.
var ErrTooMany = errors.New("too many ICE candidates before their description")

// Queue passes candidates to a peer connection, holding those whose
// description has not been applied yet.
type Queue struct {
	mu      sync.Mutex
	pc      *webrtc.PeerConnection
	pending []webrtc.ICECandidateInit
}

// Bind gives the queue its peer connection; what it holds waits for Flush.
func (q *Queue) Bind(pc *webrtc.PeerConnection) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pc = pc
}

// Reset unbinds the queue and forgets what it held (the transport is gone).
func (q *Queue) Reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pc, q.pending = nil, nil
}

// Add applies c now if its description is applied, else holds it.
func (q *Queue) Add(c webrtc.ICECandidateInit) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pc != nil && applies(q.pc, c) {
		return q.pc.AddICECandidate(c)
	}
	if len(q.pending) >= Max {
		return ErrTooMany
	}
	q.pending = append(q.pending, c)
	return nil
}

// Flush is called after a remote description was applied: it applies the
// candidates held for it. Those of another generation are dropped (older
// ones: a candidate never waits for more than the next description).
func (q *Queue) Flush() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pc == nil {
		return
	}
	for _, c := range q.pending {
		if applies(q.pc, c) {
			_ = q.pc.AddICECandidate(c)
		}
	}
	q.pending = nil
}

// applies tells whether pc's remote description is c's: there is one, and
// c names no username fragment or one the description has.
func applies(pc *webrtc.PeerConnection, c webrtc.ICECandidateInit) bool {
	rd := pc.RemoteDescription()
	if rd == nil {
		return false
	}
	ufrag := ufragOf(c)
	if ufrag == "" {
		return true
	}
	// Parsed here: rd is Pion's own, and its Unmarshal would write it.
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(rd.SDP); err != nil {
		return true // Pion decides
	}
	if u, ok := parsed.Attribute("ice-ufrag"); ok && u == ufrag {
		return true
	}
	for _, m := range parsed.MediaDescriptions {
		if u, ok := m.Attribute("ice-ufrag"); ok && u == ufrag {
			return true
		}
	}
	return false
}

// ufragOf is the username fragment c belongs to: its usernameFragment, or
// the ufrag extension of its candidate line ("" when it names none).
func ufragOf(c webrtc.ICECandidateInit) string {
	if c.UsernameFragment != nil && *c.UsernameFragment != "" {
		return *c.UsernameFragment
	}
	line := strings.TrimPrefix(c.Candidate, "candidate:")
	if line == "" {
		return ""
	}
	cand, err := ice.UnmarshalCandidate(line)
	if err != nil {
		return ""
	}
	if ext, ok := cand.GetExtension("ufrag"); ok {
		return ext.Value
	}
	return ""
}
