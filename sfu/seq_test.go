package sfu

import (
	"math/rand/v2"
	"testing"
)

func TestSeqExtendNear(t *testing.T) {
	const cycle = 1 << 16
	tests := []struct {
		name string
		ref  uint64
		seq  uint16
		want uint64
	}{
		{"zero", 0, 0, 0},
		{"same", 1000, 1000 & 0xffff, 1000},
		{"next", 100, 101, 101},
		{"previous", 100, 99, 99},
		{"forward by 32767 goes forward", cycle, 0x7fff, cycle + 0x7fff},
		{"forward by exactly 32768 is taken as backward", cycle, 0x8000, cycle - 0x8000},
		{"backward by 32767", cycle + 0x7fff, 0, cycle},
		{"backward by exactly 32768", cycle + 0x7fff, 0xffff, cycle - 1},
		{"forward across wrap", cycle - 1, 0, cycle},
		{"forward across wrap by several", cycle - 3, 2, cycle + 2},
		{"backward across wrap", cycle, 0xffff, cycle - 1},
		{"backward across wrap by several", cycle + 2, 0xfffd, cycle - 3},
		{"second cycle forward across wrap", 2*cycle - 1, 0, 2 * cycle},
		{"second cycle backward across wrap", 2 * cycle, 0xfffe, 2*cycle - 2},
		// Below the first cycle there is no earlier value: the result must
		// not underflow to a huge number.
		{"no underflow near zero", 5, 0xffff, 0xffff},
		{"no underflow at zero", 0, 0x8000, 0x8000},
		{"no underflow, 0xfff0 from 0x10", 0x10, 0xfff0, 0xfff0},
		{"large ref forward", 1<<40 | 5, 7, 1<<40 | 7},
		{"large ref backward across wrap", 1 << 40, 0xffff, 1<<40 - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := extendNear(tt.ref, tt.seq); got != tt.want {
				t.Errorf("extendNear(%#x, %#x) = %#x, want %#x", tt.ref, tt.seq, got, tt.want)
			}
		})
	}
}

// TestSeqExtendNearProperties checks, over many pseudo-random inputs, that
// the result keeps the low 16 bits and is the nearest such value to ref.
func TestSeqExtendNearProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		ref := r.Uint64N(1 << 48)
		if r.IntN(4) == 0 {
			ref = r.Uint64N(1 << 17) // exercise values close to zero more often
		}
		seq := uint16(r.Uint32())
		got := extendNear(ref, seq)
		if uint16(got) != seq {
			t.Fatalf("extendNear(%#x, %#x) = %#x: low 16 bits changed", ref, seq, got)
		}
		var dist uint64
		if got >= ref {
			dist = got - ref
		} else {
			dist = ref - got
		}
		switch {
		case ref >= 1<<15:
			if dist > 1<<15 {
				t.Fatalf("extendNear(%#x, %#x) = %#x: %d away from ref", ref, seq, got, dist)
			}
			if got > ref && dist >= 1<<15 {
				t.Fatalf("extendNear(%#x, %#x) = %#x: forward by %d (ties must go backward)", ref, seq, got, dist)
			}
		default:
			// Near zero the value below ref may not exist: then the
			// result is seq itself, in the first cycle.
			if got >= 1<<16+ref {
				t.Fatalf("extendNear(%#x, %#x) = %#x: beyond the nearest cycles", ref, seq, got)
			}
		}
		if got >= 1<<48+1<<16 {
			t.Fatalf("extendNear(%#x, %#x) = %#x: underflow", ref, seq, got)
		}
	}
}

func TestSeqUnwrapper(t *testing.T) {
	const cycle = 1 << 16
	tests := []struct {
		name string
		in   []uint16
		want []uint64
	}{
		{
			name: "first packet starts one cycle up",
			in:   []uint16{0},
			want: []uint64{cycle},
		},
		{
			name: "first packet at 65535",
			in:   []uint16{0xffff},
			want: []uint64{2*cycle - 1},
		},
		{
			name: "in order",
			in:   []uint16{100, 101, 102, 103},
			want: []uint64{cycle + 100, cycle + 101, cycle + 102, cycle + 103},
		},
		{
			name: "in order across the wrap",
			in:   []uint16{0xfffe, 0xffff, 0, 1},
			want: []uint64{2*cycle - 2, 2*cycle - 1, 2 * cycle, 2*cycle + 1},
		},
		{
			name: "reordered around the wrap",
			in:   []uint16{0xffff, 1, 0, 0xfffe, 2},
			want: []uint64{2*cycle - 1, 2*cycle + 1, 2 * cycle, 2*cycle - 2, 2*cycle + 2},
		},
		{
			name: "late pre-wrap packet after the wrap does not lower highest",
			in:   []uint16{0xfffd, 0, 0xfff0, 1},
			want: []uint64{2*cycle - 3, 2 * cycle, 2*cycle - 16, 2*cycle + 1},
		},
		{
			name: "packets reordered before the first one do not underflow",
			in:   []uint16{0, 0xffff, 0xfffe, 1},
			want: []uint64{cycle, cycle - 1, cycle - 2, cycle + 1},
		},
		{
			name: "late packet before the first one",
			in:   []uint16{10, 5, 11},
			want: []uint64{cycle + 10, cycle + 5, cycle + 11},
		},
		{
			name: "duplicates map to the same value",
			in:   []uint16{7, 7, 8, 7},
			want: []uint64{cycle + 7, cycle + 7, cycle + 8, cycle + 7},
		},
		{
			name: "loss gap below half a cycle goes forward",
			in:   []uint16{0, 0x7fff, 0x8000},
			want: []uint64{cycle, cycle + 0x7fff, cycle + 0x8000},
		},
		{
			name: "jump of exactly half a cycle is taken as late",
			in:   []uint16{0, 0x8000, 1},
			want: []uint64{cycle, cycle - 0x8000, cycle + 1},
		},
		{
			name: "several wraps in steps of 30000",
			in:   []uint16{0, 30000, 60000, 24464, 54464, 18928},
			want: []uint64{cycle, cycle + 30000, cycle + 60000, cycle + 90000, cycle + 120000, cycle + 150000},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.in) != len(tt.want) {
				t.Fatal("bad table")
			}
			var u seqUnwrapper
			for i, s := range tt.in {
				if got := u.unwrap(s); got != tt.want[i] {
					t.Errorf("packet %d: unwrap(%#x) = %#x, want %#x", i, s, got, tt.want[i])
				}
			}
		})
	}
}

// TestSeqUnwrapperReorderedStream feeds a long stream that wraps many times,
// with local reordering and duplicates, and checks that every packet gets
// back the extended number it was sent with.
func TestSeqUnwrapperReorderedStream(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const start = 1<<16 + 0xff00 // first packet: near the wrap
	const n = 300000
	sent := make([]uint64, n)
	for i := range sent {
		sent[i] = start + uint64(i)
	}
	// Reorder within a window of 50 packets and duplicate some.
	for i := 0; i+1 < n; i++ {
		if r.IntN(5) == 0 {
			j := i + 1 + r.IntN(min(50, n-i-1))
			sent[i], sent[j] = sent[j], sent[i]
		}
	}
	// The first packet must be the reference for the expected values.
	for i := range sent {
		if sent[i] == start {
			sent[0], sent[i] = sent[i], sent[0]
			break
		}
	}
	var u seqUnwrapper
	highest := uint64(0)
	for i, ext := range sent {
		got := u.unwrap(uint16(ext))
		if got != ext {
			t.Fatalf("packet %d: unwrap(%#x) = %#x, want %#x", i, uint16(ext), got, ext)
		}
		highest = max(highest, ext)
		if u.highest != highest {
			t.Fatalf("packet %d: highest = %#x, want %#x", i, u.highest, highest)
		}
		if r.IntN(20) == 0 { // duplicate
			if got := u.unwrap(uint16(ext)); got != ext {
				t.Fatalf("duplicate of packet %d: unwrap(%#x) = %#x, want %#x", i, uint16(ext), got, ext)
			}
		}
	}
}
