package sfu

import (
	"errors"

	"github.com/pion/rtp"
)

var errBadPadding = errors.New("sfu: bad RTP padding")

// parseRTP reads the header of buf into h (reusing its slices) and returns
// the payload without padding; h.PaddingSize is set so that a writer puts
// the padding back.
func parseRTP(buf []byte, h *rtp.Header) ([]byte, error) {
	n, err := h.Unmarshal(buf)
	if err != nil {
		return nil, err
	}
	end := len(buf)
	h.PaddingSize = 0
	if h.Padding {
		pad := int(buf[end-1])
		if pad == 0 || pad > end-n {
			return nil, errBadPadding
		}
		h.PaddingSize = byte(pad)
		end -= pad
	}
	return buf[n:end], nil
}

// extensionValue is the value of header extension id in the RTP packet
// b (one-byte or two-byte form, RFC 8285), nil when it has none; read in
// place, without parsing the rest of the header.
func extensionValue(b []byte, id uint8) []byte {
	if len(b) < 12 || b[0]&0x10 == 0 {
		return nil
	}
	n := 12 + 4*int(b[0]&0x0f)
	if len(b) < n+4 {
		return nil
	}
	profile := uint16(b[n])<<8 | uint16(b[n+1])
	end := n + 4 + 4*(int(b[n+2])<<8|int(b[n+3]))
	if len(b) < end {
		return nil
	}
	oneByte := profile == 0xbede
	if !oneByte && profile&0xfff0 != 0x1000 {
		return nil
	}
	for i := n + 4; i < end; {
		if b[i] == 0 { // padding
			i++
			continue
		}
		var eid uint8
		var l int
		if oneByte {
			eid, l = b[i]>>4, int(b[i]&0x0f)+1
			if eid == 15 || eid == 0 {
				return nil // the rest is not to be read (RFC 8285 section 4.2), as pion/rtp stops
			}
			i++
		} else {
			if i+2 > end {
				return nil
			}
			eid, l = b[i], int(b[i+1])
			i += 2
		}
		if i+l > end {
			return nil
		}
		if eid == id {
			return b[i : i+l]
		}
		i += l
	}
	return nil
}
