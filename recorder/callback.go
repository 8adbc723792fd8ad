package recorder

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// callbacks POSTs a job's state changes to the portal, in order, each
// retried after 0.5, 1, 2 and 4 s; a slow portal never holds the job up.
type callbacks struct {
	url    string
	log    *slog.Logger
	client *http.Client
	queue  chan Recording
	done   chan struct{} // closed when the queue is delivered
	stop   chan struct{} // closed to give up on what is left

	mu     sync.Mutex
	closed bool
}

func newCallbacks(url string, log *slog.Logger) *callbacks {
	c := &callbacks{url: url, log: log, queue: make(chan Recording, 16), client: &http.Client{Timeout: 5 * time.Second},
		done: make(chan struct{}), stop: make(chan struct{})}
	go c.run()
	return c
}

// post queues a state; after close it does nothing.
func (c *callbacks) post(r Recording) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	select {
	case c.queue <- r:
	default:
		c.log.Warn("callback queue full: state change not sent", "state", r.State)
	}
}

// close delivers what is queued, waiting at most wait, then gives up.
func (c *callbacks) close(wait time.Duration) {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.queue)
	}
	c.mu.Unlock()
	select {
	case <-c.done:
	case <-time.After(wait):
		close(c.stop)
		<-c.done
	}
}

func (c *callbacks) run() {
	defer close(c.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for r := range c.queue {
		body, _ := json.Marshal(r)
		delay := 500 * time.Millisecond
		for attempt := 1; ; attempt++ {
			err := c.send(ctx, body)
			if err == nil {
				break
			}
			if attempt == 5 || ctx.Err() != nil {
				c.log.Warn("callback not delivered", "url", c.url, "state", r.State, "err", err)
				break
			}
			select {
			case <-time.After(delay):
			case <-ctx.Done():
			}
			delay *= 2
		}
	}
}

func (c *callbacks) send(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.client.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return &statusError{res.Status}
	}
	return nil
}

type statusError struct{ status string }

func (e *statusError) Error() string { return "HTTP " + e.status }
