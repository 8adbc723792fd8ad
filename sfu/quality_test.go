package sfu

import (
	"testing"
	"time"
)

// recentLoss sums the last lossSeconds wall-clock seconds, whatever the
// rounds it is given in.
func TestRecentLoss(t *testing.T) {
	var r recentLoss
	t0 := time.Unix(1000, 0)
	if loss, n := r.share(t0); loss != 0 || n != 0 {
		t.Errorf("empty: %v of %d, want nothing", loss, n)
	}
	r.add(t0, 100, 10)
	r.add(t0.Add(300*time.Millisecond), 100, 0) // the same second
	r.add(t0.Add(time.Second), 200, 30)
	if loss, n := r.share(t0.Add(1500 * time.Millisecond)); n != 400 || loss != 0.1 {
		t.Errorf("two seconds: %v of %d, want 0.1 of 400", loss, n)
	}
	// Second 1000 ages out at 1003; second 1003 reuses its slot.
	r.add(t0.Add(3*time.Second), 100, 0)
	if loss, n := r.share(t0.Add(3 * time.Second)); n != 300 || loss != 0.1 {
		t.Errorf("a second later: %v of %d, want 0.1 of 300", loss, n)
	}
	if loss, n := r.share(t0.Add(10 * time.Second)); loss != 0 || n != 0 {
		t.Errorf("long after: %v of %d, want nothing", loss, n)
	}
	r.add(t0.Add(10*time.Second), 10, 20) // more lost than expected (a caller's slip) is all
	if loss, _ := r.share(t0.Add(10 * time.Second)); loss != 1 {
		t.Errorf("more lost than expected: %v, want 1", loss)
	}
}
