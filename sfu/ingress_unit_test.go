package sfu

import (
	"bytes"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/srtp/v3"

	"github.com/vclass/vclass/internal/srtpgcm"
)

// The direct path takes up a stream Pion placed at the packet after the
// newest its layer has (never while Pion holds an earlier one), with the
// rollover count the layer's reader gives it (here 1: Pion's first
// packets crossed the wrap), gives Pion one packet in pionEvery untouched as well (which the
// layer's reader then skips: one delivery, in order), refuses a
// forged packet and one too long without harm, and after a time on
// another route (ICE-TCP: every packet through Pion, 40,000 of them, more
// than SRTP's guess spans) takes the stream up again.
func TestPubInReadSRTP(t *testing.T) {
	t.Run("pion/srtp", func(t *testing.T) { testPubInReadSRTP(t, false) })
	t.Run("srtpgcm", func(t *testing.T) { testPubInReadSRTP(t, true) })
}

func testPubInReadSRTP(t *testing.T, ownGCM bool) {
	e := testEngine()
	up := testUpTrack("up", e, vp8Codec, 1111, 0, func([]rtcp.Packet) error { return nil })
	l := up.layer(0)
	key, salt := bytes.Repeat([]byte{7}, 16), bytes.Repeat([]byte{9}, 12)
	profile := srtp.ProtectionProfileAeadAes128Gcm
	newCtx := func(opts ...srtp.ContextOption) *srtp.Context {
		c, err := srtp.CreateContext(key, salt, profile, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	publisher, pion := newCtx(), newCtx()
	in := newPubIn(nil)
	in.p = &Publisher{engine: e}
	in.rtpCtx = newCtx(srtp.SRTPReplayProtection(inReplayWindow))
	if ownGCM {
		var err error
		if in.gcm, err = srtpgcm.NewOpener(key, salt); err != nil {
			t.Fatal(err)
		}
		in.rtpCtx = nil // not to be used
	}
	in.register(l)

	seq := uint16(65400)
	next := func() []byte {
		seq++
		b, err := publisher.EncryptRTP(nil, vp8Packet(seq, uint32(seq)*3000, false), nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	skipped := 0
	throughPion := func(b []byte) { // as Pion's SRTP session and the layer's reader (run) do
		plain, err := pion.DecryptRTP(nil, b, nil)
		if err != nil {
			t.Fatalf("Pion's context refused %d: %v", seq, err)
		}
		if in.took(plain) {
			skipped++
			return
		}
		l.deliver(plain, time.Now())
	}
	for range 200 { // the first packets, across the wrap
		throughPion(next())
	}
	direct := func(n int) (leftToPion int) {
		for range n {
			b := next()
			sent := bytes.Clone(b)
			if in.readSRTP(b) {
				continue
			}
			if !bytes.Equal(b, sent) {
				t.Fatalf("packet %d left to Pion changed", seq)
			}
			leftToPion++
			throughPion(b)
		}
		return leftToPion
	}
	// Not while Pion still holds the packet before it: it would come after.
	held := next()
	if b := next(); in.readSRTP(b) {
		t.Fatal("a stream taken up while Pion held the packet before")
	} else {
		throughPion(held)
		throughPion(b)
	}
	if left := direct(1); left != 0 || e.Stats.DirectIn.Load() != 1 {
		t.Fatalf("the first direct packet (rollover count 1) left to Pion: %d, taken %d", left, e.Stats.DirectIn.Load())
	}
	if left := direct(2 * pionEvery); left != 2 || skipped != 2 {
		t.Errorf("%d of %d packets given to Pion too, %d of them skipped by the layer's reader; want 2 and 2", left, 2*pionEvery, skipped)
	}
	refused, read := e.Stats.RTPRefused.Load(), e.Stats.PacketsIn.Load()
	forged := next()
	forged[len(forged)-1] ^= 1
	if !in.readSRTP(forged) || e.Stats.RTPRefused.Load() != refused+1 || e.Stats.PacketsIn.Load() != read {
		t.Error("a forged packet of a direct stream was not dropped")
	}
	long := make([]byte, 2000)
	copy(long, next())
	if in.readSRTP(long) {
		t.Error("a datagram longer than a packet was taken")
	}

	in.resync() // the route went to ICE-TCP
	for range 40000 {
		throughPion(next())
	}
	in.resync() // and came back
	before := e.Stats.DirectIn.Load()
	if left := direct(10); left != 0 || e.Stats.DirectIn.Load() != before+10 {
		t.Errorf("after another route: %d packets left to Pion, %d taken; want all taken", left, e.Stats.DirectIn.Load()-before)
	}
	if got := e.Stats.PacketsIn.Load(); got != uint64(200+2+1+2*pionEvery+40000+10) {
		t.Errorf("the layer read %d packets", got)
	}
}
