package recorder

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vclass/vclass/config"
)

// metrics are the recorder's Prometheus metrics.
type metrics struct {
	bytesTotal prometheus.Counter
	lostTotal  prometheus.Counter
	slots      *prometheus.GaugeVec
	jobs       *prometheus.GaugeVec

	mu     sync.Mutex
	states map[*job]State
	cfg    *config.Recorder
}

func newMetrics(reg prometheus.Registerer, cfg *config.Recorder) *metrics {
	m := &metrics{
		bytesTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: "vclass_recorder_bytes_written_total", Help: "Bytes of media written to recordings."}),
		lostTotal:  prometheus.NewCounter(prometheus.CounterOpts{Name: "vclass_recorder_packets_lost_total", Help: "RTP packets that never arrived, after NACK recovery."}),
		slots:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vclass_recorder_slots", Help: "Recording slots per portal client, used and free."}, []string{"client", "state"}),
		jobs:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vclass_recorder_recordings", Help: "Recordings known, by state."}, []string{"state"}),
		states:     map[*job]State{},
		cfg:        cfg,
	}
	for _, s := range []State{StateStarting, StateRecording, StateStopping, StateDone, StateFailed, StateInterrupted} {
		m.jobs.WithLabelValues(string(s))
	}
	for _, c := range cfg.Clients {
		m.slots.WithLabelValues(c.Username, "used").Set(0)
		m.slots.WithLabelValues(c.Username, "free").Set(float64(c.Slots))
	}
	if reg != nil {
		reg.MustRegister(m.bytesTotal, m.lostTotal, m.slots, m.jobs)
	}
	return m
}

func (m *metrics) bytes(n int64) { m.bytesTotal.Add(float64(n)) }

func (m *metrics) lost(n uint64) { m.lostTotal.Add(float64(n)) }

// state notes a job's new state and recounts the slots.
func (m *metrics) state(j *job, s State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.states[j]; ok {
		m.jobs.WithLabelValues(string(old)).Dec()
	}
	m.states[j] = s
	m.jobs.WithLabelValues(string(s)).Inc()
	m.recountLocked()
}

// forget drops a deleted job.
func (m *metrics) forget(j *job) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.states[j]; ok {
		m.jobs.WithLabelValues(string(old)).Dec()
		delete(m.states, j)
	}
	m.recountLocked()
}

func (m *metrics) recountLocked() {
	used := map[string]int{}
	for j, s := range m.states {
		if s.active() && j.rec.Client != "" {
			used[j.rec.Client]++
		}
	}
	for _, c := range m.cfg.Clients {
		m.slots.WithLabelValues(c.Username, "used").Set(float64(used[c.Username]))
		m.slots.WithLabelValues(c.Username, "free").Set(float64(max(0, c.Slots-used[c.Username])))
	}
}
