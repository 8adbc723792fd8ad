package sfu

// seqUnwrapper extends 16-bit RTP sequence numbers to 64 bits so that
// comparisons and cache indexes survive the wrap at 65535.
type seqUnwrapper struct {
	started bool
	highest uint64
}

// unwrap returns the extended sequence number of seq, taking the value
// closest to the highest one seen (so late packets map before it).
func (u *seqUnwrapper) unwrap(seq uint16) uint64 {
	if !u.started {
		u.started = true
		// Start one cycle up so that packets reordered before the first
		// one do not underflow.
		u.highest = 1<<16 | uint64(seq)
		return u.highest
	}
	ext := extendNear(u.highest, seq)
	if ext > u.highest {
		u.highest = ext
	}
	return ext
}

// extendNear returns the 64-bit value with low 16 bits seq that is nearest to ref.
func extendNear(ref uint64, seq uint16) uint64 {
	diff := int16(seq - uint16(ref))
	ext := int64(ref) + int64(diff)
	if ext < 0 {
		return uint64(seq)
	}
	return uint64(ext)
}
