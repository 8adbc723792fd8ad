package sfu

import (
	"sync"
	"time"
)

// Dynacast: a simulcast publisher need not encode the layers no
// subscriber is to receive, nor a scalable (SVC) one the spatial layers. An up track works out the largest layer any of
// its down tracks wants (their preference and their view, not what their
// bandwidth affords now: that changes by the second) and tells its
// publisher: at once when it grows (a subscriber waits for it), after
// dynacastDelay when it shrinks (a tile resized or scrolled past soon
// wants it back).
type dynacast struct {
	mu    sync.Mutex // held while working the layer out and telling it: tellings stay in order
	fn    func(layer int8)
	told  int8 // the last layer told (at first all: the publisher starts so)
	timer *time.Timer
	gen   uint64 // bumped by every decision: a timer of an older one does nothing
}

const dynacastDelay = 3 * time.Second

// OnWantedLayer sets a function told the largest simulcast or spatial
// layer any subscriber wants now (-1: none), for the publisher to stop
// encoding the layers above it; it is told nothing while the track has
// no layers (a VP9 or AV1 track before its spatial layers show, or
// without). Set it before adding down tracks. It is called with
// the up track's dynacast state locked, from any goroutine: it must not
// block nor call back into the track.
func (u *UpTrack) OnWantedLayer(fn func(layer int8)) {
	u.dyn.mu.Lock()
	u.dyn.fn, u.dyn.told = fn, MaxLayers-1 // a publisher starts with every layer
	u.dyn.mu.Unlock()
}

// TellWantedLayer tells the publisher the wanted layer again (it may
// have missed it: a reconnection).
func (u *UpTrack) TellWantedLayer() {
	g := &u.dyn
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fn != nil && u.Layered() {
		g.fn(g.told)
	}
}

// wantedLayer is the largest layer a down track that is not paused by its
// subscriber or hidden wants, -1 for none.
func (u *UpTrack) wantedLayer() int8 {
	want := int8(-1)
	for _, d := range *u.downs.Load() {
		d.mu.Lock()
		if !d.userPaused && !d.viewHidden && !d.closed {
			want = max(want, d.capLocked())
		}
		d.mu.Unlock()
	}
	return want
}

// wantedNow is the layer to tell now, with the dynacast state locked:
// the wanted layer, or the last told while nobody subscribes (yet, or any
// more). Stopping a publisher's layers for an empty room and starting
// them for its first subscriber would cost both a ramp-up for nothing.
func (u *UpTrack) wantedNow() int8 {
	if len(*u.downs.Load()) == 0 {
		return u.dyn.told
	}
	return u.wantedLayer()
}

// wantChanged works the wanted layer out again and tells it when it
// changed (a layered track with OnWantedLayer set only). Callers must
// not hold a down track's lock.
func (u *UpTrack) wantChanged() {
	if !u.Layered() {
		return
	}
	g := &u.dyn
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fn == nil {
		return
	}
	want := u.wantedNow()
	g.gen++
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	switch {
	case want == g.told:
	case want > g.told:
		g.told = want
		g.fn(want)
	default:
		gen := g.gen
		g.timer = time.AfterFunc(dynacastDelay, func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if gen != g.gen {
				return // decided again since
			}
			g.timer = nil
			if want := u.wantedNow(); want != g.told {
				g.told = want
				g.fn(want)
			}
		})
	}
}
