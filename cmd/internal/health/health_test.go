package health

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCheck(t *testing.T) {
	ok := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer ok.Close()
	if code := Check(ok.URL+"/healthz", io.Discard); code != 0 {
		t.Errorf("healthy server: exit %d", code)
	}
	if code := Check(ok.URL+"/other", io.Discard); code != 1 {
		t.Errorf("503: exit %d", code)
	}
	if code := Check("http://127.0.0.1:9/healthz", io.Discard); code != 1 {
		t.Errorf("no server: exit %d", code)
	}
}

func TestLocalURL(t *testing.T) {
	for addr, want := range map[string]string{
		":8011":         "http://127.0.0.1:8011/healthz",
		"0.0.0.0:8011":  "http://127.0.0.1:8011/healthz",
		"10.0.0.5:8011": "http://10.0.0.5:8011/healthz",
		"[::1]:8011":    "http://[::1]:8011/healthz",
		"[::]:8011":     "http://127.0.0.1:8011/healthz",
	} {
		if got := LocalURL("http", addr, "/healthz"); got != want {
			t.Errorf("%s: %s, want %s", addr, got, want)
		}
	}
}
