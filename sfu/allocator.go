package sfu

import "sort"

// Track priorities for sharing a subscriber's bandwidth: lower first.
const (
	PriorityHigh    = 0 // screen shares and what the teacher sends
	PrioritySpeaker = 1 // the active speaker
	PriorityNormal  = 2
)

// allocTrack is what sharing a subscriber's bandwidth knows of one of its
// down tracks.
type allocTrack struct {
	video    bool
	priority int
	rates    [MaxLayers]float64 // bps of each layer arriving now; 0 = not arriving
	// temporal: bps of each layer's VP8 base temporal layer, and of its
	// base and first together; 0 when it has no temporal layers.
	temporal [MaxLayers][2]float64
	maxLayer int8 // the largest layer the subscriber wants
	current  int8 // the layer given last time; -1 = paused for bandwidth
	idle     bool // paused by its producer or subscriber: needs nothing
	twcc     bool // its subscriber sends TWCC feedback for it
}

// upgradeMargin is how much more than a layer's rate the budget must
// leave for a track to move up to it (or resume): keeping what it has
// needs only the rate, so that a wavering estimate does not flap layers.
const upgradeMargin = 1.15

// allocate shares budget bps among tracks: audio first and whole; then,
// in priority order, every video its smallest layer; then, again in
// priority order, each video the largest layer it wants that the rest
// affords. A video whose smallest layer does not fit is paused (-1) only
// when mayPause (the budget is a measured ceiling, not a first guess) and
// even keep, a higher budget the link had lately, would not carry it: a
// dip does not pause anything, it only costs layers and frames. Before
// pausing a video with temporal layers it gets fewer frames of its
// smallest layer (temporal: 1 or 0 rather than AllTemporal), if that
// fits, and in a dip its base frames if nothing fits; it gets its full
// frame rate back before a larger layer.
func allocate(budget, keep float64, tracks []allocTrack, mayPause bool) allocation {
	layers := make([]int8, len(tracks))
	temporal := make([]uint8, len(tracks))
	spent := make([]float64, len(tracks)) // what each takes at what it is given
	wanted := 0.0
	order := make([]int, 0, len(tracks))
	keep = max(keep, budget)
	for i, t := range tracks {
		layers[i], temporal[i] = -1, AllTemporal
		if t.idle {
			continue
		}
		if !t.video {
			layers[i], spent[i] = 0, t.rates[0]
			budget -= t.rates[0]
			keep -= t.rates[0]
			wanted += t.rates[0]
			continue
		}
		if lowest(t) < 0 {
			continue // nothing arriving yet: nothing to share
		}
		order = append(order, i)
		wanted += t.rates[wantedLayer(t)]
	}
	sort.SliceStable(order, func(a, b int) bool { return tracks[order[a]].priority < tracks[order[b]].priority })
	for _, i := range order {
		t := tracks[i]
		l := lowest(t)
		cost := t.rates[l]
		if t.current < 0 || t.current < l {
			cost *= upgradeMargin
		}
		if cost <= budget || !mayPause {
			layers[i], spent[i] = l, t.rates[l]
			budget -= t.rates[l]
			keep -= t.rates[l]
			continue
		}
		// Fewer frames rather than none: the base and first temporal
		// layers, or the base alone.
		for k := 1; k >= 0; k-- {
			if r := t.temporal[l][k]; r > 0 && r*upgradeMargin <= budget {
				layers[i], temporal[i], spent[i] = l, uint8(k), r
				break
			}
		}
		if layers[i] < 0 && t.current >= 0 && t.rates[l] <= keep {
			// It had room lately: it rides out the dip, at its base
			// frame rate where it has temporal layers (what it sends
			// beyond the link's share is lost, and takes the others'
			// packets with it).
			layers[i], spent[i] = l, t.rates[l]
			if r := t.temporal[l][0]; r > 0 {
				temporal[i], spent[i] = 0, r
			}
		}
		budget -= spent[i]
		keep -= spent[i]
	}
	for _, i := range order {
		t := tracks[i]
		if layers[i] < 0 {
			continue
		}
		if temporal[i] != AllTemporal {
			// Its full frame rate first.
			if extra := t.rates[layers[i]]*upgradeMargin - spent[i]; extra <= budget {
				budget -= t.rates[layers[i]] - spent[i]
				temporal[i], spent[i] = AllTemporal, t.rates[layers[i]]
			} else {
				continue
			}
		}
		for l := wantedLayer(t); l > layers[i]; l-- {
			if t.rates[l] == 0 {
				continue
			}
			extra := t.rates[l] - spent[i]
			if l > t.current {
				extra = t.rates[l]*upgradeMargin - spent[i]
			}
			if extra <= budget {
				budget -= t.rates[l] - spent[i]
				layers[i], spent[i] = l, t.rates[l]
				break
			}
		}
	}
	a := allocation{layers: layers, temporal: temporal, wanted: wanted}
	for _, s := range spent {
		a.spent += s
	}
	for _, i := range order {
		if layers[i] < 0 {
			a.paused++
		}
	}
	return a
}

// allocation is what allocate gives each track: its spatial layer (-1:
// paused) and highest temporal layer, with what every track at the layer
// it wants would take (wanted) and what they take as given (spent), and
// how many videos with media arriving it paused.
type allocation struct {
	layers        []int8
	temporal      []uint8
	wanted, spent float64
	paused        int
}

// lowest is the smallest arriving layer, -1 for none.
func lowest(t allocTrack) int8 {
	for l := range int8(MaxLayers) {
		if t.rates[l] > 0 {
			return l
		}
	}
	return -1
}

// wantedLayer is the largest arriving layer not above the track's cap
// (the smallest arriving one if none is).
func wantedLayer(t allocTrack) int8 {
	var live uint8
	for l := range MaxLayers {
		if t.rates[l] > 0 {
			live |= 1 << l
		}
	}
	return max(chooseLayer(live, t.maxLayer), 0)
}
