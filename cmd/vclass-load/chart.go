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
		top               = 40
		plotW             = width - left - right
		height            = top + 3*panelH + 3*gap
		cpuColor, lossCol = "#1f77b4", "#d62728"
		p50Color, p99Col  = "#2ca02c", "#9467bd"
	)
	maxSubs := 0
	for _, r := range rows {
		maxSubs = max(maxSubs, r.subscribers)
	}
	x := func(n int) float64 { return left + float64(n)/float64(max(maxSubs, 1))*plotW }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="14">vclass-media, one publisher (%d fps, %d B frames), subscribers %d..%d</text>`+"\n",
		left, o.fps, o.frameBytes, rows[0].subscribers, maxSubs)

	panel := func(i int, title, unit string, yMax float64, series []struct {
		color, name string
		y           func(stepResult) float64
	}) {
		y0 := float64(top + i*(panelH+gap) + panelH)
		y := func(v float64) float64 { return y0 - math.Min(v, yMax)/yMax*panelH }
		fmt.Fprintf(&b, `<text x="%d" y="%.0f">%s</text>`+"\n", left, y0-panelH-6, title)
		fmt.Fprintf(&b, `<rect x="%d" y="%.0f" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", left, y0-panelH, plotW, panelH)
		for k := 0; k <= 4; k++ {
			v := yMax * float64(k) / 4
			fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, trimFloat(v)+unit)
			if k > 0 && k < 4 {
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
	panel(0, "server CPU (one core = 100 %)", " %", 100, series{
		{cpuColor, "server CPU", func(r stepResult) float64 { return 100 * r.cpu / r.window }},
	})
	maxLoss := 1.0
	for _, r := range rows {
		maxLoss = math.Max(maxLoss, math.Ceil(r.lossPercent()))
	}
	panel(1, "packets lost (subscribers' count of sequence numbers)", " %", maxLoss, series{
		{lossCol, "lost", func(r stepResult) float64 { return r.lossPercent() }},
	})
	maxLat := 10.0
	for _, r := range rows {
		maxLat = math.Max(maxLat, math.Ceil(r.p99.Seconds()*1e3/10)*10)
	}
	panel(2, "capture to arrival, a frame's first packet (ms)", "", maxLat, series{
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
