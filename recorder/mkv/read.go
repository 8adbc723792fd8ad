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

// ReadDuration reads the duration a file's header gives; for a file this
// package was writing when its process died it is the duration at the
// last Flush.
func ReadDuration(path string) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReader(io.LimitReader(f, 64<<10))
	id, size, err := readHeader(r)
	if err != nil || id != idEBML {
		return 0, fmt.Errorf("mkv: %s: not a Matroska file", path)
	}
	if _, err := r.Discard(int(size)); err != nil {
		return 0, fmt.Errorf("mkv: %s: %w", path, err)
	}
	if id, _, err = readHeader(r); err != nil || id != idSegment {
		return 0, fmt.Errorf("mkv: %s: no segment", path)
	}
	for {
		id, size, err := readHeader(r)
		if err != nil {
			return 0, fmt.Errorf("mkv: %s: no duration in the header", path)
		}
		switch id {
		case idInfo:
			body := make([]byte, size)
			if _, err := io.ReadFull(r, body); err != nil {
				return 0, fmt.Errorf("mkv: %s: %w", path, err)
			}
			return infoDuration(body)
		case idCluster:
			return 0, fmt.Errorf("mkv: %s: no duration in the header", path)
		}
		if _, err := r.Discard(int(size)); err != nil {
			return 0, fmt.Errorf("mkv: %s: %w", path, err)
		}
	}
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

// readHeader reads an element's ID and size.
func readHeader(r *bufio.Reader) (uint32, uint64, error) {
	b, _ := r.Peek(12)
	id, size, n, err := parseHeader(b)
	if err != nil {
		return 0, 0, err
	}
	_, err = r.Discard(n)
	return id, size, err
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
