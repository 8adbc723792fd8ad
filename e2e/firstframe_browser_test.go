package e2e

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// firstFrameHook, run in a page before its own scripts, notes when the
// first remote video frame is presented (requestVideoFrameCallback), in
// milliseconds from the navigation's start.
const firstFrameHook = `(() => {
	const seen = new WeakSet();
	const watch = () => {
		for (const v of document.querySelectorAll('.tile:not(.local) video')) {
			if (seen.has(v)) continue;
			seen.add(v);
			v.requestVideoFrameCallback(() => { window.__firstFrame ??= performance.now(); });
		}
		if (window.__firstFrame === undefined) setTimeout(watch, 5);
	};
	document.addEventListener('DOMContentLoaded', watch);
})();`

// Join to first frame in Chromium, a measurement run by hand (docs/
// BENCHMARKS.md): pages open the class one after another, 1 s apart, while
// a teacher's page publishes its camera; each notes when the first remote frame was on
// screen, from the navigation's start and from the page's scripts loaded.
//
//	VCLASS_BENCH_JOIN=10 go test ./e2e -run TestPageJoinToFirstFrame -v
func TestPageJoinToFirstFrame(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("VCLASS_BENCH_JOIN"))
	if n <= 0 {
		t.Skip("a measurement: VCLASS_BENCH_JOIN=10 go test ./e2e -run TestPageJoinToFirstFrame -v")
	}
	media := startMedia(t, loopbackConfig(22950, 22959, ""))
	teacher := openPage(t, media.URL+"/?room=firstframe&name=Teacher&autojoin=1", "Teacher") // Chromium's fake camera
	inRoom(t, teacher)
	url := media.URL + "/?room=firstframe&name=Pupil&autojoin=1&cam=0&mic=0"
	var fromStart, fromLoaded []float64
	for i := range n {
		ctx, cancel := chromedp.NewContext(browserContext(t))
		err := chromedp.Do(ctx) // the tab
		if err == nil {
			_, err = chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: firstFrameHook})
		}
		if err == nil {
			err = chromedp.Do(ctx, chromedp.Navigate(url))
		}
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		var got []float64
		deadline := time.Now().Add(10 * time.Second)
		for len(got) == 0 {
			v, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`window.__firstFrame === undefined ? [] :
				[window.__firstFrame, performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd]`))
			if err == nil && len(v) == 2 {
				got = v
			}
			if time.Now().After(deadline) {
				state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({joined: window.vclass && window.vclass.state.joined,
					videos: [...document.querySelectorAll('video')].map((v) => v.parentElement.className + ' ' + v.readyState)})`))
				cancel()
				t.Fatalf("page %d: no remote frame within 10 s: %s", i, state)
			}
			time.Sleep(20 * time.Millisecond)
		}
		fromStart, fromLoaded = append(fromStart, got[0]), append(fromLoaded, got[0]-got[1])
		cancel()
		time.Sleep(time.Second)
	}
	show := func(ms []float64) string {
		s := slices.Clone(ms)
		slices.Sort(s)
		var all []string
		for _, v := range ms {
			all = append(all, fmt.Sprintf("%.0f", v))
		}
		return fmt.Sprintf("p50 %.0f ms (min %.0f, max %.0f; %s)", s[len(s)/2], s[0], s[len(s)-1], strings.Join(all, " "))
	}
	t.Logf("first remote frame on screen, from the navigation's start: %s", show(fromStart))
	t.Logf("... from the page's scripts loaded (DOMContentLoaded): %s", show(fromLoaded))
}
