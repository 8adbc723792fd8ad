package recorder

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vclass/vclass/config"
)

// The recordings FuzzAPI's service has: one of the portal client's, one of
// the administrator's, each with a media file.
const (
	fuzzPortalRec = "20260101-000000-aaaaaaaa"
	fuzzAdminRec  = "20260101-000000-bbbbbbbb"
	fuzzSecret    = "not for the API to read"
)

// apiFixture is a service over a recordings folder with a file beside it
// that no request may read or touch.
type apiFixture struct {
	root, recDir string
	handler      http.Handler
	media        map[string]string // recording ID -> its file's contents
}

func newAPIFixture(t testing.TB) *apiFixture {
	root, err := os.MkdirTemp("", "FuzzAPI")
	if err != nil {
		t.Fatal(err)
	}
	fx := &apiFixture{root: root, recDir: filepath.Join(root, "rec"), media: map[string]string{}}
	write := func(path, data string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "secret.txt"), fuzzSecret)
	write(filepath.Join(root, "a.webm"), fuzzSecret) // a name the recordings' files have, outside them
	for id, client := range map[string]string{fuzzPortalRec: "portal", fuzzAdminRec: ""} {
		rec := Recording{ID: id, Client: client, Room: "math", State: StateDone, Files: []File{{Name: "a.webm", Size: 5}}}
		data, _ := json.Marshal(rec)
		write(filepath.Join(fx.recDir, id, stateFile), string(data))
		fx.media[id] = "media of " + id
		write(filepath.Join(fx.recDir, id, "a.webm"), fx.media[id])
	}
	cfg := &config.Recorder{
		RecordingDir: fx.recDir,
		Admin:        config.Credentials{Username: "admin", Password: "admin-pw"},
		Clients:      []config.RecorderClient{{Username: "portal", Password: "portal-pw", Host: "https://portal.example", Slots: 1}},
	}
	svc, err := New(Params{Config: cfg, FFmpeg: "/nonexistent/ffmpeg"})
	if err != nil {
		t.Fatal(err)
	}
	// Draining: a start that passes every check is refused before a job
	// would go and join a room.
	if err := svc.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	fx.handler = NewHandler(HandlerParams{Service: svc, Config: cfg})
	return fx
}

func (fx *apiFixture) remove() { os.RemoveAll(fx.root) }

// urlEscape keeps what a request line may carry as it is ('%' too, so that
// escapes like %2e%2e and %2F come through) and escapes the rest.
func urlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '?' || c == '#' {
			const hex = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// FuzzAPI sends the recorder's API any request a client may: any method,
// any recording ID and file name in the path (../, %2e%2e, %2F, absolute
// paths, NUL, very long names), any body to a start, as the administrator,
// the portal client, or with wrong or no credentials. The handler is the
// real one over a service of two ended recordings. Whatever comes:
//   - no panic, and no 5xx but 503 refusing a start whose body is one JSON
//     object and nothing more (the service is shutting down, so that no
//     job is started: a start that passed every check gets that 503);
//   - every 4xx and 5xx is a JSON error with a code and a message;
//   - a file served is the recording's own file of that name, and the
//     portal client is served nothing of the administrator's recording;
//   - nothing outside the recordings folder is read or touched, and a
//     recording's folder goes only with a DELETE of it by someone who sees it.
func FuzzAPI(f *testing.F) {
	f.Add(byte(0), byte(0), fuzzPortalRec, "a.webm", "")
	f.Add(byte(0), byte(1), fuzzAdminRec, "a.webm", "")
	f.Add(byte(0), byte(0), fuzzPortalRec, "../../secret.txt", "")
	f.Add(byte(0), byte(0), fuzzPortalRec, "..%2F..%2Fsecret.txt", "")
	f.Add(byte(0), byte(0), "%2e%2e", "%2e%2e%2fsecret.txt", "")
	f.Add(byte(0), byte(0), fuzzPortalRec, "/etc/passwd", "")
	f.Add(byte(0), byte(0), fuzzPortalRec, "a.webm\x00.txt", "")
	f.Add(byte(0), byte(0), fuzzPortalRec, strings.Repeat("x", 5000), "")
	f.Add(byte(0), byte(0), fuzzPortalRec, "recording.json", "")
	f.Add(byte(1), byte(0), "", "", `{"room":"math-101"}`)
	f.Add(byte(1), byte(1), "", "", `{"room":"math","client":"portal","compose":true}`)
	f.Add(byte(1), byte(0), "", "", `{"room":"math","callbackUrl":"https://portal.example/cb"}`)
	f.Add(byte(1), byte(0), "", "", `{"room":"math"} {"room":"again"}`)
	f.Add(byte(1), byte(0), "", "", `{"room":"../etc","client":"x","extra":1}`)
	f.Add(byte(1), byte(1), "", "", `[1, null, "room"]`)
	f.Add(byte(2), byte(0), fuzzAdminRec, "", "")
	f.Add(byte(2), byte(1), fuzzPortalRec, "", "")
	f.Add(byte(3), byte(0), fuzzPortalRec, "", "")
	f.Add(byte(4), byte(2), fuzzPortalRec, "", "")
	f.Add(byte(5), byte(3), "", "", "")
	// One service for many inputs, made anew once a request changed it
	// (a recording deleted): requests leave no other trace.
	var fx *apiFixture
	f.Cleanup(func() {
		if fx != nil {
			fx.remove()
		}
	})
	f.Fuzz(func(t *testing.T, route, who byte, id, name, body string) {
		if len(id)+len(name)+len(body) > 16<<10 {
			return
		}
		if fx == nil {
			fx = newAPIFixture(t)
		}
		var method, path string
		switch route % 6 {
		case 0:
			method, path = "GET", "/api/v1/recordings/"+urlEscape(id)+"/files/"+urlEscape(name)
		case 1:
			method, path = "POST", "/api/v1/recordings"
		case 2:
			method, path = "GET", "/api/v1/recordings/"+urlEscape(id)
		case 3:
			method, path = "DELETE", "/api/v1/recordings/"+urlEscape(id)
		case 4:
			method, path = "POST", "/api/v1/recordings/"+urlEscape(id)+"/stop"
		case 5:
			method, path = []string{"GET", "PUT", "PATCH", "DELETE", "POST"}[len(name)%5], "/api/"+urlEscape(id)
		}
		raw := method + " " + path + " HTTP/1.1\r\nHost: recorder\r\n"
		switch who % 4 {
		case 0:
			raw += "Authorization: Basic cG9ydGFsOnBvcnRhbC1wdw==\r\n" // portal:portal-pw
		case 1:
			raw += "Authorization: Basic YWRtaW46YWRtaW4tcHc=\r\n" // admin:admin-pw
		case 2:
			raw += "Authorization: Basic YWRtaW46d3Jvbmc=\r\n" // admin:wrong
		}
		raw += "Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return // not HTTP: the server answers 400 before any handler
		}
		rec := httptest.NewRecorder()
		changed := false
		defer func() {
			if changed || t.Failed() {
				fx.remove()
				fx = nil
			}
		}()
		fx.handler.ServeHTTP(rec, req)
		changed = fx.check(t, req, who%4, rec, body)
	})
}

// check holds the response and the folders to FuzzAPI's rules, and reports
// whether a recording was deleted.
func (fx *apiFixture) check(t *testing.T, req *http.Request, who byte, rec *httptest.ResponseRecorder, body string) (deleted bool) {
	t.Helper()
	status, got := rec.Code, rec.Body.Bytes()
	what := req.Method + " " + req.URL.RequestURI()
	var e struct {
		Error struct{ Code, Message string }
	}
	start := req.Method == "POST" && req.URL.Path == "/api/v1/recordings"
	switch {
	case status >= 500 && !(status == http.StatusServiceUnavailable && start):
		t.Fatalf("%s: %d %s", what, status, got)
	case status >= 400:
		if err := json.Unmarshal(got, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" ||
			rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d with no JSON error: %q", what, status, got)
		}
	}
	if status == http.StatusServiceUnavailable {
		trimmed := strings.TrimSpace(body)
		if e.Error.Code != "shuttingDown" || !strings.HasPrefix(trimmed, "{") || !json.Valid([]byte(trimmed)) {
			t.Fatalf("%s: a start with body %q got as far as %d %s", what, body, status, got)
		}
	}
	if bytes.Contains(got, []byte(fuzzSecret)) {
		t.Fatalf("%s: the file outside the recordings was served: %d %q", what, status, got)
	}
	if status < 300 {
		fx.checkServed(t, what, req, who, status, got)
	}
	// Nothing outside the recordings folder changed; the recordings are
	// there unless deleted by someone who sees them.
	entries, _ := os.ReadDir(fx.root)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"a.webm", "rec", "secret.txt"}) {
		t.Fatalf("%s: the folder above the recordings now has %v", what, names)
	}
	for _, n := range []string{"a.webm", "secret.txt"} {
		if data, err := os.ReadFile(filepath.Join(fx.root, n)); err != nil || string(data) != fuzzSecret {
			t.Fatalf("%s: %s outside the recordings changed: %q %v", what, n, data, err)
		}
	}
	for id, media := range fx.media {
		data, err := os.ReadFile(filepath.Join(fx.recDir, id, "a.webm"))
		gone := req.Method == "DELETE" && status == http.StatusNoContent && req.URL.Path == "/api/v1/recordings/"+id
		switch {
		case gone && (who == 0 && id == fuzzAdminRec):
			t.Fatalf("%s: the portal client deleted the administrator's recording", what)
		case gone && err == nil:
			t.Fatalf("%s: 204, and recording %s is still there", what, id)
		case !gone && (err != nil || string(data) != media):
			t.Fatalf("%s: %d, and recording %s's file is %q, %v", what, status, id, data, err)
		}
		deleted = deleted || gone
	}
	return deleted
}

// checkServed: a success names a recording its client sees, and a file
// served is that recording's file of that name.
func (fx *apiFixture) checkServed(t *testing.T, what string, req *http.Request, who byte, status int, got []byte) {
	if who >= 2 {
		t.Fatalf("%s: %d without the right credentials", what, status)
	}
	if req.URL.Path == "/api/v1/recordings" {
		return
	}
	id := req.PathValue("id")
	if _, ok := fx.media[id]; !ok || who == 0 && id == fuzzAdminRec {
		t.Fatalf("%s: %d for recording %q, which the %s does not see", what, status, id, []string{"portal client", "administrator"}[who])
	}
	if name := req.PathValue("name"); name != "" || strings.Contains(req.URL.Path, "/files/") {
		if name != "a.webm" || string(got) != fx.media[id] {
			t.Fatalf("%s: %d served %q for file %q of %s", what, status, got, name, id)
		}
	}
}
