package recorder

import (
	"errors"
	"fmt"
	"testing"
)

// A join that found the room not live is told apart from other failures,
// and keeps its own words for the operator.
func TestRoomGoneError(t *testing.T) {
	err := roomGoneError{fmt.Errorf("could not join room %q within 8s: the room is not live on the media server", "x")}
	if !errors.Is(err, errRoomGone) {
		t.Error("roomGoneError is not errRoomGone")
	}
	if errors.Is(errors.New("could not join"), errRoomGone) {
		t.Error("another error is errRoomGone")
	}
	if got := failReason(err); got != `could not join room "x" within 8s: the room is not live on the media server` {
		t.Errorf("reason %q", got)
	}
}
