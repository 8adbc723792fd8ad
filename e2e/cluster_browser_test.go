package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vclass/vclass/cluster/redistest"
)

// nginxServer is Debian's nginx running the project's config.
type nginxServer struct {
	port int // HTTPS
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
}

func (n *nginxServer) Write(b []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.out.Write(b)
}

// startNginx runs deploy/nginx/nginx.conf on loopback: the kit's files
// copied, certificates made by the kit's script, the upstreams given, and
// the listen ports moved to free ones.
func startNginx(t *testing.T, upstreams string) *nginxServer {
	t.Helper()
	bin := tool(t, "nginx", "nginx")
	tool(t, "openssl", "openssl")
	dir := t.TempDir()
	copyTree(t, "../deploy", dir)
	script := exec.Command(filepath.Join(dir, "scripts", "make-certs.sh"))
	script.Env = append(os.Environ(), "NO_MKCERT=1")
	if out, err := script.CombinedOutput(); err != nil {
		t.Fatalf("make-certs.sh: %v\n%s", err, out)
	}
	if err := os.Symlink(filepath.Join(dir, "certs"), filepath.Join(dir, "nginx", "certs")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nginx", "upstreams.conf"), []byte(upstreams), 0o644); err != nil {
		t.Fatal(err)
	}
	httpsAddr, httpAddr := freeAddr(t), freeAddr(t)
	conf, err := os.ReadFile(filepath.Join(dir, "nginx", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(conf)
	for old, repl := range map[string]string{
		"listen 443 ssl http2;":                 "listen " + httpsAddr + " ssl http2;",
		"listen [::]:443 ssl http2;":            "",
		"listen 80 default_server;":             "listen " + httpAddr + " default_server;",
		"listen [::]:80 default_server;":        "",
		"pid /tmp/nginx.pid;":                   "pid " + filepath.Join(dir, "nginx.pid") + ";",
		"return 301 https://$host$request_uri;": "return 301 https://$host:" + portOf(httpsAddr) + "$request_uri;",
	} {
		if !strings.Contains(text, old) {
			t.Fatalf("nginx.conf has no %q to adapt for the test", old)
		}
		text = strings.ReplaceAll(text, old, repl)
	}
	if err := os.WriteFile(filepath.Join(dir, "nginx", "nginx.conf"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &nginxServer{}
	fmt.Sscan(portOf(httpsAddr), &n.port)
	n.cmd = exec.Command(bin, "-p", dir+"/", "-c", "nginx/nginx.conf", "-g", "daemon off;")
	n.cmd.Stdout, n.cmd.Stderr = n, n
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its workers go with it
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		_ = n.cmd.Wait()
		if t.Failed() {
			n.mu.Lock()
			t.Logf("nginx:\n%s", n.out.String())
			n.mu.Unlock()
		}
	})
	waitFor(t, 10*time.Second, "nginx listening", func() bool {
		c, err := net.Dial("tcp", httpsAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return n
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// get fetches https://NAME:port/path through nginx (NAME resolved to
// 127.0.0.1, the test certificate not verified).
func (n *nginxServer) get(t *testing.T, name, path, user, pass string) (int, string) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: name}, // the test's own certificate
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", n.port))
		},
	}}
	req, _ := http.NewRequest("GET", fmt.Sprintf("https://%s:%d%s", name, n.port, path), nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET https://%s%s through nginx: %v", name, path, err)
	}
	defer res.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, res.Body)
	return res.StatusCode, b.String()
}

// The kit's nginx fronts two media nodes and the recorder: Chromium joins
// through https://wt-vclass.local; two pages that reach different nodes
// end in one room and decode each other; the recorder answers through
// https://wt-recorder.local. Then the room's node is killed: both pages
// are back in a room on the other node, decoding again, within 10 s.
func TestBrowsersThroughNginxAcrossNodes(t *testing.T) {
	r := redistest.Start(t)
	aAddr, bAddr, recAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	upstreams := fmt.Sprintf(`upstream vclass_media { zone vclass_media 64k; least_conn;
  server %s max_fails=1 fail_timeout=5s; server %s max_fails=1 fail_timeout=5s; }
upstream vclass_media_1 { server %s; }
upstream vclass_media_2 { server %s; }
upstream vclass_recorder { server %s; }
`, aAddr, bAddr, aAddr, bAddr, recAddr)
	ngx := startNginx(t, upstreams)
	public := func(n int) string { return fmt.Sprintf("wss://wt-vclass.local:%d/n/media-%d/ws", ngx.port, n) }
	node := func(id string, n int, addr string, lo int) *mediaServer {
		return startMediaAt(t, addr, loopbackConfig(lo, lo+9, ""), "VCLASS_AUTH_SECRET="+testSecret,
			"VCLASS_REDIS_URL="+r.URL(), "VCLASS_NODE_ID="+id, "VCLASS_PUBLIC_URL="+public(n), "VCLASS_INTERNAL_URL=http://"+addr)
	}
	a := node("media-1", 1, aAddr, 27330)
	b := node("media-2", 2, bAddr, 27340)
	clusterSettled(t, r.URL())
	cfg := strings.Replace(recorderConfig(oneClient(2, false)), "https://127.0.0.1:0", "https://"+recAddr, 1)
	startRecorder(t, "", cfg, a)

	// The recorder through nginx.
	if code, body := ngx.get(t, "wt-recorder.local", "/api/v1/recordings", "user1", "user1"); code != 200 || !strings.Contains(body, "recordings") {
		t.Errorf("recorder API through nginx: HTTP %d %s", code, body)
	}
	if code, _ := ngx.get(t, "wt-recorder.local", "/api/v1/recordings", "user1", "wrong"); code != 401 {
		t.Errorf("recorder API through nginx with a wrong password: HTTP %d, want 401", code)
	}

	url := func(name string) string {
		return fmt.Sprintf("https://wt-vclass.local:%d/?room=across&name=%s&autojoin=1", ngx.port, name)
	}
	p1 := openPage(t, url("Pia"), "Pia")
	waitFor(t, 15*time.Second, "Pia joined", func() bool { return p1.peerID() != "" })
	p2 := openPage(t, url("Rex"), "Rex")
	waitFor(t, 15*time.Second, "Rex joined", func() bool { return p2.peerID() != "" })
	pages := []*page{p1, p2}
	decodingEachOther(t, pages, 20*time.Second, "across the nodes")
	// They came in on different nodes: one of them was sent on.
	redirects := 0
	for _, n := range []*mediaServer{a, b} {
		_, m := n.get(t, "/metrics")
		redirects += strings.Count(m, `vclass_signaling_requests_total{code="redirect",method="joinRoom"} 1`)
	}
	if redirects != 1 {
		t.Errorf("%d nodes sent a page on, want 1: the pages should have come in on different nodes", redirects)
	}

	// The room's node dies.
	owner := a
	if _, m := b.get(t, "/metrics"); strings.Contains(m, "vclass_rooms 1") {
		owner = b
	}
	killed := time.Now()
	_ = owner.cmd.Process.Kill()
	<-owner.done
	decodingEachOther(t, pages, 15*time.Second, "again after the room's node died")
	t.Logf("both pages decoding again %v after the kill", time.Since(killed).Round(100*time.Millisecond))
}

// A page that joins while the cluster settles (Redis has just lost its
// data) is answered clusterUnavailable, and the browser SDK tries again
// until the room can be placed: the page joins, no error. (The test holds
// the cluster's settling flag itself until the page has met it, however
// long the browser takes to start.)
func TestBrowserJoinWaitsForASettlingCluster(t *testing.T) {
	r := redistest.Start(t)
	n := startNode(t, "solo", 27410, r.URL())
	opts, _ := redis.ParseURL(r.URL())
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	refused := regexp.MustCompile(`vclass_signaling_requests_total\{code="clusterUnavailable",method="joinRoom"\} [1-9]`)
	met := func() bool { _, m := n.get(t, "/metrics"); return refused.MatchString(m) }
	hold := func() {
		if err := rdb.Set(context.Background(), "vclass:settling", "e2e", 3*time.Second).Err(); err != nil {
			t.Fatal(err)
		}
	}
	hold()
	p := openPage(t, classURL(n, "settling", "Una", ""), "Una")
	waitFor(t, 30*time.Second, "the page refused while the cluster settles", func() bool {
		hold()
		return met()
	})
	waitFor(t, 10*time.Second, "Una in the room once it settled", func() bool {
		var room string
		_ = p.eval(`window.vclass.state.roomId || ""`, &room)
		return room == "settling"
	})
}

// decodingEachOther waits until each of two pages has decoded 10 more
// frames of the other's camera (counting afresh when the other comes back
// under a new peer id).
func decodingEachOther(t *testing.T, pages []*page, within time.Duration, what string) {
	t.Helper()
	for i, p := range pages {
		other := pages[1-i]
		var first float64 = -1
		var lastID string
		waitFor(t, within, p.name+" decoding "+other.name+" "+what, func() bool {
			id := other.peerID()
			if id != lastID {
				lastID, first = id, -1
			}
			frames, _ := p.stats().inboundFrom(id, "video:cam")
			if first < 0 {
				first = frames
			}
			return frames > first+10
		})
	}
}
