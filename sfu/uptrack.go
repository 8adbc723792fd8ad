package sfu

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// keyframeInterval is the least time between two keyframe requests sent
// to one publisher track, however many subscribers ask.
const keyframeInterval = 500 * time.Millisecond

// UpTrack is one track a publisher sends. Its reader goroutine stores every
// packet in a cache shared by all subscribers and hands it to each down
// track in turn; a down track never blocks it.
type UpTrack struct {
	id        string
	engine    *Engine
	track     *webrtc.TrackRemote
	writeRTCP func([]rtcp.Packet) error
	codec     webrtc.RTPCodecParameters
	codecKind codecKind
	ssrc      uint32
	levelExt  uint8 // negotiated id of the audio level extension, 0 = none

	cache *packetCache

	mu    sync.Mutex // serializes changes of downs
	downs atomic.Pointer[[]*DownTrack]

	sr              atomic.Pointer[srClock] // the publisher's last sender report
	lastKeyframeReq atomic.Int64            // unix nanos
	level           atomic.Uint32           // smoothed audio level, dBov * 100 (0 loud .. 12700 silent)
	done            chan struct{}
}

// upPacket is one received packet as the down tracks see it. The reader
// reuses it for every packet: down tracks must not keep it.
type upPacket struct {
	header   rtp.Header
	payload  []byte
	extSeq   uint64
	keyframe bool
	arrival  time.Time
}

func newUpTrack(id string, e *Engine, track *webrtc.TrackRemote, recv *webrtc.RTPReceiver, writeRTCP func([]rtcp.Packet) error) *UpTrack {
	levelExt := uint8(0)
	for _, ext := range recv.GetParameters().HeaderExtensions {
		if ext.URI == audioLevelURI {
			levelExt = uint8(ext.ID)
		}
	}
	u := makeUpTrack(id, e, track.Codec(), uint32(track.SSRC()), levelExt, writeRTCP)
	u.track = track
	return u
}

// makeUpTrack builds an up track that is not (yet) reading a Pion track.
func makeUpTrack(id string, e *Engine, codec webrtc.RTPCodecParameters, ssrc uint32, levelExt uint8, writeRTCP func([]rtcp.Packet) error) *UpTrack {
	u := &UpTrack{
		id:        id,
		engine:    e,
		writeRTCP: writeRTCP,
		codec:     codec,
		codecKind: codecKindOf(codec.MimeType),
		ssrc:      ssrc,
		done:      make(chan struct{}),
	}
	u.level.Store(12700)
	size := 512
	if u.codecKind == codecAudio {
		size = 128
		u.levelExt = levelExt
	}
	u.cache = newPacketCache(size)
	u.downs.Store(&[]*DownTrack{})
	return u
}

// ID is the track's id given by its owner (the producer id).
func (u *UpTrack) ID() string { return u.id }

// Kind is audio or video.
func (u *UpTrack) Kind() webrtc.RTPCodecType {
	if u.codecKind == codecAudio {
		return webrtc.RTPCodecTypeAudio
	}
	return webrtc.RTPCodecTypeVideo
}

// Codec is the codec the publisher sends.
func (u *UpTrack) Codec() webrtc.RTPCodecParameters { return u.codec }

// Done is closed when the publisher's track has ended.
func (u *UpTrack) Done() <-chan struct{} { return u.done }

// AudioLevel is the recent audio level in dBov (0 loudest, 127 silence),
// from the RFC 6464 header extension; 127 for video or without it.
func (u *UpTrack) AudioLevel() float64 { return float64(u.level.Load()) / 100 }

// run reads packets until the track ends.
func (u *UpTrack) run() {
	defer close(u.done)
	buf := make([]byte, maxPacketSize)
	r := upReader{level: 127}
	for {
		n, _, err := u.track.Read(buf)
		if err != nil {
			return
		}
		u.handle(&r, buf[:n])
	}
}

// upReader is the state of the reading goroutine, reused for every packet.
type upReader struct {
	p      upPacket
	unwrap seqUnwrapper
	level  float64
}

// handle caches one packet and forwards it to every down track.
func (u *UpTrack) handle(r *upReader, pkt []byte) {
	p := &r.p
	payload, err := parseRTP(pkt, &p.header)
	if err != nil {
		return
	}
	stats := &u.engine.Stats
	stats.PacketsIn.Add(1)
	stats.BytesIn.Add(uint64(len(pkt)))
	p.payload = payload
	p.extSeq = r.unwrap.unwrap(p.header.SequenceNumber)
	p.arrival = time.Now()
	p.keyframe = u.codecKind != codecAudio && isKeyframe(u.codecKind, payload)
	if u.levelExt != 0 {
		if ext := p.header.GetExtension(u.levelExt); len(ext) > 0 {
			// Exponential smoothing over roughly the last 15 packets (300 ms).
			r.level += (float64(ext[0]&0x7f) - r.level) / 15
			u.level.Store(uint32(math.Round(r.level * 100)))
		}
	}
	u.cache.store(p.extSeq, pkt)
	downs := *u.downs.Load()
	if len(downs) == 0 {
		return
	}
	u.engine.beginRound()
	for _, d := range downs {
		d.forward(p)
	}
	u.engine.endRound()
}

// RequestKeyframe asks the publisher for a keyframe, at most once per
// keyframeInterval.
func (u *UpTrack) RequestKeyframe() {
	if u.codecKind == codecAudio {
		return
	}
	now := time.Now().UnixNano()
	last := u.lastKeyframeReq.Load()
	if now-last < int64(keyframeInterval) || !u.lastKeyframeReq.CompareAndSwap(last, now) {
		return
	}
	if err := u.writeRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: u.ssrc}}); err == nil {
		u.engine.Stats.PLIsOut.Add(1)
	}
}

func (u *UpTrack) addDown(d *DownTrack) {
	u.mu.Lock()
	defer u.mu.Unlock()
	old := *u.downs.Load()
	next := make([]*DownTrack, 0, len(old)+1)
	next = append(next, old...)
	next = append(next, d)
	u.downs.Store(&next)
}

func (u *UpTrack) removeDown(d *DownTrack) {
	u.mu.Lock()
	defer u.mu.Unlock()
	old := *u.downs.Load()
	next := make([]*DownTrack, 0, len(old))
	for _, x := range old {
		if x != d {
			next = append(next, x)
		}
	}
	u.downs.Store(&next)
}

// Subscribers is the number of down tracks bound to this track.
func (u *UpTrack) Subscribers() int { return len(*u.downs.Load()) }
