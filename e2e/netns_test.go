package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// netns is another host for a test: a network namespace joined to this
// machine by a veth pair. Its only way to the server is that pair, a
// second interface of the server's machine, whose host side tc can shape
// (the namespace's downlink).
type netns struct {
	name         string
	hostIf, nsIf string
	hostIP, nsIP string
}

var netnsCount atomic.Int32

// needRoot skips (outside CI) or fails (in CI) a test that needs root and
// iproute2's ip and tc.
func needRoot(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root (network namespaces)"
	}
	for _, cmd := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(cmd); err != nil {
			why = cmd + " is not installed (iproute2)"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// newNetns makes a namespace and its veth pair; both go when the test ends.
func newNetns(t *testing.T) *netns {
	t.Helper()
	needRoot(t)
	n := netnsCount.Add(1)
	pid := os.Getpid() % 10000
	// Interface names have at most 15 bytes; addresses are unique per test
	// binary and namespace (10.X.N.0/24, X from the pid).
	ns := &netns{
		name:   fmt.Sprintf("vclass-e2e-%d-%d", pid, n),
		hostIf: fmt.Sprintf("vh%d-%d", pid, n),
		nsIf:   fmt.Sprintf("vn%d-%d", pid, n),
		hostIP: fmt.Sprintf("10.%d.%d.1", 100+pid%100, n),
		nsIP:   fmt.Sprintf("10.%d.%d.2", 100+pid%100, n),
	}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns.name)
	t.Cleanup(func() {
		// The namespace's end of the pair goes with it, and the host's end with that.
		_ = exec.Command("ip", "netns", "del", ns.name).Run()
	})
	ip("link", "add", ns.hostIf, "type", "veth", "peer", "name", ns.nsIf)
	ip("link", "set", ns.nsIf, "netns", ns.name)
	ip("addr", "add", ns.hostIP+"/24", "dev", ns.hostIf)
	ip("link", "set", ns.hostIf, "up")
	ip("-n", ns.name, "addr", "add", ns.nsIP+"/24", "dev", ns.nsIf)
	ip("-n", ns.name, "link", "set", ns.nsIf, "up")
	ip("-n", ns.name, "link", "set", "lo", "up")
	return ns
}

// shape limits the namespace's downlink to rate (tc's syntax, "400kbit")
// with a token bucket, or changes the limit already set.
func (n *netns) shape(t *testing.T, rate string) {
	t.Helper()
	args := []string{"qdisc", "replace", "dev", n.hostIf, "root", "tbf", "rate", rate, "burst", "8kb", "latency", "120ms"}
	if out, err := exec.Command("tc", args...).CombinedOutput(); err != nil {
		t.Fatalf("tc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("%s shaped to %s at %s", n.hostIf, rate, time.Now().UTC().Format("15:04:05.000"))
}

// command runs name inside the namespace.
func (n *netns) command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

// chromium starts a Chromium inside the namespace (it ends with the test)
// that treats origin (http://hostIP:port, not a secure context by itself)
// as secure, so that its pages may use the camera and microphone.
func (n *netns) chromium(t *testing.T, origin string) context.Context {
	t.Helper()
	path := chromiumPath(t)
	dir := t.TempDir()
	// chromedp talks to the browser over inherited pipes, which ip netns
	// exec keeps: a wrapper script is all it takes.
	wrapper := filepath.Join(dir, "chromium-in-netns")
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", n.name, path)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	opts := chromiumOptions(wrapper, filepath.Join(dir, "profile"),
		"MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE "+n.hostIP,
		chromedp.Flag("unsafely-treat-insecure-origin-as-secure", origin))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium in %s: %v", n.name, err)
	}
	return ctx
}

// startDefaultMedia runs vclass-media on its embedded default (every
// interface, anonymous joins) with HTTP on every interface and media on
// the given ports.
func startDefaultMedia(t *testing.T, rtcPorts string, env ...string) *mediaServer {
	t.Helper()
	return startDefaultMediaBinary(t, mediaBinary, rtcPorts, env...)
}

// startDefaultMediaBinary is startDefaultMedia with the binary bin.
func startDefaultMediaBinary(t *testing.T, bin, rtcPorts string, env ...string) *mediaServer {
	t.Helper()
	cmd := exec.Command(bin, "-http", ":0")
	cmd.Env = append(append(os.Environ(), "VCLASS_RTC_PORTS="+rtcPorts), env...)
	p, u := startProcess(t, "vclass-media", cmd, urlLine, 10*time.Second)
	port := u[strings.LastIndex(u, ":")+1 : len(u)-1]
	s := &mediaServer{process: p, URL: "http://127.0.0.1:" + port}
	s.WS = "ws://127.0.0.1:" + port + "/ws"
	return s
}

// port is the server's HTTP port.
func (s *mediaServer) port() string { return s.URL[strings.LastIndex(s.URL, ":")+1:] }
