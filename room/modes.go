package room

import (
	"fmt"
	"slices"

	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/config"
)

// Pull subscribes p to sources of peer target (Pull mode). Sources target
// publishes now are received at once; it is asked (produceSources) to
// start the others, and they are received when it does.
func (p *Peer) Pull(targetID string, sources []string) error {
	r := p.room
	r.mu.Lock()
	if p.left {
		r.mu.Unlock()
		return ErrLeft
	}
	target := r.peers[targetID]
	if target == nil || target == p {
		r.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnknownPeer, targetID)
	}
	var missing []string
	for _, src := range sources {
		p.pulled[pullKey(target.id, src)] = true
		live := false
		for _, prod := range target.producers {
			if prod.source == src {
				live = true
				if autoSubscribe(r.mode, p, prod) {
					p.consumeLocked(prod)
				}
			}
		}
		if !live && target.declares(src) {
			missing = append(missing, src)
		}
	}
	r.mu.Unlock()
	if len(missing) > 0 {
		target.notify("produceSources", map[string]any{"sources": missing, "by": p.id})
	}
	return nil
}

// Invite lets peer target publish sources once (Invite mode, admins only)
// and asks it to (produceSources).
func (p *Peer) Invite(targetID string, sources []string) error {
	target, err := p.inviteTarget(targetID)
	if err != nil {
		return err
	}
	r := p.room
	r.mu.Lock()
	var granted []string
	for _, src := range sources {
		if target.declares(src) {
			target.invited[src] = true
			granted = append(granted, src)
		}
	}
	r.mu.Unlock()
	if len(granted) == 0 {
		return fmt.Errorf("%w: the peer declared none of %v", ErrBadRequest, sources)
	}
	target.notify("produceSources", map[string]any{"sources": granted, "by": p.id})
	return nil
}

// Deinvite withdraws an invitation and closes the producers it allowed.
func (p *Peer) Deinvite(targetID string, sources []string) error {
	target, err := p.inviteTarget(targetID)
	if err != nil {
		return err
	}
	r := p.room
	r.mu.Lock()
	var closing []*Producer
	for _, src := range sources {
		delete(target.invited, src)
		for _, prod := range target.producers {
			if prod.source == src && target.role != auth.RoleAdmin {
				closing = append(closing, prod)
			}
		}
	}
	r.mu.Unlock()
	target.notify("closeSources", map[string]any{"sources": sources, "by": p.id})
	for _, prod := range closing {
		target.closeProducer(prod, "deinvited")
	}
	return nil
}

func (p *Peer) inviteTarget(targetID string) (*Peer, error) {
	r := p.room
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.left {
		return nil, ErrLeft
	}
	if !mayInvite(r.mode, p) {
		return nil, fmt.Errorf("%w: only an admin in an Invite room may invite", ErrForbidden)
	}
	target := r.peers[targetID]
	if target == nil || target == p {
		return nil, fmt.Errorf("%w: %s", ErrUnknownPeer, targetID)
	}
	return target, nil
}

// MutePeer pauses or resumes another peer's source for everyone
// receiving it (admins only, in every mode); the peer is told.
func (p *Peer) MutePeer(targetID, source string, muted bool) error {
	r := p.room
	r.mu.Lock()
	admin, left := p.role == auth.RoleAdmin, p.left
	r.mu.Unlock()
	if left {
		return ErrLeft
	}
	if !admin {
		return fmt.Errorf("%w: only an admin may mute others", ErrForbidden)
	}
	target, prod := r.producerOf(targetID, source)
	if target == nil {
		return fmt.Errorf("%w: %s", ErrUnknownPeer, targetID)
	}
	if prod == nil || !r.muteSource(targetID, source, muted, p.id) {
		return fmt.Errorf("%w: %s publishes no %s", ErrUnknownProducer, targetID, source)
	}
	return nil
}

// RequestProduce raises p's hand: the admins of the room are told which
// sources it would like to publish.
func (p *Peer) RequestProduce(sources []string) error {
	r := p.room
	r.mu.Lock()
	if p.left {
		r.mu.Unlock()
		return ErrLeft
	}
	if r.mode != config.ServeInvite {
		r.mu.Unlock()
		return fmt.Errorf("%w: hands are raised in Invite rooms", ErrForbidden)
	}
	var admins []*Peer
	for _, o := range r.peers {
		if o != p && mayInvite(r.mode, o) {
			admins = append(admins, o)
		}
	}
	declared := slices.DeleteFunc(slices.Clone(sources), func(s string) bool { return !p.declares(s) })
	r.mu.Unlock()
	if len(declared) == 0 {
		return fmt.Errorf("%w: none of %v was declared", ErrBadRequest, sources)
	}
	for _, a := range admins {
		a.notify("requestProduce", map[string]any{"peerId": p.id, "displayName": p.displayName, "sources": declared})
	}
	return nil
}
