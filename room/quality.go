package room

import (
	"math"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/sfu"
)

// Network quality thresholds, all in one place. Loss as LiveKit grades
// its connection quality: a couple of percent is where calls stop being
// excellent, over ten percent video breaks up. Round trips after ITU-T
// G.114: talk suffers beyond 150 ms one way, and 400 ms one way is the
// most it allows for planning.
const (
	fairLoss = 0.025
	poorLoss = 0.10
	fairRTT  = 300 * time.Millisecond
	poorRTT  = 800 * time.Millisecond
	// A grade gets worse as soon as a measure crosses its threshold (the
	// loss is already over a few seconds), better only when the measures
	// stayed under betterMargin of it for betterChecks checks in a row:
	// the indicator does not flap around a threshold.
	betterMargin = 0.8
	betterChecks = 2
)

// qualityEvery is how often the room grades its peers' links.
const qualityEvery = 2 * time.Second

// grade is a link's network quality; the zero grade is not measured.
type grade uint8

const (
	gradeNone grade = iota
	gradePoor
	gradeFair
	gradeGood
)

func (g grade) String() string {
	switch g {
	case gradePoor:
		return "poor"
	case gradeFair:
		return "fair"
	case gradeGood:
		return "good"
	}
	return ""
}

// gradeLink grades one transport's link, its thresholds scaled by margin
// (1, or betterMargin to grade better); gradeNone while it connects.
func gradeLink(q sfu.LinkQuality, margin float64) grade {
	switch q.State {
	case webrtc.PeerConnectionStateConnected:
	case webrtc.PeerConnectionStateDisconnected, webrtc.PeerConnectionStateFailed:
		return gradePoor
	default:
		return gradeNone
	}
	loss := 0.0
	if q.Measured {
		loss = q.Loss
	}
	rtt := float64(q.RTT)
	switch {
	case q.Paused || loss >= poorLoss*margin || rtt >= float64(poorRTT)*margin:
		return gradePoor
	case q.Limited || loss >= fairLoss*margin || rtt >= float64(fairRTT)*margin:
		return gradeFair
	}
	return gradeGood
}

// linkScore is one link's grade with its memory.
type linkScore struct {
	grade  grade
	better int // checks in a row that measured better, with the margin
}

// update takes a check's measures and returns the grade now.
func (s *linkScore) update(q *sfu.LinkQuality) grade {
	if q == nil {
		*s = linkScore{}
		return gradeNone
	}
	plain, strict := gradeLink(*q, 1), gradeLink(*q, betterMargin)
	switch {
	case plain == gradeNone || s.grade == gradeNone || plain < s.grade:
		*s = linkScore{grade: plain}
	case strict > s.grade:
		s.better++
		if s.better >= betterChecks {
			*s = linkScore{grade: strict}
		}
	default:
		s.better = 0
	}
	return s.grade
}

// peerScore grades one peer's upload (its send transport) and download
// (its receive transport). It belongs to the room's run goroutine.
type peerScore struct {
	upload, download linkScore
}

// PeerQuality is one peer's network quality in connectionQuality
// (docs/protocol.md).
type PeerQuality struct {
	PeerID string `json:"peerId"`
	// Quality is the worse of Upload and Download.
	Quality  string `json:"quality"`
	Upload   string `json:"upload,omitempty"`
	Download string `json:"download,omitempty"`
	// LossPercent is the higher loss of the two directions, RTTMs the
	// longer round trip of the two transports.
	LossPercent float64 `json:"lossPercent"`
	RTTMs       int     `json:"rttMs"`
}

// sameGrades reports whether q and o show the same grades (the measures
// alone changing is no news).
func (q PeerQuality) sameGrades(o PeerQuality) bool {
	return q.Quality == o.Quality && q.Upload == o.Upload && q.Download == o.Download
}

// update grades a check's measures of the peer id's send and receive
// transports (nil: it has none); false when neither is graded.
func (s *peerScore) update(id string, up, down *sfu.LinkQuality) (PeerQuality, bool) {
	u, d := s.upload.update(up), s.download.update(down)
	overall := max(u, d)
	if u != gradeNone && d != gradeNone {
		overall = min(u, d)
	}
	if overall == gradeNone {
		return PeerQuality{}, false
	}
	q := PeerQuality{PeerID: id, Quality: overall.String(), Upload: u.String(), Download: d.String()}
	var loss float64
	var rtt time.Duration
	for _, l := range []*sfu.LinkQuality{up, down} {
		if l != nil && l.Measured {
			loss = max(loss, l.Loss)
		}
		if l != nil {
			rtt = max(rtt, l.RTT)
		}
	}
	q.LossPercent = math.Round(loss*1000) / 10
	q.RTTMs = int(rtt.Milliseconds())
	return q, true
}

// linkQualities measures the peer's transports (nil: it has none).
func (p *Peer) linkQualities() (up, down *sfu.LinkQuality) {
	p.transportMu.Lock()
	pub, sub := p.pub, p.sub
	p.transportMu.Unlock()
	if pub != nil {
		q := pub.Quality()
		up = &q
	}
	if sub != nil {
		q := sub.Quality()
		down = &q
	}
	return up, down
}

// updateQuality grades the visible peers' links and tells every peer of
// the grades that changed. scores is the run goroutine's own memory.
func (r *Room) updateQuality(scores map[*Peer]*peerScore) {
	r.mu.Lock()
	peers := make([]*Peer, 0, len(r.peers))
	for _, p := range r.peers {
		if p.visible() && !p.left {
			peers = append(peers, p)
		}
	}
	r.mu.Unlock()
	graded := make(map[string]PeerQuality, len(peers))
	seen := make(map[*Peer]bool, len(peers))
	for _, p := range peers {
		seen[p] = true
		s := scores[p]
		if s == nil {
			s = &peerScore{}
			scores[p] = s
		}
		up, down := p.linkQualities() // calls into Pion: without the room's lock
		if q, ok := s.update(p.id, up, down); ok {
			graded[p.id] = q
		}
	}
	for p := range scores {
		if !seen[p] {
			delete(scores, p)
		}
	}
	var changed []PeerQuality
	r.mu.Lock()
	for id, q := range graded {
		if old, ok := r.quality[id]; !ok || !old.sameGrades(q) {
			changed = append(changed, q)
		}
	}
	r.quality = graded
	r.mu.Unlock()
	if len(changed) > 0 {
		r.broadcast(nil, "connectionQuality", map[string]any{"peers": changed})
	}
}

// qualitiesLocked lists the last grades of the peers still in the room,
// for a peer that starts or comes back (it missed the changes).
func (r *Room) qualitiesLocked() []PeerQuality {
	var out []PeerQuality
	for id, q := range r.quality {
		if o := r.peers[id]; o != nil && !o.left {
			out = append(out, q)
		}
	}
	return out
}

// notifyQualities tells p the room's last grades, if any.
func (p *Peer) notifyQualities() {
	r := p.room
	r.mu.Lock()
	list := r.qualitiesLocked()
	r.mu.Unlock()
	if len(list) > 0 {
		p.notify("connectionQuality", map[string]any{"peers": list})
	}
}
