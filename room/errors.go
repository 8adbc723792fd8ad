// Package room holds rooms, their peers and what each peer publishes and
// receives, and applies a room's ServeMode to decide who gets what. It
// drives the sfu package and knows nothing of WebSockets: a peer's client
// is reached through the Sink interface.
package room

import "errors"

// Errors returned to the signaling layer, which maps them to protocol codes.
var (
	ErrShuttingDown     = errors.New("room: server is shutting down")
	ErrRoomFull         = errors.New("room: room is full")
	ErrSourceNotAllowed = errors.New("room: source not allowed")
	ErrSourceBusy       = errors.New("room: source already published")
	ErrUnknownProducer  = errors.New("room: unknown producer")
	ErrUnknownConsumer  = errors.New("room: unknown consumer")
	ErrBadRequest       = errors.New("room: bad request")
	ErrLeft             = errors.New("room: peer has left")
	ErrForbidden        = errors.New("room: not allowed for this role or mode")
	ErrUnknownPeer      = errors.New("room: no such peer in the room")
	ErrNoRoom           = errors.New("room: no such room (a recorder does not start rooms)")
	ErrNodeFull         = errors.New("room: this node holds as many rooms as it may")
	ErrTooManyProducers = errors.New("room: peer publishes as much as it may")
)
