package room

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/config"
	"github.com/vclass/vclass/sfu"
)

// speakerThreshold is the smoothed audio level (dBov, lower is louder)
// under which a peer counts as speaking: mediasoup's AudioLevelObserver
// default of -80 dBov, which the product used.
const speakerThreshold = 80

var errRoomClosed = errors.New("room: closed")

// Room is one class: its peers and the media flowing between them. One
// lock guards the room's peers, producers and consumers.
type Room struct {
	id        string
	mode      config.ServeMode
	settings  Settings
	m         *Manager
	created   time.Time
	waitUntil time.Time // a room made ahead of time is kept empty until then

	mu         sync.Mutex
	peers      map[string]*Peer
	closed     bool
	emptySince time.Time
	speaker    string
	quality    map[string]PeerQuality // the grades last told, by peer id
	stop       chan struct{}
	recorders  int // recorders in the room: while there is one, the class is being recorded

	// recMu keeps the recording notifications in order (tellRecording).
	recMu sync.Mutex
}

func newRoom(m *Manager, id string, s Settings, wait time.Duration) *Room {
	now := time.Now()
	return &Room{
		id: id, mode: s.ServeMode, settings: s, m: m, created: now, waitUntil: now.Add(wait),
		peers: map[string]*Peer{}, emptySince: now, stop: make(chan struct{}),
	}
}

// Settings are the room's rules.
func (r *Room) Settings() Settings { return r.settings }

// ID is the room's name.
func (r *Room) ID() string { return r.id }

// Mode is the room's ServeMode.
func (r *Room) Mode() config.ServeMode { return r.mode }

// maxPeers is the lower of the room's own limit and the node's (0: none).
func (r *Room) maxPeers() int {
	own, node := r.settings.MaxPeers, r.m.params.MaxPeersPerRoom
	if own == 0 || (node > 0 && node < own) {
		return node
	}
	return own
}

func (r *Room) join(p PeerParams) (*Peer, []PeerInfo, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, nil, errRoomClosed
	}
	if max := r.maxPeers(); max > 0 && p.Role != auth.RoleRecorder && r.visiblePeersLocked(p.UserID) >= max {
		r.mu.Unlock()
		return nil, nil, fmt.Errorf("%w: %d peers at most", ErrRoomFull, max)
	}
	peer := newPeer(r, p)
	// One live connection per user per room: the newest wins.
	var replaced *Peer
	others := make([]*Peer, 0, len(r.peers))
	for _, o := range r.peers {
		if p.UserID != "" && o.userID == p.UserID {
			replaced = o
			continue
		}
		others = append(others, o)
	}
	infos := make([]PeerInfo, 0, len(others))
	for _, o := range others {
		if o.visible() {
			infos = append(infos, peer.seen(o.infoLocked()))
		}
	}
	r.peers[peer.id] = peer
	if peer.visible() {
		r.emptySince = time.Time{}
	} else {
		r.recorders++
	}
	peer.recording = r.recorders > 0
	info := peer.infoLocked()
	r.mu.Unlock()
	if !peer.visible() {
		r.tellRecording()
	}
	if replaced != nil {
		replaced.notify("disconnect", map[string]string{"reason": "replaced"})
		replaced.leave("replaced")
		replaced.sink().Close()
	}
	if peer.visible() {
		for _, o := range others {
			o.notify("peerJoinRoom", o.seen(info))
		}
	}
	r.m.log.Info("peer joined", "room", r.id, "peer", peer.id, "name", p.DisplayName)
	r.m.emit(Event{Kind: "peerJoined", Room: r.id, PeerID: peer.id, DisplayName: p.DisplayName, Role: string(p.Role)})
	return peer, infos, nil
}

// tellRecording tells each visible peer whether the class is being
// recorded, when that changed from what it was last told (or saw in its
// joinRoom response). One at a time, so that what a peer is told last is
// the room's state.
func (r *Room) tellRecording() {
	r.recMu.Lock()
	defer r.recMu.Unlock()
	r.mu.Lock()
	active := r.recorders > 0
	var told []*Peer
	for _, p := range r.peers {
		if p.visible() && p.recording != active {
			p.recording = active
			told = append(told, p)
		}
	}
	r.mu.Unlock()
	for _, p := range told {
		p.notify("recording", map[string]bool{"active": active})
	}
}

// visiblePeersLocked counts the peers that count against MaxPeers, but
// the one the user of userID would replace.
func (r *Room) visiblePeersLocked(userID string) int {
	n := 0
	for _, o := range r.peers {
		if o.visible() && (userID == "" || o.userID != userID) {
			n++
		}
	}
	return n
}

// peerListLocked copies the peers so that they can be called without the lock.
func (r *Room) peerListLocked() []*Peer {
	out := make([]*Peer, 0, len(r.peers))
	for _, p := range r.peers {
		out = append(out, p)
	}
	return out
}

// broadcast notifies every peer but except (which may be nil).
func (r *Room) broadcast(except *Peer, method string, data any) {
	r.mu.Lock()
	peers := r.peerListLocked()
	r.mu.Unlock()
	for _, p := range peers {
		if p != except {
			p.notify(method, data)
		}
	}
}

// run watches the active speaker and the peers' network quality, and
// closes the room when it stayed empty.
func (r *Room) run() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	quality := time.NewTicker(qualityEvery)
	defer quality.Stop()
	scores := map[*Peer]*peerScore{}
	for {
		select {
		case <-r.stop:
			return
		case <-quality.C:
			r.updateQuality(scores)
			continue
		case <-t.C:
		}
		r.updateSpeaker()
		r.mu.Lock()
		expired := r.visibleCountLocked() == 0 && !r.emptySince.IsZero() && time.Since(r.emptySince) >= r.m.params.EmptyGrace &&
			time.Now().After(r.waitUntil)
		r.mu.Unlock()
		if expired {
			r.m.closeIfEmpty(r)
		}
	}
}

// closeIfEmpty marks the room closed if it has no visible peer and returns
// the invisible ones (recorders) still in it; the manager holds its lock so
// that no join races in.
func (r *Room) closeIfEmpty() (bool, []*Peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.visibleCountLocked() > 0 || r.closed {
		return false, nil
	}
	r.closed = true
	close(r.stop)
	return true, r.peerListLocked()
}

// visibleCountLocked counts the peers others see.
func (r *Room) visibleCountLocked() int {
	n := 0
	for _, p := range r.peers {
		if p.visible() {
			n++
		}
	}
	return n
}

// close makes every peer leave with reason and ends the room.
func (r *Room) close(reason string) {
	r.mu.Lock()
	// Closed in the same step as the list is taken: no join slips in after.
	if !r.closed {
		r.closed = true
		close(r.stop)
	}
	peers := r.peerListLocked()
	r.mu.Unlock()
	for _, p := range peers {
		p.notify("disconnect", map[string]string{"reason": reason})
		p.leave(reason)
		p.sink().Close()
	}
}

func (r *Room) updateSpeaker() {
	r.mu.Lock()
	best, bestLevel := "", float64(speakerThreshold)
	for _, p := range r.peers {
		for _, prod := range p.producers {
			if prod.up == nil || prod.paused || prod.kind != "audio" {
				continue
			}
			if l := prod.up.AudioLevel(); l < bestLevel {
				best, bestLevel = p.id, l
			}
		}
	}
	changed := best != r.speaker
	old := r.speaker
	r.speaker = best
	if changed {
		// The speaker's video goes before the rest when a link is short.
		for _, id := range []string{old, best} {
			if peer := r.peers[id]; peer != nil {
				for _, prod := range peer.producers {
					for c := range prod.consumers {
						c.down.SetPriority(r.priorityLocked(prod))
					}
				}
			}
		}
	}
	r.mu.Unlock()
	if !changed {
		return
	}
	data := map[string]any{"peerId": nil, "volume": -127}
	if best != "" {
		data = map[string]any{"peerId": best, "volume": -int(bestLevel)}
	}
	r.broadcast(nil, "activeSpeaker", data)
}

// priorityLocked is prod's share of a subscriber's bandwidth: screen
// shares and the teacher's media first, then the active speaker's.
func (r *Room) priorityLocked(prod *Producer) int {
	switch {
	case prod.source == "video:screen" || prod.peer.role == auth.RoleAdmin:
		return sfu.PriorityHigh
	case prod.peer.id == r.speaker:
		return sfu.PrioritySpeaker
	}
	return sfu.PriorityNormal
}

func (r *Room) counts() (peers, producers, consumers int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.peers {
		peers++
		producers += len(p.producers)
		consumers += len(p.consumers)
	}
	return
}

// Created is when the room was made.
func (r *Room) Created() time.Time { return r.created }

// Kick makes peer id leave, telling it why; false when it is not here.
func (r *Room) Kick(id, reason string) bool {
	r.mu.Lock()
	p := r.peers[id]
	r.mu.Unlock()
	if p == nil {
		return false
	}
	p.notify("disconnect", map[string]string{"reason": reason})
	p.leave(reason)
	p.sink().Close()
	return true
}

// producerOf is peer id's producer of source, or nil.
func (r *Room) producerOf(id, source string) (*Peer, *Producer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.peers[id]
	if p == nil {
		return nil, nil
	}
	for _, prod := range p.producers {
		if prod.source == source {
			return p, prod
		}
	}
	return p, nil
}

// CloseSource ends peer id's producer of source (everyone, the peer too,
// gets producerClosed). It reports whether there was one.
func (r *Room) CloseSource(id, source string) bool {
	p, prod := r.producerOf(id, source)
	if prod == nil {
		return false
	}
	p.closeProducer(prod, "closedByPortal")
	return true
}

// MuteSource pauses or resumes peer id's producer of source for everyone
// receiving it, and tells the peer (producerPaused / producerResumed).
func (r *Room) MuteSource(id, source string, muted bool) bool {
	return r.muteSource(id, source, muted, "portal")
}

func (r *Room) muteSource(id, source string, muted bool, by string) bool {
	p, prod := r.producerOf(id, source)
	if prod == nil {
		return false
	}
	if err := p.SetProducerPaused(prod.id, muted); err != nil {
		return false
	}
	method := "producerResumed"
	if muted {
		method = "producerPaused"
	}
	p.notify(method, map[string]any{"producerId": prod.id, "source": source, "by": by})
	return true
}

// Peers describes the peers, for the API.
func (r *Room) Peers() []PeerInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]PeerInfo, 0, len(r.peers))
	for _, p := range r.peers {
		out = append(out, p.infoLocked())
	}
	return out
}
