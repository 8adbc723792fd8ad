package signaling

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vclass/vclass/room"
	"github.com/vclass/vclass/sfu"
)

// Metrics is the Prometheus registry of one vclass-media process. Media
// counters are read from the engine at scrape time, so the packet path
// only touches its own atomics.
type Metrics struct {
	reg         *prometheus.Registry
	joinFailure *prometheus.CounterVec
	requests    *prometheus.CounterVec
	limited     *prometheus.CounterVec
	slow        *prometheus.CounterVec
}

// NewMetrics registers the collectors; engine and rooms may be nil in tests.
func NewMetrics(engine *sfu.Engine, rooms *room.Manager) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		joinFailure: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vclass_join_failures_total", Help: "Room joins refused, by reason.",
		}, []string{"reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vclass_signaling_requests_total", Help: "Signaling requests by method and result code.",
		}, []string{"method", "code"}),
	}
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vclass_limited_total", Help: "Requests and connections refused with 429, by the limit crossed.",
	}, []string{"limit"})
	m.slow = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vclass_slow_clients_total", Help: "WebSocket clients dropped for not taking what the server sends: their queue full, or a write timed out.",
	}, []string{"cause"})
	m.reg.MustRegister(m.joinFailure, m.requests, m.limited, m.slow,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if engine != nil && rooms != nil {
		m.reg.MustRegister(&mediaCollector{engine: engine, rooms: rooms})
	}
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func (m *Metrics) observeRequest(method string, err error) {
	code := "ok"
	if err != nil {
		code = toWire(err).Code
	}
	if _, known := handlers[method]; !known {
		method = "unknown"
	}
	m.requests.WithLabelValues(method, code).Inc()
}

// refused counts a 429 of limit: "rate" or "connections" (WebSocket), "api".
func (m *Metrics) refused(limit string) {
	m.limited.WithLabelValues(limit).Inc()
}

// APIRefused counts a portal API request refused with 429.
func (m *Metrics) APIRefused() { m.refused("api") }

// droppedSlow counts a client dropped for being too slow: cause is
// "queue" or "write".
func (m *Metrics) droppedSlow(cause string) { m.slow.WithLabelValues(cause).Inc() }

func (m *Metrics) joinFailed(err error) {
	m.joinFailure.WithLabelValues(toWire(err).Code).Inc()
}

var (
	descRooms       = prometheus.NewDesc("vclass_rooms", "Rooms open on this node.", nil, nil)
	descPeers       = prometheus.NewDesc("vclass_peers", "Peers in rooms.", nil, nil)
	descProducers   = prometheus.NewDesc("vclass_producers", "Tracks being published.", nil, nil)
	descConsumers   = prometheus.NewDesc("vclass_consumers", "Tracks being forwarded to subscribers.", nil, nil)
	descPackets     = prometheus.NewDesc("vclass_rtp_packets_total", "RTP packets by direction.", []string{"direction"}, nil)
	descBytes       = prometheus.NewDesc("vclass_rtp_bytes_total", "RTP bytes by direction.", []string{"direction"}, nil)
	descNacks       = prometheus.NewDesc("vclass_nacks_received_total", "Sequence numbers NACKed by subscribers.", nil, nil)
	descRetrans     = prometheus.NewDesc("vclass_retransmissions_total", "Packets resent from the cache on NACK.", nil, nil)
	descPLIs        = prometheus.NewDesc("vclass_plis_total", "Keyframe requests: in from subscribers, out to publishers.", []string{"direction"}, nil)
	descDropped     = prometheus.NewDesc("vclass_rtp_dropped_total", "Outgoing packets that could not be written.", nil, nil)
	descSwitches    = prometheus.NewDesc("vclass_layer_switches_total", "Switches of a subscriber's track to another simulcast layer.", nil, nil)
	descPauses      = prometheus.NewDesc("vclass_bandwidth_pauses_total", "Videos paused because a subscriber's link could not carry even their smallest layer.", nil, nil)
	descPaused      = prometheus.NewDesc("vclass_bandwidth_paused_videos", "Videos paused for bandwidth now.", nil, nil)
	descProbe       = prometheus.NewDesc("vclass_probe_bytes_total", "Padding sent to probe subscribers' links.", nil, nil)
	descSkipped     = prometheus.NewDesc("vclass_retransmissions_skipped_total", "NACKed packets not resent: the subscriber's retransmission budget was spent.", nil, nil)
	descRTCPRefused = prometheus.NewDesc("vclass_rtcp_refused_total", "RTCP packets from a subscriber's address its keys did not open (forged, replayed, or another transport's: left to Pion), or that did not parse.", nil, nil)
	descDirectIn    = prometheus.NewDesc("vclass_rtp_direct_in_total", "Publishers' RTP packets read on the direct path (the server's own SRTP context, not Pion's).", nil, nil)
	descRTPRefused  = prometheus.NewDesc("vclass_rtp_refused_total", "Publishers' RTP packets of a stream read on the direct path that did not decrypt (forged, replayed): dropped.", nil, nil)
	descEstimate    = prometheus.NewDesc("vclass_subscriber_estimate_bps", "Subscribers' downlink estimates (bits per second), one observation per subscriber every 500 ms.", nil, nil)
)

type mediaCollector struct {
	engine *sfu.Engine
	rooms  *room.Manager
}

func (c *mediaCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRooms, descPeers, descProducers, descConsumers, descPackets, descBytes, descNacks, descRetrans, descPLIs, descDropped,
		descSwitches, descPauses, descPaused, descProbe, descSkipped, descRTCPRefused, descDirectIn, descRTPRefused, descEstimate} {
		ch <- d
	}
}

func (c *mediaCollector) Collect(ch chan<- prometheus.Metric) {
	rooms, peers, producers, consumers := c.rooms.Counts()
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	gauge(descRooms, rooms)
	gauge(descPeers, peers)
	gauge(descProducers, producers)
	gauge(descConsumers, consumers)
	s := &c.engine.Stats
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descPackets, s.PacketsIn.Load(), "in")
	counter(descPackets, s.PacketsOut.Load(), "out")
	counter(descBytes, s.BytesIn.Load(), "in")
	counter(descBytes, s.BytesOut.Load(), "out")
	counter(descNacks, s.NacksIn.Load())
	counter(descRetrans, s.Retransmits.Load())
	counter(descPLIs, s.PLIsIn.Load(), "in")
	counter(descPLIs, s.PLIsOut.Load(), "out")
	counter(descDropped, s.DroppedOut.Load())
	counter(descSwitches, s.LayerSwitches.Load())
	counter(descPauses, s.BandwidthPauses.Load())
	gauge(descPaused, int(s.PausedVideos.Load()))
	counter(descProbe, s.ProbeBytes.Load())
	counter(descSkipped, s.ResendsSkipped.Load())
	counter(descRTCPRefused, s.RTCPRefused.Load())
	counter(descDirectIn, s.DirectIn.Load())
	counter(descRTPRefused, s.RTPRefused.Load())
	buckets := make(map[float64]uint64, len(sfu.EstimateBuckets))
	var count uint64
	for i, le := range sfu.EstimateBuckets {
		count += s.Estimates[i].Load()
		buckets[float64(le)] = count
	}
	count += s.Estimates[len(sfu.EstimateBuckets)].Load()
	ch <- prometheus.MustNewConstHistogram(descEstimate, count, float64(s.EstimateSum.Load()), buckets)
}
