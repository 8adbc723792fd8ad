// Package signaling is the WebSocket protocol of docs/protocol.md and the
// HTTP surface of vclass-media (health, metrics, the browser client).
package signaling

import (
	"errors"
	"fmt"

	"github.com/vclass/vclass/room"
	"github.com/vclass/vclass/sfu"
	"github.com/vclass/vclass/signaling/wire"
)

// Error codes of docs/protocol.md.
const (
	codeBadRequest       = "badRequest"
	codeNotJoined        = "notJoined"
	codeAlreadyJoined    = "alreadyJoined"
	codeNotInRoom        = "notInRoom"
	codeAlreadyInRoom    = "alreadyInRoom"
	codeUnauthorized     = "unauthorized"
	codeRoomFull         = "roomFull"
	codeSourceNotAllowed = "sourceNotAllowed"
	codeSourceBusy       = "sourceBusy"
	codeUnknownProducer  = "unknownProducer"
	codeUnknownConsumer  = "unknownConsumer"
	codeBadSDP           = "badSdp"
	codeStaleVersion     = "staleVersion"
	codeShuttingDown     = "shuttingDown"
	codeTooManyRequests  = "tooManyRequests"
	codeForbidden        = "forbidden"
	codeUnknownPeer      = "unknownPeer"
	codeNoRoom           = "noRoom"
	codeRedirect         = "redirect"
	codeClusterDown      = "clusterUnavailable"
	codeNodeFull         = "nodeFull"
	codeTooManyProducers = "tooManyProducers"
	codeInternal         = "internal"
)

// protoError is an error that already carries its protocol code.
type protoError struct {
	code     string
	msg      string
	redirect string // with codeRedirect
}

func (e *protoError) Error() string { return e.code + ": " + e.msg }

func errorf(code, format string, a ...any) error {
	return &protoError{code: code, msg: fmt.Sprintf(format, a...)}
}

// toWire maps any error to its protocol code, in one place.
func toWire(err error) *wire.Error {
	var pe *protoError
	if errors.As(err, &pe) {
		return &wire.Error{Code: pe.code, Message: pe.msg, Redirect: pe.redirect}
	}
	codes := []struct {
		err  error
		code string
	}{
		{room.ErrShuttingDown, codeShuttingDown},
		{room.ErrRoomFull, codeRoomFull},
		{room.ErrSourceNotAllowed, codeSourceNotAllowed},
		{room.ErrSourceBusy, codeSourceBusy},
		{room.ErrUnknownProducer, codeUnknownProducer},
		{room.ErrUnknownConsumer, codeUnknownConsumer},
		{room.ErrBadRequest, codeBadRequest},
		{room.ErrLeft, codeNotInRoom},
		{room.ErrForbidden, codeForbidden},
		{room.ErrUnknownPeer, codeUnknownPeer},
		{room.ErrNoRoom, codeNoRoom},
		{room.ErrNodeFull, codeNodeFull},
		{room.ErrTooManyProducers, codeTooManyProducers},
		{sfu.ErrBadSDP, codeBadSDP},
		{sfu.ErrStaleVersion, codeStaleVersion},
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return &wire.Error{Code: c.code, Message: err.Error()}
		}
	}
	return &wire.Error{Code: codeInternal, Message: "internal error"}
}
