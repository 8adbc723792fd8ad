package sfu

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// SSRC-based simulcast (a=ssrc-group:SIM, RFC 5576, as older clients and
// SDP-munging ones publish it): the layers of an m-line are SSRCs listed
// smallest first, their packets name no rid. Pion routes simulcast only
// by rid, so the server takes such an offer as if it were rid-based: it
// names each layer (ssrcRID), and the first packets of each layer's
// stream (and of its RTX stream) get that name in a header extension
// before Pion reads them (ridInjector). The answer the client gets says
// nothing of rids: it offered none.

// ssrcLayer is the rid given to one SSRC of an SSRC-based simulcast m-line.
type ssrcLayer struct {
	rid    string
	repair bool // the RTX stream of that layer
}

// ssrcLayers maps SSRCs to the rid given to them, engine-wide (streams of
// every publisher meet in the interceptor).
type ssrcLayers struct{ m sync.Map } // uint32 -> ssrcLayer

// ridInjector is the interceptor that writes the rid into the first
// packets of an SSRC-based simulcast layer.
type ridInjector struct {
	interceptor.NoOp
	layers *ssrcLayers
}

type ridInjectorFactory struct{ layers *ssrcLayers }

func (f ridInjectorFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &ridInjector{layers: f.layers}, nil
}

// injectPackets is how many packets of a stream get the rid: Pion reads
// at most a few to place a stream.
const injectPackets = 64

func (r *ridInjector) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	v, ok := r.layers.m.Load(info.SSRC)
	if !ok {
		return reader
	}
	layer := v.(ssrcLayer)
	uri := sdp.SDESRTPStreamIDURI
	if layer.repair {
		uri = sdp.SDESRepairRTPStreamIDURI
	}
	var id uint8
	for _, e := range info.RTPHeaderExtensions {
		if e.URI == uri {
			id = uint8(e.ID)
		}
	}
	if id == 0 {
		return reader
	}
	n := 0
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		i, a, err := reader.Read(b, a)
		if err != nil || n >= injectPackets {
			return i, a, err
		}
		n++
		var p rtp.Packet
		if p.Unmarshal(b[:i]) != nil || p.Header.GetExtension(id) != nil {
			return i, a, err
		}
		if p.Header.SetExtension(id, []byte(layer.rid)) != nil {
			return i, a, err
		}
		out, merr := p.Marshal()
		if merr != nil || len(out) > len(b) {
			return i, a, err
		}
		return copy(b, out), a, nil
	})
}

// simRID names layer i of an SSRC-based simulcast m-line.
func simRID(i int) string { return "sim" + strconv.Itoa(i) }

// ridsFromSIM rewrites each m-line of d that declares SSRC-based simulcast
// (and no rids) into rid-based simulcast, in place, and returns the SSRCs
// it named and the mids it rewrote (true: it added the rid extensions).
func ridsFromSIM(d *sdp.SessionDescription) (map[uint32]ssrcLayer, map[string]bool, error) {
	named := map[uint32]ssrcLayer{}
	mids := map[string]bool{}
	for _, m := range d.MediaDescriptions {
		var sim []uint32
		rtx := map[uint32]uint32{} // media -> its RTX
		hasRID := false
		exts := map[string]bool{}
		used := map[int]bool{}
		for _, a := range m.Attributes {
			switch a.Key {
			case "rid":
				hasRID = true
			case "extmap":
				fields := strings.Fields(a.Value)
				if len(fields) >= 2 {
					id, _ := strconv.Atoi(strings.Split(fields[0], "/")[0])
					used[id] = true
					exts[fields[1]] = true
				}
			case "ssrc-group":
				fields := strings.Fields(a.Value)
				if len(fields) == 0 {
					return nil, nil, fmt.Errorf("%w: a=ssrc-group without semantics", ErrBadSDP)
				}
				ssrcs := make([]uint32, 0, len(fields))
				for _, f := range fields[1:] {
					v, err := strconv.ParseUint(f, 10, 32)
					if err != nil {
						return nil, nil, fmt.Errorf("%w: a=ssrc-group:%s", ErrBadSDP, a.Value)
					}
					ssrcs = append(ssrcs, uint32(v))
				}
				switch {
				case fields[0] == "SIM":
					sim = ssrcs
				case fields[0] == "FID" && len(ssrcs) == 2:
					rtx[ssrcs[0]] = ssrcs[1]
				}
			}
		}
		mid, _ := m.Attribute(sdp.AttrKeyMID)
		if len(sim) < 2 || hasRID || mid == "" {
			continue
		}
		sim = sim[:min(len(sim), MaxLayers)]
		drop := map[string]bool{}
		var rids []string
		for i, s := range sim {
			rid := simRID(i)
			rids = append(rids, rid)
			named[s] = ssrcLayer{rid: rid}
			drop[strconv.FormatUint(uint64(s), 10)] = true
			if r, ok := rtx[s]; ok {
				named[r] = ssrcLayer{rid: rid, repair: true}
				drop[strconv.FormatUint(uint64(r), 10)] = true
			}
		}
		kept := m.Attributes[:0]
		for _, a := range m.Attributes {
			first, _, _ := strings.Cut(a.Value, " ")
			switch {
			case a.Key == "ssrc" && drop[first], a.Key == "ssrc-group":
				continue
			}
			kept = append(kept, a)
		}
		// The rid extensions Pion routes by, if the offer lacks them.
		added := false
		for _, uri := range []string{sdp.SDESRTPStreamIDURI, sdp.SDESRepairRTPStreamIDURI} {
			if exts[uri] {
				continue
			}
			id := 1
			for used[id] {
				id++
			}
			if id > 14 {
				return nil, nil, fmt.Errorf("%w: no header extension id left for SSRC-based simulcast", ErrBadSDP)
			}
			used[id], added = true, true
			kept = append(kept, sdp.NewAttribute("extmap", strconv.Itoa(id)+" "+uri))
		}
		for _, rid := range rids {
			kept = append(kept, sdp.NewAttribute("rid", rid+" send"))
		}
		m.Attributes = append(kept, sdp.NewAttribute("simulcast", "send "+strings.Join(rids, ";")))
		mids[mid] = added
	}
	return named, mids, nil
}

// dropRIDs takes the rid-based simulcast lines out of the answer's
// m-lines whose offer was SSRC-based (and the rid extensions, where the
// offer had none).
func dropRIDs(answer string, mids map[string]bool) (string, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(answer); err != nil {
		return "", err
	}
	for _, m := range d.MediaDescriptions {
		if mid, _ := m.Attribute(sdp.AttrKeyMID); !hasKey(mids, mid) {
			continue
		}
		mid, _ := m.Attribute(sdp.AttrKeyMID)
		kept := m.Attributes[:0]
		for _, a := range m.Attributes {
			ridExt := a.Key == "extmap" && (strings.Contains(a.Value, sdp.SDESRTPStreamIDURI) || strings.Contains(a.Value, sdp.SDESRepairRTPStreamIDURI))
			if a.Key != "rid" && a.Key != "simulcast" && !(ridExt && mids[mid]) {
				kept = append(kept, a)
			}
		}
		m.Attributes = kept
	}
	out, err := d.Marshal()
	return string(out), err
}

func hasKey(m map[string]bool, k string) bool { _, ok := m[k]; return ok }
