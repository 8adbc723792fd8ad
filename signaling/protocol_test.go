package signaling

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vclass/vclass/room"
	"github.com/vclass/vclass/sfu"
)

// Every error the lower layers return maps to its documented code, wrapped
// or not; anything else is internal and says nothing more.
func TestToWire(t *testing.T) {
	tests := []struct {
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
		{fmt.Errorf("%w: r1", room.ErrNoRoom), codeNoRoom},
		{sfu.ErrBadSDP, codeBadSDP},
		{sfu.ErrStaleVersion, codeStaleVersion},
		{fmt.Errorf("produce: %w", sfu.ErrBadSDP), codeBadSDP},
		{errorf(codeNotJoined, "join first"), codeNotJoined},
		{fmt.Errorf("wrapped: %w", errorf(codeUnauthorized, "no")), codeUnauthorized},
		{errors.New("disk on fire"), codeInternal},
	}
	for _, tt := range tests {
		w := toWire(tt.err)
		if w.Code != tt.code {
			t.Errorf("%v: code %q, want %q", tt.err, w.Code, tt.code)
		}
		if tt.code == codeInternal && w.Message != "internal error" {
			t.Errorf("internal error leaks %q", w.Message)
		}
	}
}
