// Package limit bounds what one network address may take from a server:
// connections open at once and requests a second (a token bucket per
// address), refused with 429 Too Many Requests and a Retry-After; and
// what one request may send (413 past a body's bound).
package limit

import (
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rate is a token bucket's size: PerSecond on average, in bursts of up to
// Burst. A zero PerSecond turns it off.
type Rate struct {
	PerSecond float64
	Burst     int
}

// Bucket is one token bucket of a Rate, filled at first. Not safe for
// concurrent use.
type Bucket struct {
	rate   Rate
	tokens float64
	last   time.Time
}

// NewBucket is a full bucket of r (a Burst under 1 counts as one second's
// worth).
func NewBucket(r Rate) Bucket {
	if r.Burst < 1 {
		r.Burst = max(1, int(math.Ceil(r.PerSecond)))
	}
	return Bucket{rate: r, tokens: float64(r.Burst)}
}

// refill adds what the time since the last take earned, up to the burst.
func (b *Bucket) refill(now time.Time) {
	if !b.last.IsZero() {
		b.tokens = min(float64(b.rate.Burst), b.tokens+now.Sub(b.last).Seconds()*b.rate.PerSecond)
	}
	b.last = now
}

// Take takes one token; when there is none it reports how long until one
// is back. An unlimited rate always gives.
func (b *Bucket) Take(now time.Time) (ok bool, retryAfter time.Duration) {
	if b.rate.PerSecond <= 0 {
		return true, 0
	}
	b.refill(now)
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) / b.rate.PerSecond * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

// full tells whether the bucket has refilled to its burst by now.
func (b *Bucket) full(now time.Time) bool {
	b.refill(now)
	return b.tokens >= float64(b.rate.Burst)
}

// PerIP counts, for each address, the connections it holds open and the
// tokens left in its bucket. The zero value is not usable: see NewPerIP.
type PerIP struct {
	rate    Rate
	maxOpen int // 0 = no limit

	mu    sync.Mutex
	addrs map[netip.Addr]*addrState
	swept time.Time
}

type addrState struct {
	open   int
	bucket Bucket
}

// NewPerIP limits each address to rate and to maxOpen connections at once
// (0: no limit on either).
func NewPerIP(rate Rate, maxOpen int) *PerIP {
	return &PerIP{rate: rate, maxOpen: maxOpen, addrs: map[netip.Addr]*addrState{}}
}

// sweepEvery is how often idle addresses are forgotten, so that the table
// stays as small as the set of addresses active in the last minute.
const sweepEvery = time.Minute

// stateLocked returns addr's state, made when missing.
func (l *PerIP) stateLocked(addr netip.Addr, now time.Time) *addrState {
	if now.Sub(l.swept) > sweepEvery {
		for a, st := range l.addrs {
			if st.open == 0 && st.bucket.full(now) {
				delete(l.addrs, a)
			}
		}
		l.swept = now
	}
	st := l.addrs[addr]
	if st == nil {
		st = &addrState{bucket: NewBucket(l.rate)}
		l.addrs[addr] = st
	}
	return st
}

// Allow takes one token from addr's bucket. When it is empty it reports
// how long until one is back.
func (l *PerIP) Allow(addr netip.Addr, now time.Time) (ok bool, retryAfter time.Duration) {
	if l.rate.PerSecond <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stateLocked(addr, now).bucket.Take(now)
}

// Open counts a connection of addr, if it may have one more; release
// gives the place back (once, however often it is called).
func (l *PerIP) Open(addr netip.Addr, now time.Time) (release func(), ok bool) {
	if l.maxOpen <= 0 {
		return func() {}, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.stateLocked(addr, now)
	if st.open >= l.maxOpen {
		return nil, false
	}
	st.open++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if st := l.addrs[addr]; st != nil && st.open > 0 {
				st.open--
			}
		})
	}, true
}

// Addresses is how many addresses the table holds (for tests and metrics).
func (l *PerIP) Addresses() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.addrs)
}

// ClientIP is the address a request came from: the connection's peer,
// or, when that peer is a trusted proxy, the last address in
// X-Forwarded-For that is not one (nginx appends the address it saw).
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	addr = addr.Unmap()
	if !isTrusted(addr, trusted) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a forged or broken list: stop at what we can read
		}
		addr = hop.Unmap()
		if !isTrusted(addr, trusted) {
			break
		}
	}
	return addr
}

func isTrusted(addr netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Refuse answers 429 with Retry-After (whole seconds, at least 1) and a
// JSON error body of the APIs' shape.
func Refuse(w http.ResponseWriter, retryAfter time.Duration, message string) {
	secs := max(1, int(math.Ceil(retryAfter.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	_ = json.NewEncoder(w).Encode(map[string]map[string]string{
		"error": {"code": "tooManyRequests", "message": message},
	})
}

// Requests wraps next with l's rate: a request over it is refused with 429.
func Requests(next http.Handler, l *PerIP, trusted []netip.Prefix) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, wait := l.Allow(ClientIP(r, trusted), time.Now()); !ok {
			Refuse(w, wait, "too many requests from this address; retry later")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// BoundBody refuses with 413 a request whose declared body is over max
// bytes, and bounds the rest (reads past max fail with
// *http.MaxBytesError: see BodyTooLarge). It reports whether to go on.
func BoundBody(w http.ResponseWriter, r *http.Request, max int64) bool {
	if r.ContentLength > max {
		refuseBody(w, max)
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, max)
	return true
}

// BodyTooLarge answers 413 when err is a read past BoundBody's bound, and
// reports whether it did.
func BodyTooLarge(w http.ResponseWriter, err error) bool {
	var big *http.MaxBytesError
	if !errors.As(err, &big) {
		return false
	}
	refuseBody(w, big.Limit)
	return true
}

func refuseBody(w http.ResponseWriter, max int64) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	_ = json.NewEncoder(w).Encode(map[string]map[string]string{
		"error": {"code": "bodyTooLarge", "message": "a request body is " + strconv.FormatInt(max, 10) + " bytes at most"},
	})
}
