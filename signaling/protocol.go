// Package signaling is the WebSocket protocol of docs/protocol.md and the
// HTTP surface of vclass-media (health, metrics, the browser client).
package signaling

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vclass/vclass/room"
	"github.com/vclass/vclass/sfu"
)

// envelope is every message of the protocol (protoo's shape).
type envelope struct {
	Request      bool            `json:"request,omitempty"`
	Response     bool            `json:"response,omitempty"`
	Notification bool            `json:"notification,omitempty"`
	ID           uint64          `json:"id,omitempty"`
	Method       string          `json:"method,omitempty"`
	OK           *bool           `json:"ok,omitempty"`
	Data         json.RawMessage `json:"data,omitempty"`
	Error        *wireError      `json:"error,omitempty"`
}

type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

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
	codeInternal         = "internal"
)

// protoError is an error that already carries its protocol code.
type protoError struct {
	code string
	msg  string
}

func (e *protoError) Error() string { return e.code + ": " + e.msg }

func errorf(code, format string, a ...any) error {
	return &protoError{code: code, msg: fmt.Sprintf(format, a...)}
}

// toWire maps any error to its protocol code, in one place.
func toWire(err error) *wireError {
	var pe *protoError
	if errors.As(err, &pe) {
		return &wireError{Code: pe.code, Message: pe.msg}
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
		{sfu.ErrBadSDP, codeBadSDP},
		{sfu.ErrStaleVersion, codeStaleVersion},
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return &wireError{Code: c.code, Message: err.Error()}
		}
	}
	return &wireError{Code: codeInternal, Message: "internal error"}
}
