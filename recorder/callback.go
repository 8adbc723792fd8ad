package recorder

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"
)

// callbacks POSTs a job's state changes to the portal, in order, each
// retried after 0.5, 1, 2 and 4 s; a slow portal never holds the job up.
type callbacks struct {
	url    string
	log    *slog.Logger
	queue  chan Recording
	client *http.Client
}

func newCallbacks(url string, log *slog.Logger) *callbacks {
	c := &callbacks{url: url, log: log, queue: make(chan Recording, 16), client: &http.Client{Timeout: 5 * time.Second}}
	go c.run()
	return c
}

func (c *callbacks) post(r Recording) {
	select {
	case c.queue <- r:
	default:
		c.log.Warn("callback queue full: state change not sent", "state", r.State)
	}
}

func (c *callbacks) close() { close(c.queue) }

func (c *callbacks) run() {
	for r := range c.queue {
		body, _ := json.Marshal(r)
		delay := 500 * time.Millisecond
		for attempt := 1; ; attempt++ {
			res, err := c.client.Post(c.url, "application/json", bytes.NewReader(body))
			if err == nil {
				res.Body.Close()
				if res.StatusCode/100 == 2 {
					break
				}
			}
			if attempt == 5 {
				c.log.Warn("callback not delivered", "url", c.url, "state", r.State, "err", err)
				break
			}
			time.Sleep(delay)
			delay *= 2
		}
	}
}
