package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/vclass/vclass/client"
)

// maxRecordings bounds a recorder run.
const maxRecordings = 200

// runRecorder starts one room per recording, each with one publisher of
// synthetic VP8 and Opus, records every room, and reads the recorder's
// /metrics at the start (no recording), before and after the window.
func runRecorder(ctx context.Context, o options, out io.Writer) error {
	if o.recordings < 1 || o.recordings > maxRecordings {
		return fmt.Errorf("1 to %d recordings", maxRecordings)
	}
	ctx, cancel := context.WithTimeout(ctx, o.warmup+o.duration+3*time.Minute)
	defer cancel()
	hc := &http.Client{Timeout: 30 * time.Second}
	if o.insecure {
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	}
	metricsURL := o.recorder + "/metrics"
	idle, err := scrapeWith(ctx, hc, metricsURL)
	if err != nil {
		return err
	}

	var clients []*client.Client
	var wg sync.WaitGroup
	playCtx, stopPlaying := context.WithCancel(ctx)
	defer func() {
		stopPlaying()
		wg.Wait()
		for _, c := range clients {
			c.Close()
		}
	}()
	var ids []string
	defer func() {
		for _, id := range ids {
			_ = recorderCall(context.Background(), hc, o, "POST", "/api/v1/recordings/"+id+"/stop", nil, nil)
		}
	}()
	for i := range o.recordings {
		room := fmt.Sprintf("%s-%d", o.room, i)
		c, err := publish(playCtx, o, room, i, &wg, nil)
		if err != nil {
			return err
		}
		clients = append(clients, c)
		var rec struct {
			ID string `json:"id"`
		}
		if err := recorderCall(ctx, hc, o, "POST", "/api/v1/recordings", map[string]any{"room": room, "compose": false}, &rec); err != nil {
			return err
		}
		ids = append(ids, rec.ID)
	}
	if err := sleep(ctx, o.warmup); err != nil {
		return err
	}
	before, err := scrapeWith(ctx, hc, metricsURL)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := sleep(ctx, o.duration); err != nil {
		return err
	}
	after, err := scrapeWith(ctx, hc, metricsURL)
	if err != nil {
		return err
	}
	elapsed := time.Since(t0).Seconds()
	n := float64(o.recordings)
	cpu := after["process_cpu_seconds_total"] - before["process_cpu_seconds_total"]
	written := after["vclass_recorder_bytes_written_total"] - before["vclass_recorder_bytes_written_total"]
	lost := after["vclass_recorder_packets_lost_total"] - before["vclass_recorder_packets_lost_total"]
	rss, rss0 := after["process_resident_memory_bytes"], idle["process_resident_memory_bytes"]
	fmt.Fprintf(out, "recordings %d (1 publisher each: VP8 %d B x %d fps + Opus), window %.1f s\n", o.recordings, o.frameBytes, o.fps, elapsed)
	fmt.Fprintf(out, "recorder CPU %.1f %% of a core, %.2f %% per recording\n", 100*cpu/elapsed, 100*cpu/elapsed/n)
	fmt.Fprintf(out, "recorder RSS %.1f MiB (%.1f idle): %.2f MiB per recording\n", rss/(1<<20), rss0/(1<<20), (rss-rss0)/n/(1<<20))
	fmt.Fprintf(out, "written %.0f kbit/s per recording, packets lost %.0f\n", 8*written/elapsed/n/1000, lost)
	return nil
}

func recorderCall(ctx context.Context, hc *http.Client, o options, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, o.recorder+path, rd)
	if err != nil {
		return err
	}
	req.SetBasicAuth(o.recorderUser, o.recorderPass)
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, res.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
