// Package mkv writes Matroska and WebM files progressively, so that a file
// is playable at every moment: the segment and the open cluster have an
// unknown size until they end, the duration in the header is kept current,
// and tracks may be added while the file grows (the track list lives in a
// reserved region that is rewritten in place). Close adds the cues and the
// seek head and sets every size.
package mkv

import (
	"encoding/binary"
	"math"
)

// Element IDs used here (Matroska specification, RFC 9559).
const (
	idEBML               = 0x1A45DFA3
	idEBMLVersion        = 0x4286
	idEBMLReadVersion    = 0x42F7
	idEBMLMaxIDLength    = 0x42F2
	idEBMLMaxSizeLength  = 0x42F3
	idDocType            = 0x4282
	idDocTypeVersion     = 0x4287
	idDocTypeReadVersion = 0x4285
	idVoid               = 0xEC

	idSegment      = 0x18538067
	idSeekHead     = 0x114D9B74
	idSeek         = 0x4DBB
	idSeekID       = 0x53AB
	idSeekPosition = 0x53AC

	idInfo          = 0x1549A966
	idTimestampScal = 0x2AD7B1
	idDuration      = 0x4489
	idDateUTC       = 0x4461
	idMuxingApp     = 0x4D80
	idWritingApp    = 0x5741

	idTracks          = 0x1654AE6B
	idTrackEntry      = 0xAE
	idTrackNumber     = 0xD7
	idTrackUID        = 0x73C5
	idTrackType       = 0x83
	idFlagLacing      = 0x9C
	idName            = 0x536E
	idCodecID         = 0x86
	idCodecPrivate    = 0x63A2
	idCodecDelay      = 0x56AA
	idSeekPreRoll     = 0x56BB
	idVideo           = 0xE0
	idPixelWidth      = 0xB0
	idPixelHeight     = 0xBA
	idAudio           = 0xE1
	idSamplingFreq    = 0xB5
	idChannels        = 0x9F
	idBitDepth        = 0x6264
	idCluster         = 0x1F43B675
	idClusterTimestmp = 0xE7
	idSimpleBlock     = 0xA3

	idCues               = 0x1C53BB6B
	idCuePoint           = 0xBB
	idCueTime            = 0xB3
	idCueTrackPositions  = 0xB7
	idCueTrack           = 0xF7
	idCueClusterPosition = 0xF1
)

// unknownSize is the 8-byte size that says "until the parent ends".
const unknownSize = 0x01FFFFFFFFFFFFFF

// appendID appends an element ID (its marker bits are part of the value).
func appendID(b []byte, id uint32) []byte {
	switch {
	case id >= 1<<24:
		return append(b, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<16:
		return append(b, byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<8:
		return append(b, byte(id>>8), byte(id))
	}
	return append(b, byte(id))
}

// appendSize appends n as the shortest EBML variable-size integer.
func appendSize(b []byte, n uint64) []byte {
	for l := 1; l <= 8; l++ {
		if n < 1<<(7*l)-1 { // all ones is reserved for "unknown"
			return appendSizeN(b, n, l)
		}
	}
	panic("mkv: element too large")
}

// appendSizeN appends n as an EBML size of exactly l bytes.
func appendSizeN(b []byte, n uint64, l int) []byte {
	v := n | 1<<(7*l)
	for i := l - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func appendUint(b []byte, id uint32, v uint64) []byte {
	n := 1
	for v>>(8*n) != 0 && n < 8 {
		n++
	}
	b = appendID(b, id)
	b = appendSize(b, uint64(n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func appendInt(b []byte, id uint32, v int64) []byte {
	n := 1
	for n < 8 && (v < -(1<<(8*n-1)) || v >= 1<<(8*n-1)) {
		n++
	}
	b = appendID(b, id)
	b = appendSize(b, uint64(n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func appendFloat(b []byte, id uint32, v float64) []byte {
	b = appendID(b, id)
	b = appendSize(b, 8)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(v))
}

func appendBytes(b []byte, id uint32, v []byte) []byte {
	b = appendID(b, id)
	b = appendSize(b, uint64(len(v)))
	return append(b, v...)
}

func appendString(b []byte, id uint32, v string) []byte {
	return appendBytes(b, id, []byte(v))
}

// appendMaster appends a master element around body.
func appendMaster(b []byte, id uint32, body []byte) []byte {
	b = appendID(b, id)
	b = appendSize(b, uint64(len(body)))
	return append(b, body...)
}

// appendVoid appends a Void element of exactly n bytes in all (n >= 2).
func appendVoid(b []byte, n int) []byte {
	b = append(b, idVoid)
	l := 1
	for l < 8 && n-1-l >= 1<<(7*l)-1 {
		l++
	}
	if n-1-l < 0 {
		panic("mkv: void too small")
	}
	b = appendSizeN(b, uint64(n-1-l), l)
	return append(b, make([]byte, n-1-l)...)
}
