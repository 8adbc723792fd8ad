package room

import (
	"fmt"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/sfu"
)

// Answer applies the client's answer to the recv transport's offer.
func (p *Peer) Answer(sdp string, version int) error {
	p.transportMu.Lock()
	sub := p.sub
	p.transportMu.Unlock()
	if sub == nil {
		return fmt.Errorf("%w: no offer was made", ErrBadRequest)
	}
	return sub.SetAnswer(sdp, version)
}

// AddICECandidate adds a client candidate to transport "send" or "recv".
func (p *Peer) AddICECandidate(transport string, c webrtc.ICECandidateInit) error {
	p.transportMu.Lock()
	pub, sub := p.pub, p.sub
	p.transportMu.Unlock()
	switch {
	case transport == "send" && pub != nil:
		return pub.AddICECandidate(c)
	case transport == "recv" && sub != nil:
		return sub.AddICECandidate(c)
	}
	return fmt.Errorf("%w: no %q transport", ErrBadRequest, transport)
}

// RestartICE makes the server offer fresh ICE credentials on the recv
// transport (the client restarts its send transport itself).
func (p *Peer) RestartICE() {
	p.transportMu.Lock()
	sub := p.sub
	p.transportMu.Unlock()
	if sub != nil {
		sub.RestartICE()
	}
}

// CloseProducer ends one of the peer's producers.
func (p *Peer) CloseProducer(id string) error {
	prod, err := p.producer(id)
	if err != nil {
		return err
	}
	p.closeProducer(prod, "closed")
	return nil
}

func (p *Peer) producer(id string) (*Producer, error) {
	r := p.room
	r.mu.Lock()
	defer r.mu.Unlock()
	prod := p.producers[id]
	if prod == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownProducer, id)
	}
	return prod, nil
}

// closeProducer ends prod, unless it has ended already.
func (p *Peer) closeProducer(prod *Producer, reason string) {
	r := p.room
	r.mu.Lock()
	if p.producers[prod.id] != prod {
		r.mu.Unlock()
		return
	}
	delete(p.producers, prod.id)
	if reason == "closed" && prod.invited && prod.unconfirmed {
		// Its own client closes it, having reported the publish as failed
		// (ProduceAgain): the invitation it used up comes back, under the
		// same lock as a deinvite that would withdraw it.
		p.invited[prod.source] = true
	}
	for c := range prod.consumers {
		c.peer.removeConsumerLocked(c)
	}
	r.mu.Unlock()
	r.broadcast(nil, "producerClosed", map[string]any{"peerId": p.id, "producerId": prod.id, "reason": reason})
}

// removeConsumerLocked stops sending c to p. Called with the room locked.
func (p *Peer) removeConsumerLocked(c *Consumer) {
	delete(p.consumers, c.id)
	delete(c.producer.consumers, c)
	p.consumerTag.Delete(c.id)
	p.transportMu.Lock()
	sub := p.sub
	p.transportMu.Unlock()
	if sub != nil {
		if err := sub.RemoveTrack(c.down); err != nil {
			p.log.Warn("remove consumer", "consumer", c.id, "err", err)
		}
	}
	p.notify("consumerClosed", map[string]any{"consumerId": c.id})
}

// SetProducerPaused pauses or resumes one of the peer's producers for
// everyone receiving it.
func (p *Peer) SetProducerPaused(id string, paused bool) error {
	r := p.room
	r.mu.Lock()
	prod := p.producers[id]
	if prod == nil {
		r.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnknownProducer, id)
	}
	if prod.paused == paused {
		r.mu.Unlock()
		return nil
	}
	prod.paused = paused
	// Every consumer hears of it (it says what its producer does); media
	// moves only where the consumer's own peer has not paused it.
	notify := make([]*Consumer, 0, len(prod.consumers))
	for c := range prod.consumers {
		if !c.paused {
			if paused {
				c.down.Pause()
			} else {
				c.down.Resume()
			}
		}
		notify = append(notify, c)
	}
	r.mu.Unlock()
	method := "consumerResumed"
	if paused {
		method = "consumerPaused"
	}
	for _, c := range notify {
		c.peer.notify(method, map[string]any{"consumerId": c.id, "reason": "producer"})
	}
	return nil
}

// consumerLocked finds one of the peer's consumers. Called with the room locked.
func (p *Peer) consumerLocked(id string) (*Consumer, error) {
	if c := p.consumers[id]; c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownConsumer, id)
}

// consumer finds one of the peer's consumers.
func (p *Peer) consumer(id string) (*Consumer, error) {
	p.room.mu.Lock()
	defer p.room.mu.Unlock()
	return p.consumerLocked(id)
}

// SetConsumerPaused pauses or resumes what the peer receives of one consumer.
func (p *Peer) SetConsumerPaused(id string, paused bool) error {
	r := p.room
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := p.consumerLocked(id)
	if err != nil {
		return err
	}
	c.paused = paused
	if paused {
		c.down.Pause()
	} else if !c.producer.paused {
		c.down.Resume()
	}
	return nil
}

// SetConsumerPreferredLayers caps the simulcast layer the peer receives
// of a consumer (0 is the smallest); it gets the largest layer arriving
// that is not above it. A consumer without layers accepts and ignores it.
func (p *Peer) SetConsumerPreferredLayers(id string, spatialLayer int) error {
	if spatialLayer < 0 || spatialLayer >= sfu.MaxLayers {
		return fmt.Errorf("%w: spatialLayer %d is not 0..%d", ErrBadRequest, spatialLayer, sfu.MaxLayers-1)
	}
	c, err := p.consumer(id)
	if err != nil {
		return err
	}
	c.down.SetMaxLayer(int8(spatialLayer))
	return nil
}

// SetConsumerView says how the peer shows a consumer's video (adaptive
// stream): at width x height pixels (0 x 0: not said), or hidden. It is
// sent no simulcast layer larger than that needs, and nothing while
// hidden. A consumer without layers is only paused while hidden.
func (p *Peer) SetConsumerView(id string, width, height int, visible bool) error {
	if width < 0 || height < 0 || width > maxViewSide || height > maxViewSide {
		return fmt.Errorf("%w: view %dx%d is not within 0..%d", ErrBadRequest, width, height, maxViewSide)
	}
	c, err := p.consumer(id)
	if err != nil {
		return err
	}
	c.down.SetView(width, height, !visible)
	return nil
}

// maxViewSide bounds a view's sides (pixels).
const maxViewSide = 16384

// SendMessage sends a chat message to everyone in the room, the sender
// too; a peer that has left (replaced, kicked) speaks to no one.
func (p *Peer) SendMessage(text string) error {
	if p.hasLeft() {
		return ErrLeft
	}
	p.room.broadcast(nil, "newMessage", map[string]any{
		"peerId": p.id, "displayName": p.displayName, "text": text, "time": time.Now().UTC().Format(time.RFC3339),
	})
	return nil
}

// Leave takes the peer out of its room.
func (p *Peer) Leave() { p.leave("left") }

// TimeOut takes out a peer whose connection dropped and did not come back.
func (p *Peer) TimeOut() { p.leave("timeout") }

func (p *Peer) leave(reason string) {
	r := p.room
	r.mu.Lock()
	if p.left {
		r.mu.Unlock()
		return
	}
	p.left = true
	delete(r.peers, p.id)
	if p.visible() && r.visibleCountLocked() == 0 {
		r.emptySince = time.Now()
	}
	if !p.visible() {
		r.recorders--
	}
	prods := make([]*Producer, 0, len(p.producers))
	for _, prod := range p.producers {
		prods = append(prods, prod)
		for c := range prod.consumers {
			c.peer.removeConsumerLocked(c)
		}
	}
	p.producers = map[string]*Producer{}
	for _, c := range p.consumers {
		delete(c.producer.consumers, c)
	}
	p.consumers = map[string]*Consumer{}
	r.mu.Unlock()

	p.transportMu.Lock()
	pub, sub := p.pub, p.sub
	p.transportMu.Unlock()
	if sub != nil {
		_ = sub.Close()
	}
	if pub != nil {
		_ = pub.Close()
	}
	for _, prod := range prods {
		r.broadcast(p, "producerClosed", map[string]any{"peerId": p.id, "producerId": prod.id, "reason": reason})
	}
	if p.visible() {
		r.broadcast(p, "peerLeaveRoom", map[string]any{"peerId": p.id, "reason": reason})
	} else {
		r.tellRecording()
	}
	p.log.Info("peer left", "reason", reason)
	r.m.emit(Event{Kind: "peerLeft", Room: r.id, PeerID: p.id, DisplayName: p.displayName, Role: string(p.role), Reason: reason})
}
