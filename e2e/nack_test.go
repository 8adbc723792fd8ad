package e2e

import (
	"context"
	"encoding/binary"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/vclass/vclass/client"
)

// lossyConn is a UDP socket that loses every 20th RTP packet of one SSRC
// on the way in, below SRTP, as a lossy last hop would.
type lossyConn struct {
	net.PacketConn
	ssrc    atomic.Uint32 // the stream to hurt; 0 = none yet
	seen    int
	dropped atomic.Int64
}

func (c *lossyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || n < 12 || b[0]>>6 != 2 || (b[1] >= 192 && b[1] <= 223) {
			return n, addr, err // not RTP (STUN, DTLS, RTCP)
		}
		if want := c.ssrc.Load(); want == 0 || binary.BigEndian.Uint32(b[8:12]) != want {
			return n, addr, err
		}
		c.seen++
		if c.seen%20 == 0 {
			c.dropped.Add(1)
			continue
		}
		return n, addr, err
	}
}

// Under 5 % loss on a subscriber's link, retransmissions from the SFU's
// packet cache fill the gaps.
func TestNackRecoversLoss(t *testing.T) {
	srv := startMedia(t, loopbackConfig(21000, 21099, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	joinParticipant(t, ctx, srv.WS, "lossy", "publisher", true)

	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	loss := &lossyConn{PacketConn: sock}
	sub, err := client.Dial(ctx, client.Options{URL: srv.WS, DisplayName: "subscriber", UDPConn: loss})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var mu sync.Mutex
	seen := map[uint16]bool{}
	var highest uint16
	var started bool
	var recovered, total int
	sub.OnTrack(func(rt *client.RemoteTrack) {
		if rt.Source != "video:cam" {
			// Read, so that the receiver's feedback counts it as received.
			for {
				if _, _, err := rt.Track.ReadRTP(); err != nil {
					return
				}
			}
		}
		loss.ssrc.Store(uint32(rt.Track.SSRC()))
		var p rtp.Packet
		buf := make([]byte, 1500)
		for {
			n, _, err := rt.Track.Read(buf)
			if err != nil {
				return
			}
			if p.Unmarshal(buf[:n]) != nil {
				continue
			}
			mu.Lock()
			seq := p.SequenceNumber
			if !seen[seq] {
				seen[seq] = true
				total++
				if started && int16(seq-highest) < 0 {
					recovered++ // arrived after a later packet: a retransmission
				}
				if !started || int16(seq-highest) > 0 {
					highest, started = seq, true
				}
			}
			mu.Unlock()
		}
	})
	if _, err := sub.JoinRoom(ctx, "lossy"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "40 packets dropped on the subscriber's link", func() bool { return loss.dropped.Load() >= 40 })
	// Each drop should be answered by a retransmission within a round trip
	// or two; the publisher keeps sending meanwhile, so compare live counts.
	defer func() {
		_, m := srv.get(t, "/metrics")
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, "vclass_nacks") || strings.HasPrefix(l, "vclass_retrans") {
				t.Log(l)
			}
		}
		mu.Lock()
		t.Logf("received %d, dropped %d, recovered %d", total, loss.dropped.Load(), recovered)
		mu.Unlock()
	}()
	waitFor(t, 10*time.Second, "80% of dropped packets recovered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return recovered*10 >= int(loss.dropped.Load())*8
	})
}
