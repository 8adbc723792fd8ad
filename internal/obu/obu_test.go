package obu

import "testing"

func TestLEB128(t *testing.T) {
	for _, tt := range []struct {
		b []byte
		v uint64
		n int
	}{
		{[]byte{0x00}, 0, 1},
		{[]byte{0x7f, 0xff}, 127, 1},
		{[]byte{0x80, 0x01}, 128, 2},
		{[]byte{0xe5, 0x8e, 0x26}, 624485, 3},
		{[]byte{0x80}, 0, 0}, // cut short
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 0, 0}, // more than 8 bytes
		{nil, 0, 0},
	} {
		if v, n := LEB128(tt.b); v != tt.v || n != tt.n {
			t.Errorf("% x: %d, %d; want %d, %d", tt.b, v, n, tt.v, tt.n)
		}
	}
}
