package mkv

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"time"
)

// TrackType is a Matroska track type.
type TrackType uint8

// Track types.
const (
	Video TrackType = 1
	Audio TrackType = 2
)

// Track describes one track of a file.
type Track struct {
	Type         TrackType
	Name         string
	CodecID      string // V_VP8, V_VP9, V_MPEG4/ISO/AVC, A_OPUS, A_MS/ACM
	CodecPrivate []byte
	CodecDelay   time.Duration // Opus: the decoder's pre-skip
	SeekPreRoll  time.Duration // Opus: 80 ms
	Width        int           // video
	Height       int
	SampleRate   float64 // audio
	Channels     int
	BitDepth     int
}

// WebMCodec reports whether a codec may go in a WebM file.
func WebMCodec(codecID string) bool {
	switch codecID {
	case "V_VP8", "V_VP9", "V_AV1", "A_OPUS", "A_VORBIS":
		return true
	}
	return false
}

// Sizes of the regions reserved at the start of the segment.
const (
	seekHeadSpace = 96
	tracksSpace   = 4096
	docTypeSpace  = 8 // "matroska" fits, "webm" is padded with zeros
)

// clusterSpan is the longest a cluster runs; a video keyframe after
// minClusterSpan starts a new one, so that each video cluster begins with
// a keyframe that a player can seek to.
const (
	clusterSpan    = 5 * time.Second
	minClusterSpan = time.Second
)

// ErrClosed is returned after Close or after a write failed.
var ErrClosed = errors.New("mkv: writer closed")

// Writer writes one file. It is not safe for concurrent use.
type Writer struct {
	f      *os.File
	path   string
	tracks []Track
	webm   bool

	buf     []byte // not yet written to the file
	bufAt   int64  // file offset of buf[0]
	err     error  // sticky write error
	closed  bool
	dataAt  int64 // offset of the segment's data: positions count from here
	docAt   int64 // offset of the DocType value
	segAt   int64 // offset of the segment's size
	durAt   int64 // offset of the duration value
	trackAt int64 // offset of the tracks region

	cluster     int64         // offset of the open cluster, -1 when none
	clusterTime int64         // its timestamp, ms
	lastTime    int64         // latest block timestamp, ms
	trackLast   map[int]int64 // per track, its latest block timestamp
	afterFlush  []pendingPatch
	endTime     int64 // latest block's end, ms: the duration
	haveBlock   bool
	cues        []cue
}

type cue struct {
	time    int64
	track   int
	cluster int64
}

// Create makes path and writes the header. More tracks may be added later
// with AddTrack; a file with only WebM codecs says it is WebM.
func Create(path string, tracks ...Track) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	w := &Writer{f: f, path: path, webm: true, cluster: -1}
	for _, t := range tracks {
		w.webm = w.webm && WebMCodec(t.CodecID)
	}
	w.tracks = tracks
	if err := w.writeHeader(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return w, nil
}

// WebM reports whether the file holds only WebM codecs.
func (w *Writer) WebM() bool { return w.webm }

// Tracks is the number of tracks; track numbers run from 1.
func (w *Writer) Tracks() int { return len(w.tracks) }

func (w *Writer) docType() []byte {
	dt := make([]byte, docTypeSpace)
	if w.webm {
		copy(dt, "webm")
	} else {
		copy(dt, "matroska")
	}
	return dt
}

func (w *Writer) writeHeader() error {
	var head []byte
	head = appendUint(head, idEBMLVersion, 1)
	head = appendUint(head, idEBMLReadVersion, 1)
	head = appendUint(head, idEBMLMaxIDLength, 4)
	head = appendUint(head, idEBMLMaxSizeLength, 8)
	docAt := len(head) + 3 // ID (2) and size (1)
	head = appendBytes(head, idDocType, w.docType())
	head = appendUint(head, idDocTypeVersion, 4)
	head = appendUint(head, idDocTypeReadVersion, 2)
	b := appendMaster(nil, idEBML, head)
	w.docAt = int64(len(b)-len(head)) + int64(docAt)

	b = appendID(b, idSegment)
	w.segAt = int64(len(b))
	b = appendSizeN(b, unknownSize, 8)
	w.dataAt = int64(len(b))
	b = appendVoid(b, seekHeadSpace)

	var info []byte
	info = appendUint(info, idTimestampScal, uint64(time.Millisecond))
	info = appendString(info, idMuxingApp, "vclass-recorder")
	info = appendString(info, idWritingApp, "vclass-recorder")
	info = appendInt(info, idDateUTC, time.Now().UnixNano()-time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	durAt := len(info) + 3 // ID (2) and size (1)
	info = appendFloat(info, idDuration, 0)
	b = appendMaster(b, idInfo, info)
	w.durAt = int64(len(b)-len(info)) + int64(durAt)

	w.trackAt = int64(len(b))
	tr, err := w.tracksRegion()
	if err != nil {
		return err
	}
	b = append(b, tr...)
	w.buf = b
	// A cluster from the start: a reader finds none in a file with no
	// frame yet (its process killed before the first flush) and gives up.
	w.startCluster(0)
	return w.flushBuf()
}

// tracksRegion is the Tracks element padded with a Void to tracksSpace.
func (w *Writer) tracksRegion() ([]byte, error) {
	var body []byte
	for i, t := range w.tracks {
		body = appendMaster(body, idTrackEntry, trackEntry(i+1, t))
	}
	b := appendID(nil, idTracks)
	b = appendSizeN(b, uint64(len(body)), 8)
	b = append(b, body...)
	if len(b) > tracksSpace-2 {
		return nil, fmt.Errorf("mkv: %d tracks do not fit the header", len(w.tracks))
	}
	if tracksSpace-len(b) == 1 {
		// A Void takes two bytes at least: use a shorter size field.
		b = appendID(nil, idTracks)
		b = appendSizeN(b, uint64(len(body)), 7)
		b = append(b, body...)
	}
	return appendVoid(b, tracksSpace-len(b)), nil
}

func trackEntry(n int, t Track) []byte {
	var b []byte
	b = appendUint(b, idTrackNumber, uint64(n))
	var uid [8]byte
	_, _ = rand.Read(uid[:])
	b = appendUint(b, idTrackUID, binary.BigEndian.Uint64(uid[:])>>1|1)
	b = appendUint(b, idTrackType, uint64(t.Type))
	b = appendUint(b, idFlagLacing, 0)
	if t.Name != "" {
		b = appendString(b, idName, t.Name)
	}
	b = appendString(b, idCodecID, t.CodecID)
	if len(t.CodecPrivate) > 0 {
		b = appendBytes(b, idCodecPrivate, t.CodecPrivate)
	}
	if t.CodecDelay > 0 {
		b = appendUint(b, idCodecDelay, uint64(t.CodecDelay))
	}
	if t.SeekPreRoll > 0 {
		b = appendUint(b, idSeekPreRoll, uint64(t.SeekPreRoll))
	}
	switch t.Type {
	case Video:
		var v []byte
		v = appendUint(v, idPixelWidth, uint64(max(t.Width, 1)))
		v = appendUint(v, idPixelHeight, uint64(max(t.Height, 1)))
		b = appendMaster(b, idVideo, v)
	case Audio:
		var a []byte
		a = appendFloat(a, idSamplingFreq, t.SampleRate)
		a = appendUint(a, idChannels, uint64(max(t.Channels, 1)))
		if t.BitDepth > 0 {
			a = appendUint(a, idBitDepth, uint64(t.BitDepth))
		}
		b = appendMaster(b, idAudio, a)
	}
	return b
}

// AddTrack adds a track to the file and returns its number. The header is
// rewritten in place; a codec WebM does not take makes the file Matroska.
func (w *Writer) AddTrack(t Track) (int, error) {
	if w.closed || w.err != nil {
		return 0, w.failed()
	}
	w.tracks = append(w.tracks, t)
	region, err := w.tracksRegion()
	if err != nil {
		w.tracks = w.tracks[:len(w.tracks)-1]
		return 0, err
	}
	if err := w.patch(w.trackAt, region); err != nil {
		return 0, err
	}
	if w.webm && !WebMCodec(t.CodecID) {
		w.webm = false
		if err := w.patch(w.docAt, w.docType()); err != nil {
			return 0, err
		}
	}
	return len(w.tracks), nil
}

// WriteFrame adds one frame of track (numbered from 1) at ms, its time
// from the start of the file in milliseconds. Frames come in time order;
// one earlier than the last is written at the last frame's time, and a
// track's frames get strictly increasing times (a millisecond apart at
// least), which decoders need.
func (w *Writer) WriteFrame(track int, ms int64, keyframe bool, data []byte) error {
	if w.closed || w.err != nil {
		return w.failed()
	}
	if track < 1 || track > len(w.tracks) || track > 126 {
		return fmt.Errorf("mkv: no track %d", track)
	}
	if w.haveBlock && ms < w.lastTime {
		ms = w.lastTime
	}
	ms = max(ms, 0)
	if w.trackLast == nil {
		w.trackLast = map[int]int64{}
	}
	if last, ok := w.trackLast[track]; ok && ms <= last {
		ms = last + 1
	}
	w.trackLast[track] = ms
	video := w.tracks[track-1].Type == Video
	span := time.Duration(ms-w.clusterTime) * time.Millisecond
	if w.cluster < 0 || span >= clusterSpan || ms-w.clusterTime > math.MaxInt16 ||
		(video && keyframe && span >= minClusterSpan) {
		w.startCluster(ms)
	}
	if w.cluster >= 0 && (video && keyframe || !w.hasVideo()) && w.cueDue(ms) {
		w.cues = append(w.cues, cue{time: ms, track: track, cluster: w.cluster - w.dataAt})
	}
	rel := int16(ms - w.clusterTime)
	flags := byte(0)
	if keyframe || !video {
		flags = 0x80
	}
	w.buf = appendID(w.buf, idSimpleBlock)
	w.buf = appendSize(w.buf, uint64(4+len(data)))
	w.buf = append(w.buf, 0x80|byte(track), byte(uint16(rel)>>8), byte(uint16(rel)), flags)
	w.buf = append(w.buf, data...)
	if !w.haveBlock || ms > w.lastTime {
		w.lastTime = ms
	}
	w.haveBlock = true
	w.endTime = max(w.endTime, ms)
	if len(w.buf) >= 256<<10 {
		return w.flushBuf()
	}
	return nil
}

// SetEnd moves the end of the file (its duration) to ms if that is later:
// the last frame lasts until then.
func (w *Writer) SetEnd(ms int64) { w.endTime = max(w.endTime, ms) }

// Duration is the time from the start to the end of the last frame.
func (w *Writer) Duration() time.Duration { return time.Duration(w.endTime) * time.Millisecond }

func (w *Writer) hasVideo() bool {
	for _, t := range w.tracks {
		if t.Type == Video {
			return true
		}
	}
	return false
}

// cueDue keeps at most one cue point per cluster.
func (w *Writer) cueDue(ms int64) bool {
	return len(w.cues) == 0 || w.cues[len(w.cues)-1].cluster != w.cluster-w.dataAt
}

func (w *Writer) startCluster(ms int64) {
	w.endCluster()
	w.cluster = w.bufAt + int64(len(w.buf))
	w.clusterTime = ms
	w.buf = appendID(w.buf, idCluster)
	w.buf = appendSizeN(w.buf, unknownSize, 8)
	w.buf = appendUint(w.buf, idClusterTimestmp, uint64(ms))
}

// endCluster sets the open cluster's size. A header already in the file
// gets it only once the cluster's last blocks are there too: a file cut
// short (kill -9, a full disk) must not claim blocks it lacks.
func (w *Writer) endCluster() {
	if w.cluster < 0 {
		return
	}
	end := w.bufAt + int64(len(w.buf))
	size := appendSizeN(nil, uint64(end-w.cluster-4-8), 8)
	if w.cluster >= w.bufAt {
		_ = w.patch(w.cluster+4, size)
	} else {
		w.afterFlush = append(w.afterFlush, pendingPatch{w.cluster + 4, size})
	}
	w.cluster = -1
}

// pendingPatch is a change to the file's flushed part that waits for the
// buffer to reach the file.
type pendingPatch struct {
	off int64
	b   []byte
}

// Flush writes what is buffered and updates the duration in the header,
// so that the file on disk is complete up to here.
func (w *Writer) Flush() error {
	if w.closed || w.err != nil {
		return w.failed()
	}
	if err := w.flushBuf(); err != nil {
		return err
	}
	return w.patch(w.durAt, binary.BigEndian.AppendUint64(nil, math.Float64bits(float64(w.endTime))))
}

// Close ends the file: the last cluster, the cues, the seek head, the
// segment's size and the duration, then syncs it to disk. After a write
// error it closes the file as it is and returns that error.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	if w.err != nil {
		w.closed = true
		w.f.Close()
		return w.err
	}
	w.endCluster()
	cuesAt := w.bufAt + int64(len(w.buf))
	if len(w.cues) > 0 {
		var body []byte
		for _, c := range w.cues {
			var pos []byte
			pos = appendUint(pos, idCueTrack, uint64(c.track))
			pos = appendUint(pos, idCueClusterPosition, uint64(c.cluster))
			var p []byte
			p = appendUint(p, idCueTime, uint64(c.time))
			p = appendMaster(p, idCueTrackPositions, pos)
			body = appendMaster(body, idCuePoint, p)
		}
		w.buf = appendMaster(w.buf, idCues, body)
	}
	end := w.bufAt + int64(len(w.buf))
	// The tail first: the header must never point past the file's end.
	if err := w.flushBuf(); err != nil {
		w.closed = true
		w.f.Close()
		return err
	}
	var seeks []byte
	seek := func(id uint32, at int64) {
		var s []byte
		s = appendBytes(s, idSeekID, appendID(nil, id))
		s = appendUint(s, idSeekPosition, uint64(at-w.dataAt))
		seeks = appendMaster(seeks, idSeek, s)
	}
	seek(idInfo, w.dataAt+seekHeadSpace)
	seek(idTracks, w.trackAt)
	if len(w.cues) > 0 {
		seek(idCues, cuesAt)
	}
	head := appendMaster(nil, idSeekHead, seeks)
	head = appendVoid(head, seekHeadSpace-len(head))
	_ = w.patch(w.dataAt, head)
	_ = w.patch(w.segAt, appendSizeN(nil, uint64(end-w.dataAt), 8))
	err := w.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	w.closed = true
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil && w.err == nil {
		w.err = err
	}
	return err
}

// Abandon closes the file as it is, without finishing it (it stays
// playable): for a writer whose disk failed.
func (w *Writer) Abandon() {
	if !w.closed {
		w.closed = true
		w.f.Close()
	}
}

func (w *Writer) failed() error {
	if w.err != nil {
		return w.err
	}
	return ErrClosed
}

func (w *Writer) flushBuf() error {
	n, err := w.f.WriteAt(w.buf, w.bufAt)
	if err != nil {
		// Keep the file whole: cut off any part of a block that got in (a
		// full disk may take some bytes of a write, even one that reports
		// none), so it ends where the last flush left it, on a block's end.
		_ = w.f.Truncate(w.bufAt)
		w.err = fmt.Errorf("mkv: %w", err)
		return w.err
	}
	w.bufAt += int64(n)
	w.buf = w.buf[:0]
	for _, p := range w.afterFlush {
		if err := w.patch(p.off, p.b); err != nil {
			return err
		}
	}
	w.afterFlush = w.afterFlush[:0]
	return nil
}

// patch overwrites bytes at off, in the buffer or in the file.
func (w *Writer) patch(off int64, b []byte) error {
	if w.err != nil {
		return w.err
	}
	for len(b) > 0 && off < w.bufAt {
		n := min(int64(len(b)), w.bufAt-off)
		if _, err := w.f.WriteAt(b[:n], off); err != nil {
			w.err = fmt.Errorf("mkv: %w", err)
			return w.err
		}
		b, off = b[n:], off+n
	}
	if len(b) > 0 {
		copy(w.buf[off-w.bufAt:], b)
	}
	return nil
}

// Size is the file's size so far, buffered bytes included.
func (w *Writer) Size() int64 { return w.bufAt + int64(len(w.buf)) }

// Path is where the file is.
func (w *Writer) Path() string { return w.path }

// Rename moves the file; it stays open.
func (w *Writer) Rename(path string) error {
	if err := os.Rename(w.path, path); err != nil {
		return err
	}
	w.path = path
	return nil
}
