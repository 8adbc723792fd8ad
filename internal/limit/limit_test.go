package limit

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// A bucket serves its burst, then its rate, and refills to the burst only.
func TestBucket(t *testing.T) {
	b := NewBucket(Rate{PerSecond: 50, Burst: 100})
	now := time.Unix(1000, 0)
	count := func(tries int) (served int) {
		for range tries {
			if ok, _ := b.Take(now); ok {
				served++
			}
		}
		return served
	}
	if got := count(200); got != 100 {
		t.Errorf("burst served %d, want 100", got)
	}
	if ok, wait := b.Take(now); ok || wait != 20*time.Millisecond {
		t.Errorf("empty bucket: ok=%v retry after %v, want 20ms", ok, wait)
	}
	now = now.Add(time.Second)
	if got := count(100); got != 50 {
		t.Errorf("a second later served %d, want 50", got)
	}
	now = now.Add(time.Hour)
	if got := count(300); got != 100 {
		t.Errorf("an hour later served %d, want 100", got)
	}
	off := NewBucket(Rate{})
	for range 1000 {
		if ok, _ := off.Take(now); !ok {
			t.Fatal("a bucket without a rate refused")
		}
	}
}

func TestPerIP(t *testing.T) {
	l := NewPerIP(Rate{PerSecond: 1, Burst: 2}, 2)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	now := time.Unix(1000, 0)
	for i, want := range []bool{true, true, false} {
		if ok, _ := l.Allow(a, now); ok != want {
			t.Errorf("a's request %d: ok=%v", i, ok)
		}
	}
	if ok, _ := l.Allow(b, now); !ok {
		t.Error("b is refused for a's requests")
	}
	r1, ok1 := l.Open(a, now)
	r2, ok2 := l.Open(a, now)
	_, ok3 := l.Open(a, now)
	if !ok1 || !ok2 || ok3 {
		t.Errorf("opens: %v %v %v, want true true false", ok1, ok2, ok3)
	}
	r1()
	r1() // a second release gives back nothing more
	if _, ok := l.Open(a, now); !ok {
		t.Error("a released place is not given again")
	}
	if _, ok := l.Open(a, now); ok {
		t.Error("a double release gave two places back")
	}
	r2()
	// Idle, refilled addresses are forgotten.
	if n := l.Addresses(); n != 2 {
		t.Errorf("%d addresses held", n)
	}
	later := now.Add(2 * sweepEvery)
	l.Allow(netip.MustParseAddr("192.0.2.9"), later)
	if n := l.Addresses(); n != 2 { // a still holds one open; b is gone; the new one is in
		t.Errorf("after the sweep %d addresses held, want 2", n)
	}
}

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
	for _, tc := range []struct {
		remote, xff, want string
	}{
		{"192.0.2.7:1234", "", "192.0.2.7"},
		{"192.0.2.7:1234", "203.0.113.1", "192.0.2.7"}, // not a proxy: its header is not believed
		{"10.1.1.1:80", "203.0.113.1", "203.0.113.1"},
		{"10.1.1.1:80", "198.51.100.9, 203.0.113.1, 10.2.2.2", "203.0.113.1"}, // the last one not a proxy
		{"10.1.1.1:80", "junk, 203.0.113.1", "203.0.113.1"},
		{"10.1.1.1:80", "203.0.113.1, junk", "10.1.1.1"}, // unreadable: the proxy itself
		{"[::ffff:192.0.2.8]:5", "", "192.0.2.8"},
		{"127.0.0.1:5", "10.9.9.9", "10.9.9.9"}, // all trusted: the first hop
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := ClientIP(r, trusted).String(); got != tc.want {
			t.Errorf("%s via %q: %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

func TestRequestsRefuseWith429(t *testing.T) {
	h := Requests(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}), NewPerIP(Rate{PerSecond: 0.5, Burst: 1}, 0), nil)
	serve := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "192.0.2.1:9"
		h.ServeHTTP(w, r)
		return w
	}
	if w := serve(); w.Code != 200 {
		t.Fatalf("first request: %d", w.Code)
	}
	w := serve()
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	if w.Code != 429 || w.Header().Get("Retry-After") != "2" || body.Error.Code != "tooManyRequests" {
		t.Errorf("second request: %d Retry-After %q body %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
}
