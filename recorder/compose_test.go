package recorder

import (
	"testing"
	"time"
)

// A camera at the canvas's rate is moved onto its frames (forward or
// back, whichever is nearer); one at another rate, or one whose frames
// come at random, is left where it is.
func TestFramePhaseShift(t *testing.T) {
	frames := func(n int, first, every time.Duration) time.Duration {
		var p framePhase
		for i := range n {
			at := first + time.Duration(i)*every
			p.add(at.Round(time.Millisecond)) // as the file has them
		}
		return p.shift()
	}
	for _, tt := range []struct {
		first, every time.Duration
		want         time.Duration
	}{
		{10 * time.Millisecond, time.Second / 30, -10 * time.Millisecond},
		{25 * time.Millisecond, time.Second / 30, time.Second/30 - 25*time.Millisecond},
		{7 * time.Millisecond, time.Second / 25, 0},
		{7 * time.Millisecond, time.Second / 24, 0},
	} {
		if got := frames(300, tt.first, tt.every); (got - tt.want).Abs() > time.Millisecond {
			t.Errorf("frames from %v every %v: shift %v, want %v", tt.first, tt.every, got, tt.want)
		}
	}
	if got := frames(10, 10*time.Millisecond, time.Second/30); got != 0 {
		t.Errorf("10 frames: shift %v, want none yet", got)
	}
}
