package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	cdppage "github.com/chromedp/cdproto/page"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser is one headless Chromium shared by the tests of this package
// (each test opens its own tabs).
var browser struct {
	once sync.Once
	ctx  context.Context
	err  error
}

// chromiumPath finds Debian's chromium; outside CI a missing browser skips
// the test, in CI it fails it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (deploy/scripts/test.sh installs it)")
	}
	t.Skip("chromium is not installed; run deploy/scripts/test.sh to install it")
	return ""
}

// browserContext starts the shared browser on first use.
func browserContext(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	browser.once.Do(func() {
		dir, err := os.MkdirTemp("", "vclass-chromium-")
		if err != nil {
			browser.err = err
			return
		}
		opts := chromiumOptions(path, dir,
			// Only loopback: the deployment's three names are this machine too.
			"MAP wt.local 127.0.0.1, MAP wt-vclass.local 127.0.0.1, "+
				"MAP wt-recorder.local 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
		alloc, _ := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, _ := chromedp.NewContext(alloc)
		if err := chromedp.Do(ctx); err != nil {
			browser.err = fmt.Errorf("start chromium: %w", err)
			return
		}
		browser.ctx = ctx
	})
	if browser.err != nil {
		t.Fatal(browser.err)
	}
	return browser.ctx
}

// chromiumOptions are the flags of every Chromium of the tests: headless,
// fake camera and microphone, no calls home. resolverRules maps the host
// names the test uses (all else resolves to nothing).
func chromiumOptions(path, dataDir, resolverRules string, extra ...chromedp.ExecAllocatorOption) []chromedp.ExecAllocatorOption {
	return append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(dataDir),
		chromedp.Flag("headless", "new"),
		// A desktop's window: a class's tiles fit, at sizes adaptive stream sends small layers to.
		chromedp.WindowSize(1600, 1200),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("auto-select-desktop-capture-source", "Entire screen"),
		chromedp.Flag("host-resolver-rules", resolverRules),
		// The kit's certificates are made by the tests (openssl): not in the trust store.
		chromedp.Flag("ignore-certificate-errors", true),
	}, extra...)
}

// page is one browser tab with the class page.
type page struct {
	t      *testing.T
	ctx    context.Context
	cancel context.CancelFunc
	name   string
}

// openPage opens url in a new tab; the tab closes when the test ends.
func openPage(t *testing.T, url, name string) *page {
	t.Helper()
	return openPageIn(t, browserContext(t), url, name)
}

// openPageIn opens url in a new tab of the browser of browserCtx.
func openPageIn(t *testing.T, browserCtx context.Context, url, name string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx)
	p := &page{t: t, ctx: ctx, cancel: cancel, name: name}
	t.Cleanup(p.close)
	err := chromedp.Do(ctx) // the tab
	if err == nil {
		_, err = chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: cspWatch})
	}
	if err == nil {
		err = chromedp.Do(ctx, chromedp.Navigate(url))
	}
	if err != nil {
		t.Fatalf("%s: open %s: %v", name, url, err)
	}
	return p
}

// cspWatch records what the page's Content-Security-Policy blocked; a
// page that closes having been refused something fails its test.
const cspWatch = `window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) =>
  window.__cspViolations.push(e.effectiveDirective + ' blocked ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber));`

func (p *page) close() {
	if p.ctx.Err() == nil {
		var blocked []string
		if p.eval(`window.__cspViolations || []`, &blocked) == nil && len(blocked) > 0 {
			p.t.Errorf("%s: the Content-Security-Policy blocked %q", p.name, blocked)
		}
	}
	p.cancel()
}

// eval runs a JavaScript expression (awaiting promises) and decodes its
// JSON-able result into out.
func (p *page) eval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// click clicks an element like a user (a real input event, which
// getDisplayMedia requires).
func (p *page) click(selector string) error {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Do(ctx, chromedp.Click(selector))
}

// pageStats is what the page's SDK reports of its peer connections.
type pageStats struct {
	Inbound []struct {
		PeerID           string  `json:"peerId"`
		Source           string  `json:"source"`
		Kind             string  `json:"kind"`
		Codec            string  `json:"codec"`
		FramesDecoded    float64 `json:"framesDecoded"`
		PacketsReceived  float64 `json:"packetsReceived"`
		TotalAudioEnergy float64 `json:"totalAudioEnergy"`
		ConsumerID       string  `json:"consumerId"`
		FrameHeight      float64 `json:"frameHeight"`
		FramesPerSecond  float64 `json:"framesPerSecond"`
		FreezeCount      float64 `json:"freezeCount"`
		TotalFreezes     float64 `json:"totalFreezesDuration"`
		BytesReceived    float64 `json:"bytesReceived"`
		SpatialLayer     *int    `json:"spatialLayer"`
	} `json:"inbound"`
	Outbound []struct {
		Source          string  `json:"source"`
		Kind            string  `json:"kind"`
		Codec           string  `json:"codec"`
		PacketsSent     float64 `json:"packetsSent"`
		TargetBitrate   float64 `json:"targetBitrate"`
		RID             string  `json:"rid"`
		FramesEncoded   float64 `json:"framesEncoded"`
		FrameHeight     float64 `json:"frameHeight"`
		ScalabilityMode string  `json:"scalabilityMode"`
		KeyFrames       float64 `json:"keyFramesEncoded"`
		PLIs            float64 `json:"pliCount"`
		Limitation      string  `json:"qualityLimitationReason"`
		Active          bool    `json:"active"`
	} `json:"outbound"`
	Transports map[string]*candidatePair `json:"transports"`
}

// candidatePair is the pair a transport of the page sends on.
type candidatePair struct {
	Local, Remote struct {
		Type     string `json:"type"`
		Protocol string `json:"protocol"`
		Address  string `json:"address"`
		Port     int    `json:"port"`
	}
	RTT float64 `json:"rtt"`
}

func (p *page) stats() pageStats {
	var s pageStats
	if err := p.eval(`window.vclass.client.stats()`, &s); err != nil {
		p.t.Logf("%s: stats: %v", p.name, err)
	}
	return s
}

// inRoom waits until p is in its room (15 s at most) and returns its peer id.
func inRoom(t *testing.T, p *page) string {
	t.Helper()
	waitFor(t, 15*time.Second, p.name+" in the room", func() bool { return p.peerID() != "" })
	return p.peerID()
}

func (p *page) peerID() string {
	var id string
	_ = p.eval(`window.vclass.state.peerId || ""`, &id)
	return id
}

// peers lists the ids of the remote peers the page shows.
func (p *page) peers() []string {
	var ids []string
	_ = p.eval(`Object.keys(window.vclass.state.peers instanceof Map ? Object.fromEntries(window.vclass.state.peers) : window.vclass.state.peers)`, &ids)
	return ids
}

// inboundFrom sums decoded frames (video) or audio energy (audio) the page
// receives of source from peer.
func (s pageStats) inboundFrom(peer, source string) (frames, energy float64) {
	for _, in := range s.Inbound {
		if in.PeerID == peer && in.Source == source {
			frames += in.FramesDecoded
			energy += in.TotalAudioEnergy
		}
	}
	return
}
