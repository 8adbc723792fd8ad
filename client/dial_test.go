package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A server refusing the upgrade for its limits gives ErrRefused, saying
// when to retry.
func TestDialRefusedByLimits(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "3")
		http.Error(w, `{"error": {"code": "tooManyRequests"}}`, http.StatusTooManyRequests)
	}))
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Dial(ctx, Options{URL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws", DisplayName: "x"})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "retry after 3s") {
		t.Errorf("Dial: %v, want ErrRefused with the retry time", err)
	}
}
