package mkv

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

// Info is what a file's structure says about it.
type Info struct {
	Duration time.Duration // the header's, as of the last Flush for an unfinished file
	Finished bool          // closed by Close: the segment has its size
	Cues     bool          // it has an index to seek with
	Clusters int
}

// ReadDuration reads the duration a file's header gives; for a file this
// package was writing when its process died it is the duration at the
// last Flush.
func ReadDuration(path string) (time.Duration, error) {
	info, err := Inspect(path)
	return info.Duration, err
}

// Inspect walks the top level of a file's segment.
func Inspect(path string) (Info, error) {
	var info Info
	f, err := os.Open(path)
	if err != nil {
		return info, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	pos := int64(0)
	next := func() (uint32, uint64, error) {
		b, _ := r.Peek(12)
		id, size, n, err := parseHeader(b)
		if err != nil {
			return 0, 0, err
		}
		_, err = r.Discard(n)
		pos += int64(n)
		return id, size, err
	}
	skip := func(size uint64) error {
		if _, err := f.Seek(pos+int64(size), io.SeekStart); err != nil {
			return err
		}
		pos += int64(size)
		r.Reset(f)
		return nil
	}
	id, size, err := next()
	if err != nil || id != idEBML || skip(size) != nil {
		return info, fmt.Errorf("mkv: %s: not a Matroska file", path)
	}
	if id, size, err = next(); err != nil || id != idSegment {
		return info, fmt.Errorf("mkv: %s: no segment", path)
	}
	info.Finished = size != math.MaxInt64
	haveInfo := false
	for {
		id, size, err := next()
		if err != nil {
			break
		}
		switch id {
		case idInfo:
			body := make([]byte, size)
			if _, err := io.ReadFull(r, body); err != nil {
				return info, fmt.Errorf("mkv: %s: %w", path, err)
			}
			pos += int64(size)
			if info.Duration, err = infoDuration(body); err != nil {
				return info, fmt.Errorf("mkv: %s: %w", path, err)
			}
			haveInfo = true
			continue
		case idCluster:
			info.Clusters++
		case idCues:
			info.Cues = true
		}
		if size == math.MaxInt64 { // an open cluster runs to the end
			break
		}
		if skip(size) != nil {
			break
		}
	}
	if !haveInfo {
		return info, fmt.Errorf("mkv: %s: no duration in the header", path)
	}
	return info, nil
}

func infoDuration(b []byte) (time.Duration, error) {
	scale := uint64(time.Millisecond)
	var dur float64
	found := false
	for len(b) > 0 {
		id, size, hl, err := parseHeader(b)
		if err != nil || uint64(len(b)-hl) < size {
			return 0, errors.New("mkv: truncated info")
		}
		v := b[hl : hl+int(size)]
		switch id {
		case idTimestampScal:
			scale = 0
			for _, c := range v {
				scale = scale<<8 | uint64(c)
			}
		case idDuration:
			switch len(v) {
			case 8:
				dur = math.Float64frombits(binary.BigEndian.Uint64(v))
			case 4:
				dur = float64(math.Float32frombits(binary.BigEndian.Uint32(v)))
			}
			found = true
		}
		b = b[hl+int(size):]
	}
	if !found {
		return 0, errors.New("mkv: no duration")
	}
	return time.Duration(dur * float64(scale)), nil
}

// parseHeader parses an element's ID and size at the start of b and
// says how many bytes they took; an unknown size is math.MaxInt64.
func parseHeader(b []byte) (id uint32, size uint64, n int, err error) {
	bad := errors.New("mkv: bad element header")
	if len(b) == 0 {
		return 0, 0, 0, io.EOF
	}
	l := 1
	for l <= 4 && b[0]&(0x80>>(l-1)) == 0 {
		l++
	}
	if l > 4 || len(b) < l+1 {
		return 0, 0, 0, bad
	}
	for _, c := range b[:l] {
		id = id<<8 | uint32(c)
	}
	b = b[l:]
	s := 1
	for s <= 8 && b[0]&(0x80>>(s-1)) == 0 {
		s++
	}
	if s > 8 || len(b) < s {
		return 0, 0, 0, bad
	}
	size = uint64(b[0]) & (0xFF >> s)
	for _, c := range b[1:s] {
		size = size<<8 | uint64(c)
	}
	if size == 1<<(7*s)-1 {
		size = math.MaxInt64
	}
	return id, size, l + s, nil
}
