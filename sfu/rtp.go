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
