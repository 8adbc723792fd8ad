package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vclass/vclass/client"
)

// runRooms loads the server with many small classes: -rooms rooms of
// -per-room members, each publishing synthetic video (and -audio) and
// receiving every other member's (-lean or not), and measures one window
// as run does for one big room: what a forwarded packet costs the server
// when each is sent to a few subscribers rather than to many.
func runRooms(ctx context.Context, o options, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, o.warmup+o.duration+2*time.Minute)
	defer cancel()
	metricsURL := "http" + strings.TrimSuffix(strings.TrimPrefix(o.url, "ws"), "/ws") + "/metrics"
	var received atomic.Int64
	var lean leanCounts
	var wg sync.WaitGroup
	playCtx, stopPlaying := context.WithCancel(ctx)
	var clients []*client.Client
	defer func() {
		stopPlaying()
		wg.Wait()
		for _, c := range clients {
			c.Close()
		}
	}()
	recv := o.receiver(&lean, &received)
	for r := range o.rooms {
		for m := range o.perRoom {
			c, err := publish(playCtx, o, fmt.Sprintf("%s-%d", o.room, r), r*o.perRoom+m, &wg, recv)
			if err != nil {
				return fmt.Errorf("room %d, member %d: %w", r, m, err)
			}
			clients = append(clients, c)
		}
	}
	r, err := measure(ctx, o, metricsURL, o.rooms*o.perRoom, &lean, &received)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "rooms %d of %d members, each publishing and receiving the others\n", o.rooms, o.perRoom)
	r.print(out, o)
	return nil
}
