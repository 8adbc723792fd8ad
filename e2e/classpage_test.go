package e2e

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The class page for the people who use it (web/app.js, i18n.js,
// devices.js): languages, devices, the recording notice, layouts, phones.

// browserWith starts a Chromium of its own with extra flags (a language,
// more fake devices).
func browserWith(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	opts := chromiumOptions(chromiumPath(t), filepath.Join(t.TempDir(), "profile"), "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", extra...)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// screenshot saves what p shows as name (a PNG) in VCLASS_SCREENSHOTS
// (docs/screenshots makes the README's pictures), else in a temporary
// directory.
func screenshot(t *testing.T, p *page, name string) {
	t.Helper()
	dir := os.Getenv("VCLASS_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("%s: screenshot: %v", p.name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// pageTexts is every string the page's chrome can show (its toolbar,
// dialogs, banners, forms, tiles' captions and buttons, the participant
// list), hidden ones included, and the labels of its controls; not what
// people wrote (names, chat).
const pageTexts = `(() => {
	const out = [];
	const add = (where, s) => { if (s && s.trim()) out.push(where + ': ' + s.trim()); };
	const roots = document.querySelectorAll('.topbar, #banner, #join-view, .toolbar, dialog, .side, #tiles');
	for (const root of roots) {
		const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
		while (walk.nextNode()) {
			const el = walk.currentNode.parentElement;
			if (el.closest('.messages, option, .people .name, figcaption .name, .avatar')) continue;
			add(el.id || el.tagName.toLowerCase(), walk.currentNode.textContent);
		}
		for (const el of [root, ...root.querySelectorAll('*')]) {
			if (el.closest('.messages, option[lang]')) continue;
			for (const a of ['aria-label', 'title', 'placeholder']) add((el.id || el.tagName.toLowerCase()) + '[' + a + ']', el.getAttribute(a));
		}
	}
	add('title', document.title);
	return out;
})()`

// latinWord is a word of Latin letters: in a Russian page, English.
var latinWord = regexp.MustCompile(`[A-Za-z]{2,}`)

// noEnglish fails the test for any string of p's chrome with a Latin word
// that is not one of allowed (the product's name, a room's id).
func noEnglish(t *testing.T, p *page, where string, allowed ...string) {
	t.Helper()
	var texts []string
	if err := p.eval(pageTexts, &texts); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	allowed = append(allowed, "vclass")
	for _, s := range texts {
		rest := s[strings.Index(s, ": ")+2:]
		for _, a := range allowed {
			rest = strings.ReplaceAll(rest, a, "")
		}
		if latinWord.MatchString(rest) {
			t.Errorf("%s, %s: %q is not Russian", p.name, where, s)
		}
	}
	if len(texts) < 10 {
		t.Errorf("%s, %s: only %d strings found: %q", p.name, where, len(texts), texts)
	}
}

func (p *page) str(expr string) string {
	var s string
	_ = p.eval(expr, &s)
	return s
}

func (p *page) truth(expr string) bool {
	var b bool
	_ = p.eval(expr, &b)
	return b
}

// A Chromium in Russian (--lang=ru) shows the page in Russian: the join
// form with its preview, device choice and microphone meter, an error, the
// class with its plural counts, the devices dialog, the recording notice
// and indicator, and a phone's narrow screen; no English anywhere, and
// nothing axe-core finds serious. The
// recording indicator comes within 2 s of a recording's start through the
// recorder's API and goes within 2 s of its stop; a participant joining
// the recorded class is asked before the camera and microphone start.
func TestClassPageInRussian(t *testing.T) {
	cfg := strings.Replace(loopbackConfig(27520, 27529, ""), `"AllowEmptyTickets": true`, `"AllowEmptyTickets": true, "ApiKey": "`+apiKey+`"`, 1)
	media := startMedia(t, cfg, "VCLASS_AUTH_SECRET="+testSecret)
	rec := startRecorder(t, "", recorderConfig(oneClient(2, false)), media)
	ru := browserWith(t, chromedp.Flag("lang", "ru"), chromedp.Flag("accept-lang", "ru"))

	// The join form: a preview, the devices, the meter moving with the fake microphone's beeps.
	anna := openPageIn(t, ru, media.URL+"/", "Анна")
	if lang := anna.str(`document.documentElement.lang`); lang != "ru" {
		t.Fatalf("the page's language is %q in a Russian Chromium, want ru", lang)
	}
	waitFor(t, 10*time.Second, "the join form's preview and microphone meter", func() bool {
		return anna.truth(`(() => { const v = document.getElementById('preview-video');
			return v.videoWidth > 0 && document.getElementById('mic-meter').value > 0.05
				&& document.getElementById('camera-select').options.length > 0; })()`)
	})
	noEnglish(t, anna, "the join form")
	axeCheck(t, anna, "the join form in Russian")

	// A wrong ticket: the error says why in Russian.
	bad := openPageIn(t, ru, media.URL+"/?room=urok&name=Gleb&autojoin=1&ticket=not-a-ticket", "Глеб")
	waitFor(t, 10*time.Second, "the wrong ticket's error", func() bool { return bad.str(`document.body.dataset.state`) == "error" })
	if banner := bad.str(`document.getElementById('banner-text').textContent`); !strings.Contains(banner, "недействительна") {
		t.Errorf("a wrong ticket's error reads %q, want it in Russian (недействительна)", banner)
	}
	noEnglish(t, bad, "a join error", "urok")
	bad.close()

	// Into the class through the form, as a user.
	if err := chromedp.Do(anna.ctx,
		chromedp.SetValue("#join-name", "Анна"),
		chromedp.SetValue("#join-room", "urok"),
		chromedp.Click("#join-button")); err != nil {
		t.Fatal(err)
	}
	annaID := inRoom(t, anna)
	boris := openPageIn(t, ru, media.URL+"/?room=urok&name=Борис&autojoin=1", "Борис")
	borisID := inRoom(t, boris)
	waitFor(t, 20*time.Second, "Борис seeing Анна's camera", func() bool { return cameraOf(boris, annaID).frames > 10 })
	waitFor(t, 10*time.Second, "the participant list of two", func() bool {
		return anna.str(`document.getElementById('people-heading').textContent`) == "2 участника"
	})
	if err := anna.click("#chat-input"); err != nil {
		t.Fatal(err)
	}
	noEnglish(t, anna, "the class", "urok")
	axeCheck(t, anna, "the class in Russian")

	// The devices dialog, in the class.
	if err := anna.click("#devices-button"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the devices dialog", func() bool {
		return anna.truth(`document.getElementById('devices-dialog').open && document.getElementById('mic-meter').value > 0.05`)
	})
	noEnglish(t, anna, "the devices dialog", "urok")
	if err := anna.click("#devices-close"); err != nil {
		t.Fatal(err)
	}

	// A recording starts: the indicator within 2 s, on every page.
	indicator := func(p *page) bool { return p.truth(`!document.getElementById('rec-indicator').hidden`) }
	job := rec.start(t, "user1", "user1", "urok")
	began := time.Now()
	waitFor(t, 2*time.Second, "the recording indicator", func() bool { return indicator(anna) && indicator(boris) })
	t.Logf("the indicator came %v after the recording was asked for", time.Since(began).Round(10*time.Millisecond))
	if text := anna.str(`document.getElementById('rec-indicator').textContent`); text != "Идёт запись" {
		t.Errorf("the indicator reads %q", text)
	}

	// Vera joins the recorded class on a phone: asked first, then her camera starts.
	vera := openPageIn(t, ru, "about:blank", "Вера")
	if err := chromedp.Do(vera.ctx,
		chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile, chromedp.EmulateTouch),
		chromedp.Navigate(media.URL+"/?room=urok&name=Вера&autojoin=1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "Вера asked about the recording", func() bool {
		return vera.truth(`document.getElementById('record-dialog').open`)
	})
	if vera.truth(`Boolean(window.vclass.local.cam || window.vclass.local.mic) || window.vclass.client.producers.length > 0`) {
		t.Error("Вера's camera or microphone started before she answered")
	}
	if !indicator(vera) {
		t.Error("Вера does not see the recording indicator while asked")
	}
	noEnglish(t, vera, "the recording notice", "urok")
	axeCheck(t, vera, "the recording notice on a phone")
	screenshot(t, vera, "phone-recording-ru.png")
	if err := vera.click("#record-continue"); err != nil {
		t.Fatal(err)
	}
	veraID := inRoom(t, vera)
	waitFor(t, 20*time.Second, "Анна seeing Вера's camera", func() bool { return cameraOf(anna, veraID).frames > 10 })

	// The phone's screen: nothing wider than it, every control on it.
	var layout struct {
		Width, Scroll int
		Off           []string
	}
	if err := vera.eval(`(() => {
		const off = [...document.querySelectorAll('.toolbar button:not([hidden]), #chat-input, .topbar select')]
			.filter((el) => { const r = el.getBoundingClientRect(); return r.left < 0 || r.right > window.innerWidth; })
			.map((el) => el.id || el.textContent);
		return { width: window.innerWidth, scroll: document.scrollingElement.scrollWidth, off };
	})()`, &layout); err != nil {
		t.Fatal(err)
	}
	if layout.Width != 360 || layout.Scroll > layout.Width || len(layout.Off) > 0 {
		t.Errorf("on a 360 px phone: window %d px, page %d px wide, controls off the screen: %q", layout.Width, layout.Scroll, layout.Off)
	}
	noEnglish(t, vera, "the class on a phone", "urok")
	axeCheck(t, vera, "the class on a phone")
	screenshot(t, vera, "phone-ru.png")
	// Анна's class in speaker view, for the README.
	if err := anna.click("#layout-button"); err != nil {
		t.Fatal(err)
	}
	// (Any layer: the larger one the view asks for may take a while to come on a busy runner.)
	waitFor(t, 15*time.Second, "Анна's speaker view showing a camera large", func() bool {
		return anna.truth(`(() => { const f = document.querySelector('.tile.featured video');
			return Boolean(f) && f.videoHeight > 0 && f.getBoundingClientRect().width > 800; })()`)
	})
	screenshot(t, anna, "class-ru.png")

	// The recording stops: the indicator goes within 2 s.
	rec.call(t, "POST", "/api/v1/recordings/"+job.ID+"/stop", "user1", "user1", nil, nil)
	stopped := time.Now()
	waitFor(t, 2*time.Second, "the recording indicator gone", func() bool {
		return !indicator(anna) && !indicator(boris) && !indicator(vera)
	})
	t.Logf("the indicator went %v after the stop was asked for", time.Since(stopped).Round(10*time.Millisecond))

	// The portal removes Борис, then ends the class: each is told why, in Russian.
	banner := func(p *page) string { return p.str(`document.getElementById('banner-text').textContent`) }
	if code, _ := apiCall(t, media, "DELETE", "/api/v1/rooms/urok/peers/"+borisID, apiKey, ""); code != 204 {
		t.Fatalf("kick: HTTP %d", code)
	}
	waitFor(t, 5*time.Second, "Борис told he was removed", func() bool { return banner(boris) == "Вас удалили из класса." })
	if code, _ := apiCall(t, media, "DELETE", "/api/v1/rooms/urok", apiKey, ""); code != 204 {
		t.Fatalf("close the room: HTTP %d", code)
	}
	waitFor(t, 5*time.Second, "Анна told the class ended", func() bool { return banner(anna) == "Занятие окончено." })
	noEnglish(t, anna, "the class ended")
}

// In English, with more fake cameras: the connection quality on each tile,
// grid and speaker view, pinning and
// full screen, the participant list following a muted microphone, another
// camera chosen in the Devices dialog (sent in place of the first, no new
// negotiation, remembered for the next visit) and the camera in use
// ending by itself (unplugged): the page goes on with the other one. The
// other participants decode Ann's camera throughout.
func TestClassPageLayoutsAndDevices(t *testing.T) {
	media := startMedia(t, loopbackConfig(27530, 27539, ""))
	en := browserWith(t, chromedp.Flag("lang", "en-US"), chromedp.Flag("use-fake-device-for-media-stream", "device-count=3"))
	ann := openPageIn(t, en, classURL(media, "layouts", "Ann", ""), "Ann")
	annID := inRoom(t, ann)
	bob := openPageIn(t, en, classURL(media, "layouts", "Bob", ""), "Bob")
	bobID := inRoom(t, bob)
	cat := openPageIn(t, en, classURL(media, "layouts", "Cat", "&cam=0"), "Cat")
	inRoom(t, cat)
	waitFor(t, 20*time.Second, "Ann and Bob seeing each other", func() bool {
		return cameraOf(ann, bobID).frames > 10 && cameraOf(bob, annID).frames > 10
	})
	// Each tile shows how the server rates its participant's connection.
	waitFor(t, 15*time.Second, "the connection quality on every tile", func() bool {
		return ann.truth(`[...document.querySelectorAll('.tile[data-source="video:cam"] .quality')].every((q) =>
			!q.hidden && ['good', 'fair', 'poor'].includes(q.dataset.quality) && q.getAttribute('aria-label').startsWith('Connection: '))
			&& document.querySelectorAll('.tile[data-source="video:cam"]').length === 3`)
	})
	screenshot(t, ann, "class-en.png")

	// Speaker view: one tile large, a remote one (nobody speaks: the first).
	if err := ann.click("#layout-button"); err != nil {
		t.Fatal(err)
	}
	var view struct {
		Layout   string
		Featured []string
		Widths   []float64
	}
	look := func() {
		if err := ann.eval(`(() => {
			const tiles = [...document.querySelectorAll('.tile')];
			return { layout: document.getElementById('tiles').dataset.layout,
				featured: tiles.filter((t) => t.classList.contains('featured')).map((t) => t.dataset.peerId),
				widths: tiles.map((t) => t.getBoundingClientRect().width) };
		})()`, &view); err != nil {
			t.Fatal(err)
		}
	}
	look()
	if view.Layout != "speaker" || len(view.Featured) != 1 || view.Featured[0] == annID {
		t.Errorf("speaker view: layout %q, featured %v; want one remote tile large", view.Layout, view.Featured)
	}
	// Pinned, her own tile is the large one; unpinned, it is not.
	pin := `.tile.local[data-source="video:cam"] [data-action="pin"]`
	if err := ann.click(pin); err != nil {
		t.Fatal(err)
	}
	look()
	if len(view.Featured) != 1 || view.Featured[0] != annID || !ann.truth(`document.querySelector('`+pin+`').getAttribute('aria-pressed') === 'true'`) {
		t.Errorf("pinned her own tile: featured %v", view.Featured)
	}
	small := view.Widths[len(view.Widths)-1]
	if view.Widths[0] < 2*small {
		t.Errorf("the pinned tile is %.0f px wide, the others %.0f: want it large", view.Widths[0], small)
	}
	if err := ann.click(pin); err != nil {
		t.Fatal(err)
	}
	look()
	if len(view.Featured) != 1 || view.Featured[0] == annID {
		t.Errorf("unpinned: featured %v, want a remote tile again", view.Featured)
	}
	// Full screen, and back.
	bobFull := `.tile[data-peer-id="` + bobID + `"] [data-action="fullscreen"]`
	if err := ann.click(bobFull); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "Bob's tile full screen", func() bool {
		return ann.str(`document.fullscreenElement?.dataset.peerId || ''`) == bobID
	})
	if err := ann.eval(`document.exitFullscreen().then(() => true)`, nil); err != nil {
		t.Fatal(err)
	}

	// The participant list: three, Bob's microphone off once he mutes it.
	if n := ann.str(`String(document.querySelectorAll('#people-list li').length)`); n != "3" {
		t.Errorf("Ann's participant list has %s entries, want 3", n)
	}
	if err := bob.click("#mic-button"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "Bob's microphone off in Ann's list", func() bool {
		return ann.truth(`Boolean(document.querySelector('#people-list li[data-peer-id="` + bobID + `"] .state.off[aria-label="Microphone off"]'))`)
	})

	// Another camera, chosen in the Devices dialog.
	// Chromium's second fake camera is a depth camera (16-bit grey) no
	// encoder takes; its third is an ordinary one (MJPEG).
	camNow := func() string { return ann.str(`window.vclass.local.cam?.getSettings().deviceId || ''`) }
	first := camNow()
	other := ann.str(`navigator.mediaDevices.enumerateDevices().then((ds) =>
		ds.find((d) => d.kind === 'videoinput' && d.label === 'fake_device_2')?.deviceId || '')`)
	if other == "" || other == first {
		t.Fatalf("Chromium with device-count=3 shows no third camera (fake_device_2) besides %q", first)
	}
	if err := ann.click("#devices-button"); err != nil {
		t.Fatal(err)
	}
	if err := ann.eval(`(() => { const s = document.getElementById('camera-select'); s.value = '`+other+`';
		s.dispatchEvent(new Event('change')); return true; })()`, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "Ann sending the other camera", func() bool { return camNow() == other })
	if got := ann.str(`localStorage.getItem('vclass.camera') || ''`); got != other {
		t.Errorf("the chosen camera is not remembered: %q, want %q", got, other)
	}
	if err := ann.click("#devices-close"); err != nil {
		t.Fatal(err)
	}
	decoding := func(what string) {
		t.Helper()
		f0 := cameraOf(bob, annID).frames
		waitFor(t, 10*time.Second, "Bob decoding Ann's camera "+what, func() bool { return cameraOf(bob, annID).frames > f0+20 })
	}
	decoding("after she chose another one")

	// The camera in use ends by itself: the other one takes over, in the class.
	if err := ann.eval(`window.vclass.local.cam.dispatchEvent(new Event('ended'))`, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "Ann back on her first camera", func() bool { return camNow() == first })
	if ann.str(`document.body.dataset.state`) != "joined" {
		t.Errorf("Ann's page is %q after the unplug, want joined", ann.str(`document.body.dataset.state`))
	}
	decoding("after her camera was unplugged")

	// A speaker chosen: every sound of the class plays there.
	speaker := ann.str(`navigator.mediaDevices.enumerateDevices().then((ds) =>
		ds.filter((d) => d.kind === 'audiooutput' && d.deviceId !== 'default').pop()?.deviceId || '')`)
	if speaker == "" {
		t.Fatal("Chromium lists no fake speaker")
	}
	if err := ann.eval(`(() => { const s = document.getElementById('speaker-select'); s.value = '`+speaker+`';
		s.dispatchEvent(new Event('change')); return true; })()`, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "every audio element on the chosen speaker", func() bool {
		return ann.truth(`(() => { const a = [...document.querySelectorAll('audio')];
			return a.length > 0 && a.every((el) => el.sinkId === '` + speaker + `'); })()`)
	})

	// Every control can be reached with the keyboard: Tab goes through them all.
	var reached []string
	for range 40 {
		if err := chromedp.Do(ann.ctx, chromedp.KeyEvent("\t")); err != nil {
			t.Fatal(err)
		}
		reached = append(reached, ann.str(`(() => { const el = document.activeElement;
			return el.id || (el.dataset.action ? el.dataset.action + ':' + (el.dataset.peerId || '') : el.tagName); })()`))
	}
	for _, want := range []string{"mic-button", "cam-button", "screen-button", "layout-button", "devices-button", "leave-button",
		"chat-input", "lang-select", "pin:" + bobID, "fullscreen:" + bobID} {
		if !slices.Contains(reached, want) {
			t.Errorf("Tab never reaches %s; it went through %q", want, reached)
		}
	}

	// The next visit starts with the camera she chose.
	again := openPageIn(t, en, media.URL+"/", "Ann again")
	waitFor(t, 10*time.Second, "the join form's camera list", func() bool {
		return again.truth(`document.getElementById('camera-select').options.length >= 2`)
	})
	if got := again.str(`document.getElementById('camera-select').value`); got != other {
		t.Errorf("the next visit's camera is %q, want the chosen %q", got, other)
	}
}

// lossyRelay forwards a browser's media to the server's UDP ports: it
// listens on addr at each of them and sends each browser's datagrams on
// from a socket of its own on loopback (the server sees a peer behind a
// NAT). When drop is set it loses one RTP packet in four on the way to
// the server, as a poor uplink would.
type lossyRelay struct {
	drop             atomic.Bool
	relayed, dropped atomic.Int64
}

func startLossyRelay(t *testing.T, addr string, lo, hi int) *lossyRelay {
	t.Helper()
	r := &lossyRelay{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for port := lo; port <= hi; port++ {
		front, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(addr), Port: port})
		if err != nil {
			t.Fatalf("relay on %s:%d: %v", addr, port, err)
		}
		server := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
		go func() { <-ctx.Done(); front.Close() }()
		go r.serve(ctx, front, server)
	}
	return r
}

// serve relays one of the server's ports until ctx ends.
func (r *lossyRelay) serve(ctx context.Context, front *net.UDPConn, server *net.UDPAddr) {
	backs := map[netip.AddrPort]*net.UDPConn{}
	seen := 0
	buf := make([]byte, 1600)
	for {
		n, from, err := front.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		back := backs[from]
		if back == nil {
			if back, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
				continue
			}
			backs[from] = back
			go func() { <-ctx.Done(); back.Close() }()
			go func() { // the server's answers go back from the port the browser wrote to
				b := make([]byte, 1600)
				for {
					n, _, err := back.ReadFromUDP(b)
					if err != nil {
						return
					}
					_, _ = front.WriteToUDPAddrPort(b[:n], from)
				}
			}()
		}
		// RTP (not STUN, DTLS or RTCP): version 2, payload type outside 64-95.
		if n >= 12 && buf[0]>>6 == 2 && (buf[1]&0x7f < 64 || buf[1]&0x7f > 95) && r.drop.Load() {
			if seen++; seen%4 == 0 {
				r.dropped.Add(1)
				continue
			}
		}
		r.relayed.Add(1)
		_, _ = back.WriteToUDP(buf[:n], server)
	}
}

// A participant whose uplink loses one packet in four is told her upload
// is poor, and the others see her connection rated poor; once the loss
// stops, the notice goes and the rating comes back. Her Chromium runs in
// a network namespace whose only way to the server (which listens on
// loopback alone) is the relay.
func TestClassPagePoorUpload(t *testing.T) {
	ns := newNetns(t)
	cfg := strings.Replace(loopbackConfig(27540, 27549, ""), `"AnnouncedIp": "127.0.0.1"`, `"AnnouncedIp": "`+ns.hostIP+`"`, 1)
	relay := startLossyRelay(t, ns.hostIP, 27540, 27549)
	media := startMediaAt(t, ":0", cfg)
	port := media.port()
	host := "http://127.0.0.1:" + port
	origin := "http://" + ns.hostIP + ":" + port
	ann := openPageIn(t, ns.chromium(t, origin), origin+"/?room=lossy&name=Ann&autojoin=1&lang=en", "Ann")
	annID := inRoom(t, ann)
	bob := openPage(t, host+"/?room=lossy&name=Bob&autojoin=1&lang=en&cam=0&mic=0", "Bob")
	inRoom(t, bob)
	waitFor(t, 20*time.Second, "Bob seeing Ann's camera", func() bool { return cameraOf(bob, annID).frames > 10 })
	if relay.relayed.Load() == 0 {
		t.Fatal("Ann's media does not go through the relay")
	}
	rating := func(p *page) string {
		return p.str(`document.querySelector('.tile[data-peer-id="` + annID + `"][data-source="video:cam"] .quality')?.dataset.quality || ''`)
	}
	waitFor(t, 15*time.Second, "Ann's connection rated good", func() bool { return rating(bob) == "good" })

	relay.drop.Store(true)
	notice := `document.getElementById('banner').hidden ? '' : document.getElementById('banner-text').textContent`
	waitFor(t, 20*time.Second, "Ann told her upload is poor, Bob seeing it poor", func() bool {
		return strings.Contains(ann.str(notice), "Your connection is poor") && rating(bob) == "poor"
	})
	t.Logf("%d of Ann's packets dropped on her uplink; her rating %s", relay.dropped.Load(), ann.str(`JSON.stringify(window.vclass.state.quality[window.vclass.state.peerId])`))

	relay.drop.Store(false)
	waitFor(t, 20*time.Second, "the notice gone and Ann's connection good again", func() bool {
		return ann.str(notice) == "" && rating(bob) == "good"
	})
}
