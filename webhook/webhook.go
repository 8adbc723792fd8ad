// Package webhook tells the portal what happens in rooms: it POSTs JSON
// events, signed with HMAC-SHA256, from one goroutine that retries with
// backoff. Posting never blocks the caller: events wait in a bounded
// queue, and the oldest are dropped (and logged) when it overflows.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body.
const SignatureHeader = "X-Vclass-Signature"

// Event is one thing that happened, as the portal receives it.
type Event struct {
	Seq         uint64    `json:"seq"` // increases by one per event of this process
	Event       string    `json:"event"`
	Room        string    `json:"room"`
	PeerID      string    `json:"peerId,omitempty"`
	DisplayName string    `json:"displayName,omitempty"`
	Role        string    `json:"role,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Time        time.Time `json:"time"`
}

// Params configure a Sender.
type Params struct {
	URL, Secret string
	Logger      *slog.Logger
	QueueSize   int           // default 1000
	Attempts    int           // default 6
	FirstDelay  time.Duration // default 500 ms, doubling
	Client      *http.Client  // default: 5 s timeout
}

// Sender delivers events in order.
type Sender struct {
	p       Params
	mu      sync.Mutex
	queue   []Event
	seq     uint64
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	dropped uint64
}

// New starts a sender.
func New(p Params) *Sender {
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.QueueSize == 0 {
		p.QueueSize = 1000
	}
	if p.Attempts == 0 {
		p.Attempts = 6
	}
	if p.FirstDelay == 0 {
		p.FirstDelay = 500 * time.Millisecond
	}
	if p.Client == nil {
		p.Client = &http.Client{Timeout: 5 * time.Second}
	}
	s := &Sender{p: p, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

// Post queues an event; it never blocks.
func (s *Sender) Post(e Event) {
	s.mu.Lock()
	s.seq++
	e.Seq = s.seq
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if len(s.queue) >= s.p.QueueSize {
		s.queue = s.queue[1:]
		s.dropped++
		s.p.Logger.Warn("webhook queue full: oldest event dropped", "dropped", s.dropped)
	}
	s.queue = append(s.queue, e)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Close stops the sender after at most the event in flight.
func (s *Sender) Close() {
	close(s.stop)
	<-s.done
}

func (s *Sender) run() {
	defer close(s.done)
	for {
		s.mu.Lock()
		var e *Event
		if len(s.queue) > 0 {
			e = &s.queue[0]
		}
		s.mu.Unlock()
		if e == nil {
			select {
			case <-s.wake:
				continue
			case <-s.stop:
				return
			}
		}
		s.deliver(*e)
		s.mu.Lock()
		if len(s.queue) > 0 && s.queue[0].Seq == e.Seq {
			s.queue = s.queue[1:]
		}
		s.mu.Unlock()
	}
}

// deliver posts one event, retrying with doubling delays.
func (s *Sender) deliver(e Event) {
	body, _ := json.Marshal(e)
	mac := hmac.New(sha256.New, []byte(s.p.Secret))
	mac.Write(body)
	signature := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	delay := s.p.FirstDelay
	for attempt := 1; ; attempt++ {
		err := s.post(body, signature)
		if err == nil {
			return
		}
		if attempt == s.p.Attempts {
			s.p.Logger.Warn("webhook not delivered", "event", e.Event, "seq", e.Seq, "attempts", attempt, "err", err)
			return
		}
		select {
		case <-time.After(delay):
		case <-s.stop:
			return
		}
		delay *= 2
	}
}

type statusError int

func (e statusError) Error() string { return "HTTP " + http.StatusText(int(e)) }

func (s *Sender) post(body []byte, signature string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.p.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, signature)
	res, err := s.p.Client.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return statusError(res.StatusCode)
	}
	return nil
}

// Verify checks a body against its signature header (for receivers and tests).
func Verify(secret string, body []byte, header string) bool {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(want), []byte(header))
}
