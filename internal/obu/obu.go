// Package obu reads what AV1's bitstream and its RTP payload format share:
// LEB128 numbers (OBU sizes, element lengths).
package obu

// LEB128 reads an unsigned LEB128 number (AV1 specification 4.10.5) and
// returns it with its length in bytes: 0 when b holds none (cut short, or
// longer than the 8 bytes AV1 allows).
func LEB128(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 8; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}
