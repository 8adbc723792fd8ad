package room

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/sfu"
)

// Sink reaches a peer's client. Notify queues a message and never blocks;
// Close ends the client's connection.
type Sink interface {
	Notify(method string, data any)
	Close()
}

// Peer is one participant of a room.
type Peer struct {
	id          string
	room        *Room
	displayName string
	role        auth.Role
	userID      string
	sources     []string
	joined      time.Time
	log         *slog.Logger
	sinkBox     atomic.Pointer[sinkHolder]

	// guarded by room.mu
	producers map[string]*Producer
	consumers map[string]*Consumer
	started   bool // Start was called: the client knows it is in the room
	left      bool
	recording bool            // what the peer was last told of the room's recording (Room.tellRecording)
	pulled    map[string]bool // Pull mode: "peerId/source" this peer asked for
	invited   map[string]bool // Invite mode: sources an admin invited this peer to publish

	transportMu sync.Mutex // guards pub and sub creation
	// produceMu makes negotiations of the send transport one at a time
	// (two connections of one peer may overlap in a resume); outermost.
	produceMu   sync.Mutex
	pub         *sfu.Publisher
	sub         *sfu.Subscriber
	consumerTag sync.Map // consumer id -> *Consumer, read by the offer callback without locks
}

type sinkHolder struct{ Sink }

// Producer is a source a peer publishes.
type Producer struct {
	id, source, kind, mid string
	peer                  *Peer
	up                    *sfu.UpTrack // nil until the first packet arrives
	rids                  []string     // simulcast layers, smallest first (none: one stream)
	paused                bool
	consumers             map[*Consumer]struct{}
	// invited: it used up an invitation (Invite mode). unconfirmed: a
	// repeated produce listed it, so its client reported the publish as
	// failed; closing it gives the invitation back.
	invited, unconfirmed bool
}

// Consumer is a producer received by another peer.
type Consumer struct {
	id       string
	producer *Producer
	peer     *Peer
	down     *sfu.DownTrack
	paused   bool // by its own peer
}

// PeerInfo describes a peer to other peers and to the API.
type PeerInfo struct {
	PeerID      string    `json:"peerId"`
	Role        auth.Role `json:"role,omitempty"`
	DisplayName string    `json:"displayName"`
	// UserID is the ticket's user (sub): told to recorders (which file a
	// participant's media by it) and the portal API, not to other peers.
	UserID    string         `json:"userId,omitempty"`
	Sources   []string       `json:"sources"`
	Producers []ProducerInfo `json:"producers"`
	Joined    time.Time      `json:"joined"`
}

// ProducerInfo describes a producer.
type ProducerInfo struct {
	ProducerID string      `json:"producerId"`
	Mid        string      `json:"mid,omitempty"`
	Source     string      `json:"source"`
	Kind       string      `json:"kind"`
	Paused     bool        `json:"paused"`
	Layers     []LayerInfo `json:"layers,omitempty"`
}

// LayerInfo is one simulcast layer of a producer.
type LayerInfo struct {
	SpatialLayer int    `json:"spatialLayer"`
	RID          string `json:"rid"`
}

// withLayers adds a simulcast producer's layers to a notification.
func withLayers(note map[string]any, rids []string) map[string]any {
	if layers := layerInfos(rids); layers != nil {
		note["layers"] = layers
	}
	return note
}

func layerInfos(rids []string) []LayerInfo {
	if len(rids) < 2 {
		return nil
	}
	out := make([]LayerInfo, 0, len(rids))
	for i, rid := range rids[:min(len(rids), sfu.MaxLayers)] {
		out = append(out, LayerInfo{SpatialLayer: i, RID: rid})
	}
	return out
}

func newPeer(r *Room, p PeerParams) *Peer {
	id := p.ID
	if id == "" {
		id = newID()
	}
	peer := &Peer{
		id: id, room: r, displayName: p.DisplayName, role: p.Role, userID: p.UserID, sources: p.Sources, joined: time.Now(),
		producers: map[string]*Producer{}, consumers: map[string]*Consumer{},
		pulled: map[string]bool{}, invited: map[string]bool{},
	}
	peer.log = r.m.log.With("room", r.id, "peer", peer.id)
	peer.sinkBox.Store(&sinkHolder{p.Sink})
	return peer
}

// ID is the peer's id.
func (p *Peer) ID() string { return p.id }

// DisplayName is the name the peer joined with.
func (p *Peer) DisplayName() string { return p.displayName }

// Sources are the sources the peer declared.
func (p *Peer) Sources() []string { return p.sources }

// Room is the peer's room.
func (p *Peer) Room() *Room { return p.room }

// SetSink points the peer at a new client connection (after a reconnect),
// and tells it again which simulcast layers its producers need encode
// and the room's network qualities (a layersWanted or connectionQuality
// sent while it was away is lost).
func (p *Peer) SetSink(s Sink) {
	p.sinkBox.Store(&sinkHolder{s})
	r := p.room
	if r == nil {
		return
	}
	r.mu.Lock()
	var ups []*sfu.UpTrack
	for _, prod := range p.producers {
		if prod.up != nil && prod.up.Layered() {
			ups = append(ups, prod.up)
		}
	}
	r.mu.Unlock()
	for _, up := range ups {
		up.TellWantedLayer()
	}
	p.notifyQualities()
}

func (p *Peer) sink() Sink { return p.sinkBox.Load().Sink }

func (p *Peer) notify(method string, data any) { p.sink().Notify(method, data) }

func (p *Peer) declares(source string) bool { return slices.Contains(p.sources, source) }

// visible reports whether other peers see p: the recorder is invisible.
func (p *Peer) visible() bool { return p.role != auth.RoleRecorder }

func (p *Peer) infoLocked() PeerInfo {
	info := PeerInfo{PeerID: p.id, DisplayName: p.displayName, Role: p.role, UserID: p.userID, Sources: p.sources, Joined: p.joined, Producers: []ProducerInfo{}}
	for _, prod := range p.producers {
		info.Producers = append(info.Producers, prod.info())
	}
	return info
}

func (prod *Producer) info() ProducerInfo {
	return ProducerInfo{ProducerID: prod.id, Mid: prod.mid, Source: prod.source, Kind: prod.kind, Paused: prod.paused, Layers: layerInfos(prod.rids)}
}

// seen is info as p may see it: a user id for recorders only.
func (p *Peer) seen(info PeerInfo) PeerInfo {
	if p.role != auth.RoleRecorder {
		info.UserID = ""
	}
	return info
}

// Recording reports whether the class is being recorded (a recorder is in
// the room), as the peer was last told: its joinRoom response carries it,
// a `recording` notification sent since is newer.
func (p *Peer) Recording() bool {
	p.room.mu.Lock()
	defer p.room.mu.Unlock()
	return p.recording
}

// Others describes the other peers of the room.
func (p *Peer) Others() []PeerInfo {
	r := p.room
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]PeerInfo, 0, len(r.peers))
	for _, o := range r.peers {
		if o != p && o.visible() {
			out = append(out, p.seen(o.infoLocked()))
		}
	}
	return out
}

// Start subscribes the peer to what its room's rules give it, and tells
// it the room's network qualities; the signaling layer calls it once the
// client knows it is in the room.
func (p *Peer) Start() {
	r := p.room
	r.mu.Lock()
	if p.left || p.started {
		r.mu.Unlock()
		return
	}
	p.started = true
	for _, o := range r.peers {
		for _, prod := range o.producers {
			if autoSubscribe(r.mode, p, prod) {
				p.consumeLocked(prod)
			}
		}
	}
	r.mu.Unlock()
	p.notifyQualities()
}

// ProduceRequest names the source sent on one new m-line.
type ProduceRequest struct {
	Mid    string `json:"mid"`
	Source string `json:"source"`
}

// Produce applies the client's offer for its send transport and registers
// a producer for each new m-line named in reqs.
func (p *Peer) Produce(offer string, reqs []ProduceRequest) (string, []ProducerInfo, error) {
	p.produceMu.Lock()
	defer p.produceMu.Unlock()
	sections, err := sfu.OfferedSections(offer)
	if err != nil {
		return "", nil, err
	}
	created, err := p.addProducers(sections, reqs)
	if err != nil {
		return "", nil, err
	}
	pub, err := p.publisher()
	if err == nil {
		var answer string
		var accepted []sfu.MediaSection
		answer, accepted, err = pub.Negotiate(offer)
		if err == nil {
			created = p.dropRejected(created, accepted)
			infos := make([]ProducerInfo, 0, len(created))
			for _, prod := range created {
				infos = append(infos, prod.info())
				p.room.broadcast(p, "newProducer", withLayers(map[string]any{
					"peerId": p.id, "producerId": prod.id, "source": prod.source, "kind": prod.kind,
				}, prod.rids))
			}
			return answer, infos, nil
		}
	}
	r := p.room
	r.mu.Lock()
	for _, prod := range created {
		delete(p.producers, prod.id)
	}
	r.mu.Unlock()
	return "", nil, err
}

// ProduceAgain applies an offer sent again because the answer to its
// produce was lost (docs/protocol.md, produce with repeat): it creates
// nothing, and lists the producers of reqs' m-lines and sources that are
// open, which the lost answer would have listed. Their client closes them;
// an invitation one used up is then given back.
func (p *Peer) ProduceAgain(offer string, reqs []ProduceRequest) (string, []ProducerInfo, error) {
	p.produceMu.Lock()
	defer p.produceMu.Unlock()
	if _, err := sfu.OfferedSections(offer); err != nil {
		return "", nil, err
	}
	pub, err := p.publisher()
	if err != nil {
		return "", nil, err
	}
	answer, _, err := pub.Negotiate(offer)
	if err != nil {
		return "", nil, err
	}
	r := p.room
	r.mu.Lock()
	defer r.mu.Unlock()
	infos := []ProducerInfo{}
	for _, prod := range p.producers { // each once, however often reqs name it
		if slices.Contains(reqs, ProduceRequest{Mid: prod.mid, Source: prod.source}) {
			prod.unconfirmed = true
			infos = append(infos, prod.info())
		}
	}
	return answer, infos, nil
}

// dropRejected removes the producers whose m-line the answer did not accept
// (a codec we do not take, say): they would never get media.
func (p *Peer) dropRejected(created []*Producer, accepted []sfu.MediaSection) []*Producer {
	ok := map[string]bool{}
	for _, s := range accepted {
		ok[s.Mid] = true
	}
	kept := created[:0]
	r := p.room
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, prod := range created {
		if ok[prod.mid] {
			kept = append(kept, prod)
		} else {
			delete(p.producers, prod.id)
		}
	}
	return kept
}

func (p *Peer) addProducers(sections []sfu.MediaSection, reqs []ProduceRequest) ([]*Producer, error) {
	kinds := map[string]string{}
	rids := map[string][]string{}
	for _, s := range sections {
		kinds[s.Mid] = s.Kind.String()
		rids[s.Mid] = s.RIDs
	}
	r := p.room
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.left {
		return nil, ErrLeft
	}
	// Check every request before creating anything: a refusal leaves no
	// producer behind.
	for i, req := range reqs {
		kind, _, ok := strings.Cut(req.Source, ":")
		if !ok || (kind != "audio" && kind != "video") {
			return nil, fmt.Errorf("%w: source %q is not kind:name", ErrBadRequest, req.Source)
		}
		if kinds[req.Mid] != kind {
			return nil, fmt.Errorf("%w: mid %q is not a sending %s m-line of the offer", ErrBadRequest, req.Mid, kind)
		}
		if !mayPublish(r.mode, p, req.Source) {
			return nil, fmt.Errorf("%w: %s", ErrSourceNotAllowed, req.Source)
		}
		for _, prod := range p.producers {
			if prod.source == req.Source {
				return nil, fmt.Errorf("%w: %s", ErrSourceBusy, req.Source)
			}
			if prod.mid == req.Mid {
				return nil, fmt.Errorf("%w: mid %q already carries %s", ErrBadRequest, req.Mid, prod.source)
			}
		}
		for _, other := range reqs[:i] {
			if other.Source == req.Source {
				return nil, fmt.Errorf("%w: %s twice", ErrSourceBusy, req.Source)
			}
			if other.Mid == req.Mid {
				return nil, fmt.Errorf("%w: mid %q named twice", ErrBadRequest, req.Mid)
			}
		}
	}
	if max := r.m.params.MaxProducersPerPeer; max > 0 && len(p.producers)+len(reqs) > max {
		return nil, fmt.Errorf("%w: %d producers at most", ErrTooManyProducers, max)
	}
	if max := r.settings.MaxPublishers; max > 0 && len(reqs) > 0 && len(p.producers) == 0 {
		publishing := 0
		for _, o := range r.peers {
			if len(o.producers) > 0 {
				publishing++
			}
		}
		if publishing >= max {
			return nil, fmt.Errorf("%w: %d publishers at most", ErrRoomFull, max)
		}
	}
	created := make([]*Producer, 0, len(reqs))
	for _, req := range reqs {
		kind, _, _ := strings.Cut(req.Source, ":")
		invited := p.invited[req.Source]
		delete(p.invited, req.Source) // an invitation is good for one producer
		prod := &Producer{id: newID(), source: req.Source, kind: kind, mid: req.Mid, rids: rids[req.Mid], peer: p, consumers: map[*Consumer]struct{}{}, invited: invited}
		p.producers[prod.id] = prod
		created = append(created, prod)
	}
	return created, nil
}

func (p *Peer) publisher() (*sfu.Publisher, error) {
	pub, err := p.makePublisher()
	if err != nil {
		return nil, err
	}
	// Checked after transportMu is released (room.mu comes first in the
	// lock order): a leave that raced us has closed it or will see it.
	if p.hasLeft() {
		_ = pub.Close()
		return nil, ErrLeft
	}
	return pub, nil
}

func (p *Peer) makePublisher() (*sfu.Publisher, error) {
	p.transportMu.Lock()
	defer p.transportMu.Unlock()
	if p.pub != nil {
		return p.pub, nil
	}
	pub, err := p.room.m.params.Engine.NewPublisher(sfu.PublisherParams{
		TrackID:        p.trackID,
		OnTrack:        p.onTrack,
		OnICECandidate: func(c *webrtc.ICECandidateInit) { p.notifyCandidate("send", c) },
		OnStateChange: func(s webrtc.PeerConnectionState) {
			p.log.Debug("send transport", "state", s.String())
		},
	})
	if err != nil {
		return nil, err
	}
	p.pub = pub
	return pub, nil
}

func (p *Peer) subscriber() (*sfu.Subscriber, error) {
	p.transportMu.Lock()
	defer p.transportMu.Unlock()
	if p.sub != nil {
		return p.sub, nil
	}
	sub, err := p.room.m.params.Engine.NewSubscriber(sfu.SubscriberParams{
		Name:           p.id,
		OnOffer:        p.onOffer,
		OnICECandidate: func(c *webrtc.ICECandidateInit) { p.notifyCandidate("recv", c) },
		OnStateChange: func(s webrtc.PeerConnectionState) {
			p.log.Debug("recv transport", "state", s.String())
		},
		StartAtMax: p.role == auth.RoleRecorder,
	})
	if err != nil {
		return nil, err
	}
	p.sub = sub
	return sub, nil
}

// Left reports whether the peer has left its room (for good).
func (p *Peer) Left() bool { return p.hasLeft() }

func (p *Peer) hasLeft() bool {
	p.room.mu.Lock()
	defer p.room.mu.Unlock()
	return p.left
}

func (p *Peer) notifyCandidate(transport string, c *webrtc.ICECandidateInit) {
	p.notify("iceCandidate", map[string]any{"transport": transport, "candidate": c})
}

func (p *Peer) trackID(mid string) (string, bool) {
	r := p.room
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, prod := range p.producers {
		if prod.mid == mid {
			return prod.id, true
		}
	}
	return "", false
}

// onTrack: a producer's media started; give it to whoever the rules say.
func (p *Peer) onTrack(mid string, up *sfu.UpTrack) {
	r := p.room
	r.mu.Lock()
	prod := p.producers[up.ID()]
	if prod == nil || p.left {
		r.mu.Unlock()
		return
	}
	prod.up = up
	if up.Kind() == webrtc.RTPCodecTypeVideo {
		// Dynacast: the publisher encodes no layer above what its
		// subscribers want (docs/protocol.md, layersWanted), once the
		// track shows layers (simulcast, or VP9 and AV1 SVC).
		id := prod.id
		up.OnWantedLayer(func(layer int8) {
			p.notify("layersWanted", map[string]any{"producerId": id, "spatialLayer": layer})
		})
	}
	for _, o := range r.peers {
		if autoSubscribe(r.mode, o, prod) {
			o.consumeLocked(prod)
		}
	}
	r.mu.Unlock()
	go func() {
		<-up.Done()
		p.closeProducer(prod, "ended")
	}()
}

// consumeLocked makes p receive prod. Called with the room locked.
func (p *Peer) consumeLocked(prod *Producer) {
	if prod.up == nil || p.left || !p.started {
		return
	}
	for _, c := range p.consumers {
		if c.producer == prod {
			return
		}
	}
	sub, err := p.subscriber()
	if err != nil {
		p.log.Error("recv transport", "err", err)
		return
	}
	c := &Consumer{id: newID(), producer: prod, peer: p}
	c.down = sfu.NewDownTrack(prod.up, c.id, prod.peer.id)
	c.down.SetPriority(p.room.priorityLocked(prod))
	c.down.OnBandwidthPause(func(paused bool) {
		method := "consumerResumed"
		if paused {
			method = "consumerPaused"
		}
		p.notify(method, map[string]any{"consumerId": c.id, "reason": "bandwidth"})
	})
	if prod.kind == "video" {
		up := prod.up
		c.down.OnLayerSwitch(func(layer int8) {
			if up.Layered() { // simulcast, or a scalable stream (known once its packets show layers)
				p.notify("consumerLayersChanged", map[string]any{"consumerId": c.id, "spatialLayer": layer})
			}
		})
	}
	if prod.paused {
		c.down.Pause()
	}
	p.consumerTag.Store(c.id, c)
	if err := sub.AddTrack(c.down); err != nil {
		p.consumerTag.Delete(c.id)
		p.log.Error("consume", "producer", prod.id, "err", err)
		return
	}
	p.consumers[c.id] = c
	prod.consumers[c] = struct{}{}
}

// onOffer runs under the subscriber's lock: only queue messages.
func (p *Peer) onOffer(sdp string, version int, added []sfu.AddedTrack) {
	for _, a := range added {
		v, ok := p.consumerTag.Load(a.Down.ID())
		if !ok {
			continue
		}
		c := v.(*Consumer)
		prod := c.producer
		p.notify("newConsumer", withLayers(map[string]any{
			"consumerId": c.id, "producerId": prod.id, "peerId": prod.peer.id,
			"source": prod.source, "kind": prod.kind, "mid": a.Mid, "paused": a.Down.Paused(),
		}, prod.rids))
	}
	p.notify("offer", map[string]any{"sdp": sdp, "version": version})
}
