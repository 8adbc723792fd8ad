package signaling

import (
	"errors"
	"fmt"
	"testing"
	"time"

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

// The request limiter allows a burst, then the sustained rate.
func TestTokenBucket(t *testing.T) {
	b := tokenBucket{tokens: requestBurst}
	now := time.Unix(1000, 0)
	served := 0
	for range 2 * requestBurst {
		if b.take(now) {
			served++
		}
	}
	if served != requestBurst {
		t.Errorf("burst served %d, want %d", served, requestBurst)
	}
	// One second later, requestRate more.
	now = now.Add(time.Second)
	served = 0
	for range 2 * requestRate {
		if b.take(now) {
			served++
		}
	}
	if served != requestRate {
		t.Errorf("after a second served %d, want %d", served, requestRate)
	}
	// A long pause refills to the burst, not beyond.
	now = now.Add(time.Hour)
	served = 0
	for range 3 * requestBurst {
		if b.take(now) {
			served++
		}
	}
	if served != requestBurst {
		t.Errorf("after an hour served %d, want %d", served, requestBurst)
	}
}
