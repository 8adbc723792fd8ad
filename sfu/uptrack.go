package sfu

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/internal/rtpfb"
)

// keyframeInterval is the least time between two keyframe requests sent
// to one publisher stream, however many subscribers ask.
const keyframeInterval = 500 * time.Millisecond

// publisherKeyframeGap is the least time between two keyframe requests
// sent to one publisher for any of its layers. A browser's encoder makes
// a keyframe of every layer for a request on any, and ignores the next
// request of any layer for 300 ms (libwebrtc's EncoderRtcpFeedback): one
// sent sooner is lost, and the subscriber waiting for it waits a whole
// keyframeInterval more. Sent later, it is heard. (50 ms more for jitter.)
const publisherKeyframeGap = 350 * time.Millisecond

// MaxLayers is the most simulcast layers a track has.
const MaxLayers = 3

// UpTrack is one track a publisher sends: a single RTP stream, or up to
// MaxLayers simulcast layers of the same source (each its own stream,
// encoder and numbering; layer 0 is the smallest). Each layer's reader
// goroutine stores every packet in a cache of its own, shared by all
// subscribers, and hands it to each down track in turn; a down track
// never blocks it.
type UpTrack struct {
	id        string
	engine    *Engine
	writeRTCP func([]rtcp.Packet) error
	codec     webrtc.RTPCodecParameters
	codecKind codecKind
	levelExt  uint8 // negotiated id of the audio level extension, 0 = none
	ddExt     uint8 // AV1: negotiated id of the dependency descriptor, 0 = none
	nacks     bool  // the publisher resends what it is asked for
	rids      []string

	layers [MaxLayers]atomic.Pointer[upLayer]
	// lastKeyframeReq is when a keyframe of any layer was last asked for
	// (unix nanos).
	lastKeyframeReq atomic.Int64

	mu    sync.Mutex // serializes changes of downs and of the layer count
	downs atomic.Pointer[[]*DownTrack]
	dyn   dynacast
	live  int  // layers still reading, under mu
	ended bool // every layer ended: done is closed, under mu

	level atomic.Uint32 // smoothed audio level, dBov * 100 (0 loud .. 12700 silent)
	// svc: the single stream is scalable (VP9 or AV1 with spatial layers seen);
	// its spatial layers are the track's layers.
	svc  atomic.Bool
	done chan struct{}
}

// upLayer is one RTP stream of an UpTrack.
type upLayer struct {
	up    *UpTrack
	index int8
	rid   string
	ssrc  uint32
	track *webrtc.TrackRemote
	cache *packetCache

	sr              atomic.Pointer[srClock] // the publisher's last sender report of this stream
	refOffset       atomic.Uint64           // valid<<32 | offset from RTP time to the publisher's wall clock in ticks
	lastKeyframeReq atomic.Int64            // unix nanos
	lastPacket      atomic.Int64            // unix nanos
	bytes           atomic.Uint64           // received
	rate            atomic.Uint64           // bps lately, measured every layerStale/3
	size            atomic.Uint32           // width<<16 | height of its last keyframe, 0 until known
	// Temporal layers (of a stream that is not scalable): bytes received
	// of each, and the bps of the base layer and of the base and first
	// layers together (0: no temporal layers seen).
	tidBytes [4]atomic.Uint64
	tidRate  [2]atomic.Uint64
	// VP9 or AV1 SVC: the spatial layers of this one stream (the track's
	// layers then stand for them).
	svc svcLayers
	// AV1: the last dependency structure, for resends (the reader's own
	// copy is not for other goroutines).
	ddShape atomic.Pointer[ddStructure]

	// The stream's packets come from Pion's reader (run) and, once its
	// transport is up, from the socket's (the direct path, pubIn): one at
	// a time, in reader.
	mu     sync.Mutex
	reader upReader
	took   func(pkt []byte) bool // the direct path took pkt already (nil: none)
	// What the publisher is told of the stream (pubIn's feedback).
	fbMu sync.Mutex
	rx   rtpfb.Reception
	nack rtpfb.NackLog
}

// svcLayers measures the spatial layers of a scalable (VP9 or AV1 SVC) stream:
// what layer s costs is what every layer up to s costs together (each
// builds on those below it).
type svcLayers struct {
	bytes [MaxLayers][4]atomic.Uint64 // received, by spatial and temporal layer
	last  [MaxLayers]atomic.Int64     // unix nanos of each spatial layer's last packet
	size  [MaxLayers]atomic.Uint32    // width<<16 | height from the scalability structure
	// bps of the spatial layers up to s together, at all temporal layers,
	// at the base temporal layer, and at the base and first.
	rate     [MaxLayers]atomic.Uint64
	tidRate  [MaxLayers][2]atomic.Uint64
	previous [MaxLayers][3]uint64 // cumulative bytes at the last measure (the watcher's own)
}

// upPacket is one received packet as the down tracks see it. The reader
// reuses it for every packet: down tracks must not keep it. A track's
// layers have a reader each, so what a down track writes is built here,
// in the reader's own packet, not in the down track.
type upPacket struct {
	out     rtp.Header          // the header a down track sends
	scratch [maxPacketSize]byte // a payload a down track rewrites
	sealed  [sealSize]byte      // the packet as a down track sends it
	twcc    twccExt             // its transport-wide sequence number

	header   rtp.Header
	payload  []byte
	extSeq   uint64
	keyframe bool
	arrival  time.Time
	layer    int8
	refTS    uint32
	refOK    bool
	desc     payloadDesc
	hasDesc  bool
	svc      bool   // the track is scalable (UpTrack.svc)
	dd       []byte // AV1: its dependency descriptor, forwarded as it is
}

// makeUpTrack builds an up track without layers yet. rids are the
// simulcast layers the publisher declared, smallest first (none: one
// stream).
//
// ext is the negotiated id of the extension the track reads: the audio
// level of audio, the dependency descriptor of AV1 video.
func makeUpTrack(id string, e *Engine, codec webrtc.RTPCodecParameters, ext uint8, rids []string, writeRTCP func([]rtcp.Packet) error) *UpTrack {
	u := &UpTrack{
		id:        id,
		engine:    e,
		writeRTCP: writeRTCP,
		codec:     codec,
		codecKind: codecKindOf(codec.MimeType),
		rids:      rids,
		done:      make(chan struct{}),
	}
	u.level.Store(12700)
	for _, f := range codec.RTCPFeedback {
		u.nacks = u.nacks || f.Type == webrtc.TypeRTCPFBNACK && f.Parameter == ""
	}
	switch u.codecKind {
	case codecAudio:
		u.levelExt = ext
	case codecAV1:
		u.ddExt = ext
	}
	u.downs.Store(&[]*DownTrack{})
	return u
}

// addLayer starts a layer of u; false when u has ended or the layer is
// taken. Its reader must then be started with run.
func (u *UpTrack) addLayer(index int8, rid string, ssrc uint32, track *webrtc.TrackRemote) (*upLayer, bool) {
	if index < 0 || index >= MaxLayers {
		return nil, false
	}
	size := 512
	if u.codecKind == codecAudio {
		size = 128
	}
	l := &upLayer{up: u, index: index, rid: rid, ssrc: ssrc, track: track, cache: newPacketCache(size)}
	l.reader.level = 127
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.ended || u.layers[index].Load() != nil {
		return nil, false
	}
	u.layers[index].Store(l)
	u.live++
	return l, true
}

// layerEnded is called when a layer's reader stops; the track ends with
// its last layer.
func (u *UpTrack) layerEnded(l *upLayer) {
	u.mu.Lock()
	u.layers[l.index].CompareAndSwap(l, nil)
	u.live--
	last := u.live == 0 && !u.ended
	if last {
		u.ended = true
	}
	u.mu.Unlock()
	if last {
		close(u.done)
		return
	}
	u.layersChanged()
}

// layersChanged tells every down track that the arriving layers changed.
func (u *UpTrack) layersChanged() {
	for _, d := range *u.downs.Load() {
		d.layersChanged()
	}
}

// watch measures each layer's bitrate (what sharing a subscriber's
// bandwidth needs) and notices layers that start or stop arriving (a
// publisher stops encoding a layer when its own link or CPU cannot carry
// it), having the down tracks choose again.
func (u *UpTrack) watch() {
	const every = layerStale / 3
	t := time.NewTicker(every)
	defer t.Stop()
	last := u.LiveLayers(time.Now())
	var bytes [MaxLayers]uint64
	var tidBytes [MaxLayers][2]uint64 // of T0, and of T0 and T1
	for {
		select {
		case <-u.done:
			return
		case now := <-t.C:
			for i := range u.layers {
				l := u.layers[i].Load()
				if l == nil {
					continue
				}
				total := l.bytes.Load()
				rate := float64((total-bytes[i])*8) / every.Seconds()
				bytes[i] = total
				if old := l.rate.Load(); old != 0 {
					rate = 0.6*float64(old) + 0.4*rate // about two seconds of memory
				}
				l.rate.Store(uint64(rate))
				if u.svc.Load() {
					l.svc.measure(every)
				}
				t0 := l.tidBytes[0].Load()
				for k, total := range [2]uint64{t0, t0 + l.tidBytes[1].Load()} {
					r := float64((total-tidBytes[i][k])*8) / every.Seconds()
					tidBytes[i][k] = total
					if old := l.tidRate[k].Load(); old != 0 {
						r = 0.6*float64(old) + 0.4*r
					}
					l.tidRate[k].Store(uint64(r))
				}
			}
			if live := u.LiveLayers(now); live != last {
				last = live
				u.layersChanged()
			}
		}
	}
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

// Done is closed when the publisher's track has ended (all its layers).
func (u *UpTrack) Done() <-chan struct{} { return u.done }

// AudioLevel is the recent audio level in dBov (0 loudest, 127 silence),
// from the RFC 6464 header extension; 127 for video or without it.
func (u *UpTrack) AudioLevel() float64 { return float64(u.level.Load()) / 100 }

// Simulcast reports whether the publisher declared simulcast layers.
func (u *UpTrack) Simulcast() bool { return len(u.rids) > 1 }

// layerStale is how long a layer may send nothing before it counts as
// stopped (a publisher that stops encoding a layer just stops sending it).
const layerStale = 1500 * time.Millisecond

// layerFor is the smallest layer whose picture covers width x height
// (within 10 %: a tile a little larger than a layer does not need the
// next one), else the largest; MaxLayers-1 when the layers' sizes are
// not known (VP8 and H.264 keyframes, VP9 scalability structures and AV1
// dependency structures tell them).
func (u *UpTrack) layerFor(width, height int) int8 {
	best := int8(-1)
	svc := u.svcLayers()
	for i := range u.layers {
		var size uint32
		if svc != nil {
			size = svc.size[i].Load()
		} else if l := u.layers[i].Load(); l != nil {
			size = l.size.Load()
		} else {
			continue
		}
		if size == 0 {
			return MaxLayers - 1
		}
		best = int8(i)
		if w, h := int(size>>16), int(size&0xffff); w*10 >= width*9 && h*10 >= height*9 {
			return best
		}
	}
	if best < 0 {
		return MaxLayers - 1
	}
	return best
}

// LiveLayers is a bit set of the layers that sent a packet recently.
func (u *UpTrack) LiveLayers(now time.Time) uint8 {
	var set uint8
	svc := u.svcLayers()
	for i := range u.layers {
		last := int64(0)
		if svc != nil {
			last = svc.last[i].Load()
		} else if l := u.layers[i].Load(); l != nil {
			last = l.lastPacket.Load()
		}
		if last != 0 && now.UnixNano()-last < int64(layerStale) {
			set |= 1 << i
		}
	}
	return set
}

// layerRates is what layer i costs now in bps, in all and at its base
// temporal layer and at its base and first (0 without temporal layers),
// and whether it is arriving.
func (u *UpTrack) layerRates(i int, now time.Time) (rate float64, temporal [2]float64, live bool) {
	if svc := u.svcLayers(); svc != nil {
		if now.UnixNano()-svc.last[i].Load() >= int64(layerStale) {
			return 0, temporal, false
		}
		return float64(svc.rate[i].Load()), [2]float64{float64(svc.tidRate[i][0].Load()), float64(svc.tidRate[i][1].Load())}, true
	}
	l := u.layers[i].Load()
	if l == nil || now.UnixNano()-l.lastPacket.Load() >= int64(layerStale) {
		return 0, temporal, false
	}
	return float64(l.rate.Load()), [2]float64{float64(l.tidRate[0].Load()), float64(l.tidRate[1].Load())}, true
}

// svcLayers is the spatial layers of a scalable stream, nil when the
// track's layers are simulcast streams (or it has none).
func (u *UpTrack) svcLayers() *svcLayers {
	if !u.svc.Load() {
		return nil
	}
	if l := u.layers[0].Load(); l != nil {
		return &l.svc
	}
	return nil
}

// Layered reports whether the track has layers to choose from: simulcast
// streams or the spatial layers of a scalable one.
func (u *UpTrack) Layered() bool { return u.Simulcast() || u.svc.Load() }

// measure works out the spatial layers' rates (every watch tick).
func (s *svcLayers) measure(every time.Duration) {
	var sum [3]uint64 // all temporal layers, T0, T0+T1, over the spatial layers so far
	for i := range MaxLayers {
		t0, t1 := s.bytes[i][0].Load(), s.bytes[i][1].Load()
		sum[0] += t0 + t1 + s.bytes[i][2].Load() + s.bytes[i][3].Load()
		sum[1] += t0
		sum[2] += t0 + t1
		for k := range 3 {
			r := float64((sum[k]-s.previous[i][k])*8) / every.Seconds()
			s.previous[i][k] = sum[k]
			dst := &s.rate[i]
			if k > 0 {
				dst = &s.tidRate[i][k-1]
			}
			if old := dst.Load(); old != 0 {
				r = 0.6*float64(old) + 0.4*r
			}
			dst.Store(uint64(r))
		}
	}
}

// run reads the packets Pion reads until the layer's stream ends.
func (l *upLayer) run() {
	defer l.up.layerEnded(l)
	buf := make([]byte, maxPacketSize)
	for {
		n, _, err := l.track.Read(buf)
		if err != nil {
			return
		}
		if l.took != nil && l.took(buf[:n]) {
			continue // the direct path had it (pubIn gives Pion a copy now and then)
		}
		l.deliver(buf[:n], time.Now())
	}
}

// deliver handles a packet that arrived at `at`, from either path.
func (l *upLayer) deliver(pkt []byte, at time.Time) {
	l.mu.Lock()
	l.handleAt(&l.reader, pkt, at)
	l.mu.Unlock()
}

// handOver says whether the packet seq may be taken on the direct path
// now, and with what rollover count (RFC 3711): only when it is the one
// after the newest the layer handled, so that no packet Pion still holds
// comes after it (a keyframe's packets out of order are a broken picture
// to a subscriber that starts with it). The publisher's count starts at 0
// with the stream, as the reader's numbering does one cycle up.
func (l *upLayer) handOver(seq uint16) (uint32, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := &l.reader.unwrap
	if !u.started || uint16(u.highest)+1 != seq {
		return 0, false
	}
	return uint32(max(extendNear(u.highest, seq)>>16, 1) - 1), true
}

// upReader is the state of the reading goroutine, reused for every packet.
type upReader struct {
	p      upPacket
	dd     ddStructure // AV1: the stream's last dependency structure
	unwrap seqUnwrapper
	level  float64
}

// handleAt caches one packet, notes it for the publisher's feedback and
// forwards it to every down track.
func (l *upLayer) handleAt(r *upReader, pkt []byte, arrival time.Time) {
	u := l.up
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
	p.arrival = arrival
	l.fbMu.Lock()
	l.rx.Add(p.extSeq, p.header.Timestamp, u.codec.ClockRate, arrival)
	if u.nacks {
		l.nack.Add(p.header.SequenceNumber)
	}
	l.fbMu.Unlock()
	// Padding alone (a browser probing its link, on a layer it has
	// stopped encoding too) neither keeps a layer live nor costs it: a
	// subscriber would wait for that layer's keyframe for ever.
	if len(payload) > 0 {
		l.bytes.Add(uint64(len(pkt)))
		if l.lastPacket.Swap(p.arrival.UnixNano()) == 0 {
			u.layersChanged() // a new layer: down tracks may want it
		}
	}
	p.layer = l.index
	switch u.codecKind {
	case codecVP8:
		p.hasDesc = parseVP8(payload, &p.desc)
		p.keyframe = isKeyframe(codecVP8, payload)
	case codecVP9:
		p.hasDesc = parseVP9(payload, &p.desc)
		p.keyframe = p.hasDesc && p.desc.start && !p.desc.interPic
		if p.hasDesc {
			l.noteSVC(&p.desc, len(pkt), p.arrival)
		}
	case codecAV1:
		p.dd, p.hasDesc = nil, false
		if u.ddExt != 0 {
			p.dd = p.header.GetExtension(u.ddExt)
		}
		if len(p.dd) > 0 {
			p.hasDesc = parseDD(p.dd, &r.dd, &p.desc)
			if p.hasDesc && len(p.dd) > 3 && p.dd[3]&0x80 != 0 { // it carried a new structure
				shape := r.dd
				l.ddShape.Store(&shape)
			}
			p.keyframe = p.hasDesc && p.desc.start && isKeyframe(codecAV1, payload)
			if p.hasDesc {
				l.noteSVC(&p.desc, len(pkt), p.arrival)
			}
		} else {
			p.keyframe = isKeyframe(codecAV1, payload)
		}
	default:
		p.hasDesc = false
		p.keyframe = u.codecKind != codecAudio && isKeyframe(u.codecKind, payload)
	}
	p.svc = u.svc.Load()
	if p.hasDesc && p.desc.hasTID && !p.svc {
		// (A scalable stream's layers are measured by noteSVC.)
		l.tidBytes[p.desc.tid&3].Add(uint64(len(pkt)))
	}
	if p.keyframe {
		// The layer's picture size, for views (layerFor).
		var w, h int
		ok := false
		switch u.codecKind {
		case codecVP8:
			w, h, ok = vp8KeyframeSize(payload)
		case codecH264:
			w, h, ok = h264KeyframeSize(payload)
		case codecAV1:
			w, h, ok = av1KeyframeSize(payload)
		}
		if ok && l.size.Swap(uint32(w)<<16|uint32(h)) != uint32(w)<<16|uint32(h) {
			u.layersChanged() // down tracks sized to a view choose again
			u.wantChanged()
		}
	}
	ref := l.refOffset.Load()
	p.refOK = ref>>32 != 0
	p.refTS = p.header.Timestamp + uint32(ref)
	if u.levelExt != 0 {
		if ext := p.header.GetExtension(u.levelExt); len(ext) > 0 {
			// Exponential smoothing over roughly the last 15 packets (300 ms).
			r.level += (float64(ext[0]&0x7f) - r.level) / 15
			u.level.Store(uint32(math.Round(r.level * 100)))
		}
	}
	l.cache.store(p.extSeq, pkt)
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

// noteSVC accounts a VP9 or AV1 packet to its spatial and temporal layer; a
// stream of a track without simulcast that shows a second spatial layer
// makes the track scalable.
func (l *upLayer) noteSVC(d *payloadDesc, n int, at time.Time) {
	u := l.up
	sid := min(d.sid, MaxLayers-1)
	l.svc.bytes[sid][d.tid&3].Add(uint64(n))
	// A spatial layer's first packet: down tracks may want it (at once,
	// while its keyframe is passing, not at the next watch).
	changed := l.svc.last[sid].Swap(at.UnixNano()) == 0 && u.svc.Load()
	if d.layerCount > 1 {
		for s := range MaxLayers {
			size := d.sizes[s]
			if s >= int(d.layerCount) {
				size = 0
			}
			changed = l.svc.size[s].Swap(size) != size || changed
		}
	}
	if (sid > 0 || d.layerCount > 1) && len(u.rids) <= 1 && !u.svc.Load() && !u.svc.Swap(true) {
		changed = true
	}
	if changed {
		u.layersChanged()
		u.wantChanged()
	}
}

// requestKeyframe asks the publisher for a keyframe of layer index, at
// most once per keyframeInterval per layer (of the stream, for the
// spatial layers of a scalable one: a keyframe holds them all) and once
// per publisherKeyframeGap for all layers together. A request held back
// is not kept: a subscriber waiting for a keyframe asks again with each
// packet that is not one.
func (u *UpTrack) requestKeyframe(index int8) {
	if u.codecKind == codecAudio || index < 0 || index >= MaxLayers {
		return
	}
	if u.svc.Load() {
		index = 0
	}
	l := u.layers[index].Load()
	if l == nil {
		return
	}
	now := time.Now().UnixNano()
	last, anyLast := l.lastKeyframeReq.Load(), u.lastKeyframeReq.Load()
	if now-last < int64(keyframeInterval) || now-anyLast < int64(publisherKeyframeGap) ||
		!u.lastKeyframeReq.CompareAndSwap(anyLast, now) {
		return
	}
	l.lastKeyframeReq.Store(now)
	err := u.writeRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: l.ssrc}})
	if err == nil {
		u.engine.Stats.PLIsOut.Add(1)
	}
	u.engine.log.Debug("keyframe requested", "track", u.id, "layer", index, "ssrc", l.ssrc, "err", err)
}

// layer returns layer index, nil when it is not arriving.
func (u *UpTrack) layer(index int8) *upLayer {
	if index < 0 || index >= MaxLayers {
		return nil
	}
	return u.layers[index].Load()
}

func (u *UpTrack) addDown(d *DownTrack) {
	u.mu.Lock()
	old := *u.downs.Load()
	next := make([]*DownTrack, 0, len(old)+1)
	next = append(next, old...)
	next = append(next, d)
	u.downs.Store(&next)
	u.mu.Unlock()
	u.wantChanged()
}

func (u *UpTrack) removeDown(d *DownTrack) {
	u.mu.Lock()
	old := *u.downs.Load()
	next := make([]*DownTrack, 0, len(old))
	for _, x := range old {
		if x != d {
			next = append(next, x)
		}
	}
	u.downs.Store(&next)
	u.mu.Unlock()
	u.wantChanged()
}

// Subscribers is the number of down tracks bound to this track.
func (u *UpTrack) Subscribers() int { return len(*u.downs.Load()) }
