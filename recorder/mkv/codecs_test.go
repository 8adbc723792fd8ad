package mkv

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// The av1C record of a sequence header made by libaom (ffmpeg -f lavfi -i
// testsrc=size=1280x720 -frames 1 -c:v libaom-av1 -f obu: 4:4:4 from RGB,
// so the high profile, level 5 = 3.1), and of a reduced still-picture
// header; the header is found among a temporal unit's OBUs.
func TestAV1Config(t *testing.T) {
	payload, _ := hex.DecodeString("2000002d4cffb3ccaf92021a0040")
	seq := append([]byte{0x0a, byte(len(payload))}, payload...)
	frame := []byte{0x32, 0x03, 1, 2, 3} // OBU_FRAME, 3 bytes
	tu := append(append(append([]byte{}, frame...), seq...), frame...)
	gotSeq, gotPayload, ok := AV1SequenceHeader(tu)
	if !ok || !bytes.Equal(gotSeq, seq) || !bytes.Equal(gotPayload, payload) {
		t.Fatalf("sequence header % x, % x, %v", gotSeq, gotPayload, ok)
	}
	priv, err := AV1Config(gotSeq, gotPayload)
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]byte{0x81, 1<<5 | 5, 0x00, 0x00}, seq...); !bytes.Equal(priv, want) {
		t.Errorf("av1C % x, want % x", priv, want)
	}
	// Main profile, reduced still picture header: the level right after.
	still := []byte{0x18, 0x40} // profile 0, still 1, reduced 1, level 0b00001
	if priv, err := AV1Config(append([]byte{0x0a, 2}, still...), still); err != nil || priv[1] != 1 || priv[2] != 0x0c {
		t.Errorf("still picture av1C % x, %v", priv, err)
	}
	for _, bad := range [][]byte{{0x0a}, {0x08, 0x01}, {0x0a, 0x05, 1}, frame[:4]} {
		if _, _, ok := AV1SequenceHeader(bad); ok {
			t.Errorf("% x: a sequence header", bad)
		}
	}
}
