package client

import (
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// simulcastTrack is one layer of a simulcast LocalTrack. A receiver tells
// the layers of an m-line apart by the mid and rid header extensions of
// their packets (RFC 8852), which browsers write and Pion's local tracks
// do not: this wrapper adds them.
type simulcastTrack struct {
	webrtc.TrackLocal
	mid *atomic.Pointer[string] // the transceiver's, once the offer gave it one
}

// Bind implements webrtc.TrackLocal.
func (t *simulcastTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	w := &ridWriter{TrackLocalWriter: ctx.WriteStream(), rid: []byte(t.RID())}
	if mid := t.mid.Load(); mid != nil {
		w.mid = []byte(*mid)
	}
	for _, ext := range ctx.HeaderExtensions() {
		switch ext.URI {
		case sdp.SDESMidURI:
			w.midID = uint8(ext.ID)
		case sdp.SDESRTPStreamIDURI:
			w.ridID = uint8(ext.ID)
		}
	}
	return t.TrackLocal.Bind(ridContext{ctx, w})
}

// ridContext hands the inner track a writer that names the layer.
type ridContext struct {
	webrtc.TrackLocalContext
	w *ridWriter
}

func (c ridContext) WriteStream() webrtc.TrackLocalWriter { return c.w }

type ridWriter struct {
	webrtc.TrackLocalWriter
	midID, ridID uint8
	mid, rid     []byte
}

func (w *ridWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if w.midID != 0 && len(w.mid) > 0 {
		_ = h.SetExtension(w.midID, w.mid)
	}
	if w.ridID != 0 {
		_ = h.SetExtension(w.ridID, w.rid)
	}
	return w.TrackLocalWriter.WriteRTP(h, payload)
}

func (w *ridWriter) Write(b []byte) (int, error) {
	var p rtp.Packet
	if err := p.Unmarshal(b); err != nil {
		return 0, err
	}
	return w.WriteRTP(&p.Header, p.Payload)
}
