// Command vclass-media is the WebRTC media server of a virtual class.
//
// With no configuration it starts on an embedded default (Open rooms,
// anonymous joins, HTTP on :8011) and serves a browser client at /.
// With -config it reads a deployment's mediasoup_config.json unchanged.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vclass/vclass/cluster"
	"github.com/vclass/vclass/cmd/internal/health"
	"github.com/vclass/vclass/cmd/internal/logs"
	"github.com/vclass/vclass/config"
	"github.com/vclass/vclass/internal/limit"
	"github.com/vclass/vclass/room"
	"github.com/vclass/vclass/sfu"
	"github.com/vclass/vclass/signaling"
	"github.com/vclass/vclass/web"
	"github.com/vclass/vclass/webhook"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

// gcPercent is the garbage collector's GOGC unless the environment sets
// one: the forwarding path allocates next to nothing, so collections are
// rare and cheap, and a heap let grow to twice what is live (Go's 100) is
// memory a node of hundreds of subscribers need not hold (at 600 lean
// subscribers: 0.42 against 0.52 MiB of RSS a subscriber, the same CPU;
// docs/BENCHMARKS.md).
const gcPercent = 50

// shutdownBudget is how long SIGTERM may take, all told.
const shutdownBudget = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// exit codes
const (
	exitOK      = 0
	exitRuntime = 1
	exitConfig  = 2
)

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vclass-media", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", getenv("VCLASS_MEDIA_CONFIG"), "mediasoup_config.json to load (env VCLASS_MEDIA_CONFIG); empty = embedded default")
	checkPath := fs.String("check-config", "", "load this file, print the effective settings as JSON and exit (2 if invalid)")
	httpAddr := fs.String("http", "", "HTTP listen address (overrides VCLASS_HTTP_ADDR and the default :8011)")
	logDir := fs.String("log-dir", getenv("VCLASS_LOG_DIR"), "also write logs to a rotated file in this folder (env VCLASS_LOG_DIR)")
	healthcheck := fs.Bool("healthcheck", false, "ask the running server's /healthz (for a container HEALTHCHECK) and exit 0 if healthy")
	showVersion := fs.Bool("version", false, "print the version and exit")
	debugAddr := fs.String("debug-addr", getenv("VCLASS_DEBUG_ADDR"), "serve Go's profiles (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; keep it off the public network (env VCLASS_DEBUG_ADDR; empty = off)")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if *showVersion {
		fmt.Fprintln(stdout, "vclass-media", version)
		return exitOK
	}
	if *checkPath != "" {
		return checkConfig(*checkPath, getenv, stdout, stderr)
	}
	cfg, err := loadConfig(*configPath, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "vclass-media: %v\n", err)
		return exitConfig
	}
	if *httpAddr != "" {
		cfg.HTTPAddr = *httpAddr
	}
	if *healthcheck {
		return health.Check(health.LocalURL("http", cfg.HTTPAddr, "/healthz"), stderr)
	}
	log, closeLog, err := logs.New(cfg.LogLevel, *logDir, "vclass-media", stdout)
	if err != nil {
		fmt.Fprintf(stderr, "vclass-media: %v\n", err)
		return exitConfig
	}
	defer closeLog()
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if *debugAddr != "" {
		ln, err := net.Listen("tcp", *debugAddr)
		if err != nil {
			log.Error("vclass-media: -debug-addr", "err", err)
			return exitConfig
		}
		defer serveDebug(ln, log)()
	}
	if err := serve(ctx, cfg, log, stdout); err != nil {
		log.Error("vclass-media stopped", "err", err)
		return exitRuntime
	}
	return exitOK
}

func loadConfig(path string, getenv func(string) string) (*config.Media, error) {
	var cfg *config.Media
	var err error
	if path == "" {
		cfg = config.DefaultMedia()
	} else if cfg, err = config.LoadMedia(path); err != nil {
		return nil, err
	}
	if err := cfg.ApplyEnv(getenv); err != nil {
		return nil, err
	}
	return cfg, nil
}

func checkConfig(path string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(path, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "vclass-media: %v\n", err) // the error names the file
		return exitConfig
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(cfg); err != nil {
		fmt.Fprintf(stderr, "vclass-media: %v\n", err)
		return exitRuntime
	}
	return exitOK
}

func serve(ctx context.Context, cfg *config.Media, log *slog.Logger, stdout io.Writer) error {
	for _, key := range cfg.Ignored {
		log.Info("config key ignored", "key", key)
	}
	engine, err := sfu.NewEngine(sfu.EngineParams{
		RTC: cfg.RTC, Codecs: cfg.Codecs, MaxIncomingBitrate: cfg.Bitrate.MaxIncoming,
		InitialOutgoingBitrate: cfg.Bitrate.InitialAvailableOutgoing, MaxOutgoingBitrate: cfg.Bitrate.MaxOutgoing,
		Logger: log.With("part", "sfu"),
	})
	if err != nil {
		return err
	}
	var hooks *webhook.Sender
	if cfg.WebhookURL != "" {
		hooks = webhook.New(webhook.Params{URL: cfg.WebhookURL, Secret: cfg.WebhookSecret, Logger: log.With("part", "webhook")})
		defer hooks.Close()
	}
	var node *cluster.Node // set below in cluster mode; read by onEvent afterwards only
	onEvent := func(e room.Event) {
		if hooks != nil {
			hooks.Post(webhook.Event{Event: e.Kind, Room: e.Room, PeerID: e.PeerID, DisplayName: e.DisplayName, Role: e.Role, Reason: e.Reason})
		}
		if e.Kind == "roomFinished" && node != nil {
			go node.Release(e.Room) // the room may form again on any node
		}
	}
	lim := cfg.Limits
	rooms := room.NewManager(room.Params{
		Engine: engine, ServeMode: cfg.ServeMode, EmptyGrace: 10 * time.Second, OnEvent: onEvent, Logger: log.With("part", "room"),
		MaxPeersPerRoom: lim.PeersPerRoom, MaxProducersPerPeer: lim.ProducersPerPeer, MaxRooms: lim.RoomsPerNode,
	})
	metrics := signaling.NewMetrics(engine, rooms)
	var place func(ctx context.Context, roomID string) (string, error)
	var clusterAPI signaling.ClusterAPI
	if c := cfg.Cluster; c.RedisURL != "" {
		internal := c.InternalURL
		if internal == "" {
			internal = defaultInternalURL(cfg.HTTPAddr)
		}
		n, err := cluster.New(cluster.Params{
			RedisURL: c.RedisURL, NodeID: c.NodeID, PublicURL: c.PublicURL, InternalURL: internal, Logger: log.With("part", "cluster"),
			Load: func() int {
				_, peers, _, _ := rooms.Counts()
				return peers
			},
			Rooms: func() []string {
				var ids []string
				for _, r := range rooms.Rooms() {
					ids = append(ids, r.ID())
				}
				return ids
			},
			OnLost: func(room, _ string) { rooms.MoveRoom(room) },
		})
		if err != nil {
			engine.Close()
			return err
		}
		defer n.Close()
		node = n
		place = func(ctx context.Context, roomID string) (string, error) {
			owner, local, err := n.Place(ctx, roomID)
			if err != nil || local {
				return "", err
			}
			return owner.URL, nil
		}
		clusterAPI = clusterView{n}
		log.Info("cluster mode", "node", c.NodeID, "publicUrl", c.PublicURL, "internalUrl", internal)
	}
	srv := signaling.NewServer(signaling.Params{
		Rooms: rooms, Metrics: metrics, AllowEmptyTickets: cfg.AllowEmptyTickets, TicketSecrets: cfg.TicketSecrets,
		Logger: log.With("part", "signaling"), Place: place,
		MaxMessage: int64(lim.MessageBytes), MessageRate: limit.Rate{PerSecond: lim.MessagesPerSecond, Burst: lim.MessageBurst},
		MaxSources: lim.ProducersPerPeer, TrustedProxies: lim.TrustedProxies,
		PerIP: limit.NewPerIP(limit.Rate{PerSecond: lim.ConnectionsPerSecond, Burst: lim.ConnectionBurst}, lim.ConnectionsPerIP),
	})
	if !cfg.AllowEmptyTickets && len(cfg.TicketSecrets) == 0 {
		log.Warn("AuthSettings.AllowEmptyTickets is false and no ticket secret is set (AuthSettings.Secret or VCLASS_AUTH_SECRET): every join will be refused")
	}
	var ready atomic.Bool
	httpSrv := &http.Server{
		Handler: signaling.NewHandler(signaling.HTTPParams{
			Server: srv, Metrics: metrics, Web: web.Handler(), Ready: &ready,
			API: signaling.NewAPI(signaling.APIParams{
				Rooms: rooms, Keys: cfg.APIKeys, TicketSecret: firstOrEmpty(cfg.TicketSecrets), Cluster: clusterAPI,
				MaxBody: int64(lim.APIBodyBytes), TrustedProxies: lim.TrustedProxies, Refused: metrics.APIRefused,
				PerIP: limit.NewPerIP(limit.Rate{PerSecond: lim.APIRequestsPerSecond, Burst: lim.APIRequestBurst}, 0),
			}),
		}),
		// WebSockets are free of these once upgraded: their reads and
		// writes have deadlines of their own.
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- httpSrv.Serve(ln) }()
	ready.Store(true)
	log.Info("vclass-media started", "version", version, "http", ln.Addr().String(), "serveMode", cfg.ServeMode, "udpPorts", engine.UDPPorts(), "config", cfg.Source)
	fmt.Fprintf(stdout, "vclass-media: open %s in a browser to join a class\n", browserURL(ln.Addr()))

	select {
	case err := <-errc:
		engine.Close()
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: no new joins; telling peers")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownBudget-time.Second)
	defer cancel()
	defer closeWithin(sctx, engine.Close, log)
	ready.Store(false)
	srv.BeginDrain()
	rooms.Drain("serverShutdown")
	srv.CloseAll("serverShutdown")
	srv.Wait(sctx)
	if err := httpSrv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("http shutdown", "err", err)
	}
	log.Info("stopped")
	return nil
}

// serveDebug serves Go's runtime profiles on their own listener, apart
// from the public one: a CPU or heap profile of a node under load.
func serveDebug(ln net.Listener, log *slog.Logger) (stop func()) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("profiles served", "addr", ln.Addr().String(), "path", "/debug/pprof/")
	return func() { _ = srv.Close() }
}

// clusterView answers the portal API's questions from the cluster.
type clusterView struct{ n *cluster.Node }

func (v clusterView) RoomNode(ctx context.Context, room string) (string, error) {
	owner, ok, err := v.n.Owner(ctx, room)
	if err != nil || !ok || owner.ID == v.n.ID() {
		return "", err
	}
	return owner.Internal, nil
}

func (v clusterView) PlaceNode(ctx context.Context, room string) (string, error) {
	owner, local, err := v.n.Place(ctx, room)
	if err != nil || local {
		return "", err
	}
	return owner.Internal, nil
}

func (v clusterView) OtherNodes(ctx context.Context) ([]string, error) {
	nodes, err := v.n.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, nd := range nodes {
		if nd.ID != v.n.ID() && nd.Internal != "" {
			out = append(out, nd.Internal)
		}
	}
	return out, nil
}

// defaultInternalURL is http://HOSTNAME:PORT, PORT from the listen address.
func defaultInternalURL(httpAddr string) string {
	host, _ := os.Hostname()
	_, port, err := net.SplitHostPort(httpAddr)
	if err != nil || port == "" {
		port = "8011"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func firstOrEmpty(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// closeWithin runs closeFn but returns when ctx ends: sockets the kernel
// still holds for vanished clients must not keep the process alive.
func closeWithin(ctx context.Context, closeFn func() error, log *slog.Logger) {
	done := make(chan error, 1)
	go func() { done <- closeFn() }()
	select {
	case err := <-done:
		if err != nil {
			log.Warn("closing media sockets", "err", err)
		}
	case <-ctx.Done():
		log.Warn("media sockets still closing at the shutdown deadline; exiting anyway")
	}
}

// browserURL is where a person on this machine opens the class page.
func browserURL(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.IP.IsUnspecified() {
		port := 0
		if ok {
			port = tcp.Port
		}
		return fmt.Sprintf("http://localhost:%d/", port)
	}
	return "http://" + tcp.String() + "/"
}
