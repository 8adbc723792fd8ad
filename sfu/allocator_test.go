package sfu

import (
	"fmt"
	"strings"
	"testing"
)

func TestAllocate(t *testing.T) {
	cam := func(prio int, current int8) allocTrack {
		return allocTrack{video: true, priority: prio, rates: [MaxLayers]float64{100e3, 400e3, 1200e3}, maxLayer: 2, current: current}
	}
	audio := allocTrack{rates: [MaxLayers]float64{40e3}}
	capped := cam(PriorityNormal, 2)
	capped.maxLayer = 1
	single := allocTrack{video: true, priority: PriorityNormal, rates: [MaxLayers]float64{600e3}, maxLayer: 2}
	idle := cam(PriorityHigh, 2)
	idle.idle = true
	tests := []struct {
		name   string
		budget float64
		tracks []allocTrack
		want   []int8
		wanted float64
	}{
		{"plenty: all at the top", 5e6, []allocTrack{audio, cam(PriorityNormal, 2), cam(PriorityNormal, 2)}, []int8{0, 2, 2}, 2440e3},
		{"400 kbit/s: both small, audio whole", 400e3, []allocTrack{audio, audio, cam(PriorityNormal, 0), cam(PriorityNormal, 0)}, []int8{0, 0, 0, 0}, 2480e3},
		{"priority gets the upgrade", 700e3, []allocTrack{cam(PriorityNormal, 0), cam(PriorityHigh, 0)}, []int8{0, 1}, 2400e3},
		{"the speaker before the rest", 700e3, []allocTrack{cam(PriorityNormal, 0), cam(PrioritySpeaker, 0), cam(PriorityNormal, 0)}, []int8{0, 1, 0}, 3600e3},
		{"nothing fits: lowest priority paused first", 150e3, []allocTrack{cam(PriorityNormal, 0), cam(PriorityHigh, 0)}, []int8{-1, 0}, 2400e3},
		{"audio is never starved", 50e3, []allocTrack{audio, cam(PriorityHigh, 0)}, []int8{0, -1}, 1240e3},
		{"a cap holds", 5e6, []allocTrack{capped}, []int8{1}, 400e3},
		{"single stream", 700e3, []allocTrack{single}, []int8{0}, 600e3},
		{"idle takes nothing", 500e3, []allocTrack{idle, cam(PriorityNormal, 1)}, []int8{-1, 1}, 1200e3},
		// Keeping a layer needs its rate, moving up needs the margin too.
		{"keeps at the edge", 400e3, []allocTrack{cam(PriorityNormal, 1)}, []int8{1}, 1200e3},
		{"no upgrade at the edge", 400e3, []allocTrack{cam(PriorityNormal, 0)}, []int8{0}, 1200e3},
		{"a paused video resumes only with room to spare", 105e3, []allocTrack{cam(PriorityNormal, -1)}, []int8{-1}, 1200e3},
		{"nothing arriving", 1e6, []allocTrack{{video: true, maxLayer: 2}}, []int8{-1}, 0},
	}
	// Before any congestion the budget is a guess: too little of it pauses nothing.
	if got := allocate(150e3, 150e3, []allocTrack{cam(PriorityNormal, 0), single}, false).layers; fmt.Sprint(got) != "[0 0]" {
		t.Errorf("allocate without pausing = %v, want [0 0]", got)
	}
	// A dip below what a video needs does not pause it when the link
	// carried it lately; a video already paused stays paused.
	if got := allocate(150e3, 400e3, []allocTrack{cam(PriorityHigh, 0), cam(PriorityNormal, 0), cam(PriorityNormal, -1)}, true).layers; fmt.Sprint(got) != "[0 0 -1]" {
		t.Errorf("allocate in a dip = %v, want [0 0 -1]", got)
	}
	// Paused counts the videos stopped for bandwidth, not an idle one nor
	// one with nothing arriving.
	paused := map[string]int{
		"nothing fits: lowest priority paused first":     1,
		"audio is never starved":                         1,
		"a paused video resumes only with room to spare": 1,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := allocate(tt.budget, tt.budget, tt.tracks, true)
			got, wanted := a.layers, a.wanted
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || wanted != tt.wanted {
				t.Errorf("allocate(%.0f) = %v wanting %.0f, want %v wanting %.0f", tt.budget, got, wanted, tt.want, tt.wanted)
			}
			if a.paused != paused[tt.name] {
				t.Errorf("allocate(%.0f) paused %d videos, want %d", tt.budget, a.paused, paused[tt.name])
			}
		})
	}
}

// Before a video with temporal layers is paused it gets fewer frames of its
// smallest layer; with more room, its full frame rate comes back before a
// larger layer.
func TestAllocateTemporal(t *testing.T) {
	cam := func(prio int, current int8) allocTrack {
		return allocTrack{video: true, priority: prio, maxLayer: 2, current: current,
			rates:    [MaxLayers]float64{100e3, 400e3, 1200e3},
			temporal: [MaxLayers][2]float64{{40e3, 60e3}, {160e3, 240e3}, {480e3, 720e3}}}
	}
	for _, tt := range []struct {
		name     string
		budget   float64
		tracks   []allocTrack
		layers   string
		temporal string
		spent    float64
	}{
		{"room for both: all frames", 250e3, []allocTrack{cam(PriorityHigh, 0), cam(PriorityNormal, 0)}, "[0 0]", "[3 3]", 200e3},
		{"the rest at two thirds of its frames", 180e3, []allocTrack{cam(PriorityHigh, 0), cam(PriorityNormal, 0)}, "[0 0]", "[3 1]", 160e3},
		{"the rest at its base frames", 150e3, []allocTrack{cam(PriorityHigh, 0), cam(PriorityNormal, 0)}, "[0 0]", "[3 0]", 140e3},
		{"not even the base: paused", 110e3, []allocTrack{cam(PriorityHigh, 0), cam(PriorityNormal, 0)}, "[0 -1]", "[3 3]", 100e3},
		{"the priority one at fewer frames too", 60e3, []allocTrack{cam(PriorityHigh, 0), cam(PriorityNormal, 0)}, "[0 -1]", "[0 3]", 40e3},
		// In a dip (the link carried more lately: keep) nothing is paused,
		// but what does not fit goes on at its base frame rate.
		{"a dip: the rest at its base frames", 110e3, []allocTrack{cam(PriorityHigh, 0), cam(PriorityNormal, 0)}, "[0 0]", "[3 0]", 140e3},
		{"a dip: both at their base frames", 30e3, []allocTrack{cam(PriorityHigh, 0), cam(PriorityNormal, 0)}, "[0 0]", "[0 0]", 80e3},
	} {
		keep := tt.budget
		if strings.HasPrefix(tt.name, "a dip") {
			keep = 400e3
		}
		a := allocate(tt.budget, keep, tt.tracks, true)
		layers, temporal := a.layers, a.temporal
		if fmt.Sprint(layers) != tt.layers || fmt.Sprint(temporal) != tt.temporal || a.spent != tt.spent {
			t.Errorf("%s: layers %v temporal %v spending %.0f, want %s %s spending %.0f", tt.name, layers, temporal, a.spent, tt.layers, tt.temporal, tt.spent)
		}
	}
}
