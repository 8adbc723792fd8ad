package main

import (
	"fmt"
	"math"
	"strings"
)

// kneeChart draws a sweep as SVG: three panels over the subscribers
// (server CPU, loss, latency), one point per step.
func kneeChart(rows []stepResult, o options) string {
	const (
		width, panelH     = 720, 170
		left, right, gap  = 70, 20, 40
		top               = 60
		plotW             = width - left - right
		height            = top + 3*panelH + 3*gap
		cpuColor, lossCol = "#1f77b4", "#d62728"
		p50Color, p99Col  = "#2ca02c", "#9467bd"
		fwdColor          = "#ff7f0e"
	)
	maxSubs := 0
	for _, r := range rows {
		maxSubs = max(maxSubs, r.subscribers)
	}
	x := func(n int) float64 { return left + float64(n)/float64(max(maxSubs, 1))*plotW }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="14">vclass-media, one publisher (%d fps, %d B frames), subscribers %d..%d</text>`+"\n",
		left, o.fps, o.frameBytes, rows[0].subscribers, maxSubs)

	// panel draws series over 0..yMax, or with logMin > 0 over
	// logMin..yMax on a log scale (a decade a tick).
	panel := func(i int, title, unit string, logMin, yMax float64, series []struct {
		color, name string
		y           func(stepResult) float64
	}) {
		y0 := float64(top + i*(panelH+gap) + panelH)
		y := func(v float64) float64 { return y0 - math.Min(v, yMax)/yMax*panelH }
		ticks := []float64{0, yMax / 4, yMax / 2, 3 * yMax / 4, yMax}
		if logMin > 0 {
			decades := math.Log10(yMax / logMin)
			y = func(v float64) float64 {
				return y0 - math.Max(0, math.Min(math.Log10(math.Max(v, logMin)/logMin), decades))/decades*panelH
			}
			ticks = ticks[:0]
			for v := logMin; v <= yMax*1.001; v *= 10 {
				ticks = append(ticks, v)
			}
		}
		fmt.Fprintf(&b, `<text x="%d" y="%.0f">%s</text>`+"\n", left, y0-panelH-6, title)
		fmt.Fprintf(&b, `<rect x="%d" y="%.0f" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", left, y0-panelH, plotW, panelH)
		for k, v := range ticks {
			fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, trimFloat(v)+unit)
			if k > 0 && k < len(ticks)-1 {
				fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", left, left+plotW, y(v), y(v))
			}
		}
		for _, r := range rows {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle" fill="#666">%d</text>`+"\n", x(r.subscribers), y0+14, r.subscribers)
		}
		for k, s := range series {
			var pts []string
			for _, r := range rows {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(r.subscribers), y(s.y(r))))
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
			for _, p := range pts {
				xy := strings.Split(p, ",")
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], s.color)
			}
			fmt.Fprintf(&b, `<text x="%d" y="%.0f" fill="%s">%s</text>`+"\n", left+plotW-150, y0-panelH+16+14*float64(k), s.color, s.name)
		}
	}
	type series = []struct {
		color, name string
		y           func(stepResult) float64
	}
	panel(0, "server CPU (one core = 100 %), and packets forwarded of those due (subscribers × packets in)", " %", 0, 110, series{
		{cpuColor, "server CPU", func(r stepResult) float64 { return 100 * r.cpu / r.window }},
		{fwdColor, "forwarded", func(r stepResult) float64 {
			return 100 * r.outPkts / math.Max(r.inPkts*float64(r.subscribers), 1)
		}},
	})
	maxLoss := 1.0
	for _, r := range rows {
		maxLoss = math.Max(maxLoss, math.Ceil(r.lossPercent()))
	}
	panel(1, "packets lost (subscribers' count of sequence numbers)", " %", 0, maxLoss, series{
		{lossCol, "lost", func(r stepResult) float64 { return r.lossPercent() }},
	})
	panel(2, "capture to arrival, a frame's first packet (ms, log scale)", "", 0.1, 10000, series{
		{p50Color, "p50", func(r stepResult) float64 { return r.p50.Seconds() * 1e3 }},
		{p99Col, "p99", func(r stepResult) float64 { return r.p99.Seconds() * 1e3 }},
	})
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">subscribers</text>`+"\n", left+plotW/2, height-8)
	b.WriteString("</svg>\n")
	return b.String()
}

// trimFloat prints v with no more digits than it needs.
func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}
