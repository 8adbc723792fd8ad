package sfu

import (
	"log/slog"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// testEngine is an engine with no sockets, whose logs go nowhere, for
// tracks that tests feed by hand.
func testEngine() *Engine { return &Engine{log: slog.New(slog.DiscardHandler)} }

// testUpTrack is an up track of one stream (layer 0, no simulcast) that a
// test feeds by hand with handle.
func testUpTrack(id string, e *Engine, codec webrtc.RTPCodecParameters, ssrc uint32, levelExt uint8, writeRTCP func([]rtcp.Packet) error) *UpTrack {
	u := makeUpTrack(id, e, codec, levelExt, nil, writeRTCP)
	u.addLayer(0, "", ssrc, nil)
	return u
}

// handle is handleAt now, with a reader of the test's.
func (l *upLayer) handle(r *upReader, pkt []byte) { l.handleAt(r, pkt, time.Now()) }

// handle feeds a packet to layer 0.
func (u *UpTrack) handle(r *upReader, pkt []byte) { u.layers[0].Load().handle(r, pkt) }
