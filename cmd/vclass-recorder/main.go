// Command vclass-recorder records classes of vclass-media: it joins rooms
// as an invisible recorder and writes each participant's media, without
// re-encoding, into files that are playable at every moment. Portals
// start and stop recordings over its HTTPS API (docs/recorder.md).
//
// It reads the config.json of the recorder it replaces, unchanged.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/net/netutil"

	"github.com/vclass/vclass/cmd/internal/health"
	"github.com/vclass/vclass/cmd/internal/logs"
	"github.com/vclass/vclass/config"
	"github.com/vclass/vclass/recorder"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

// exit codes
const (
	exitOK      = 0
	exitRuntime = 1
	exitConfig  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vclass-recorder", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defPath := getenv("VCLASS_RECORDER_CONFIG")
	if defPath == "" {
		defPath = "config/config.json"
	}
	configPath := fs.String("config", defPath, "config.json to load (env VCLASS_RECORDER_CONFIG)")
	checkPath := fs.String("check-config", "", "load this file, print the effective settings as JSON and exit (2 if invalid)")
	logDir := fs.String("log-dir", getenv("VCLASS_LOG_DIR"), "write rotated JSON logs to this folder (env VCLASS_LOG_DIR; default: the config's Logging.LogDir)")
	shutdown := fs.Duration("shutdown-timeout", 30*time.Second, "how long SIGTERM may take to finish the recordings' files")
	healthcheck := fs.Bool("healthcheck", false, "ask the running recorder's /healthz (for a container HEALTHCHECK) and exit 0 if healthy")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if *showVersion {
		fmt.Fprintln(stdout, "vclass-recorder", version)
		return exitOK
	}
	if *checkPath != "" {
		return checkConfig(*checkPath, getenv, stdout, stderr)
	}
	cfg, err := loadConfig(*configPath, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "vclass-recorder: %v\n", err)
		return exitConfig
	}
	if *healthcheck {
		scheme := "http"
		if cfg.TLS {
			scheme = "https"
		}
		return health.Check(health.LocalURL(scheme, cfg.ListenAddr, "/healthz"), stderr)
	}
	if *logDir == "" {
		*logDir = cfg.LogDir
	}
	level := "info"
	if cfg.Debug {
		level = "debug"
	}
	log, closeLog, err := logs.New(level, *logDir, "vclass-recorder", stdout)
	if err != nil {
		fmt.Fprintf(stderr, "vclass-recorder: %v\n", err)
		return exitConfig
	}
	defer closeLog()
	var tlsCfg *tls.Config
	if cfg.TLS {
		cert, warning, err := cfg.Certificate.Load(time.Now())
		if err != nil {
			fmt.Fprintf(stderr, "vclass-recorder: %v\n", err)
			return exitConfig
		}
		if warning != "" {
			log.Warn("certificate loaded although invalid (AllowInvalid)", "warning", warning)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if err := serve(ctx, cfg, tlsCfg, *shutdown, log, stdout); err != nil {
		log.Error("vclass-recorder stopped", "err", err)
		return exitRuntime
	}
	return exitOK
}

func loadConfig(path string, getenv func(string) string) (*config.Recorder, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	cfg, err := config.LoadRecorder(path, wd)
	if err != nil {
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
		fmt.Fprintf(stderr, "vclass-recorder: %v\n", err)
		return exitConfig
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(cfg); err != nil {
		fmt.Fprintf(stderr, "vclass-recorder: %v\n", err)
		return exitRuntime
	}
	return exitOK
}

func serve(ctx context.Context, cfg *config.Recorder, tlsCfg *tls.Config, budget time.Duration, log *slog.Logger, stdout io.Writer) error {
	for _, key := range cfg.Ignored {
		log.Debug("config key ignored", "key", key)
	}
	if cfg.AuthSecret == "" {
		log.Warn("no ticket secret (Media.AuthSecret or VCLASS_AUTH_SECRET): recordings will fail to join, the media server needs a recorder ticket")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	svc, err := recorder.New(recorder.Params{Config: cfg, Logger: log, Registry: reg})
	if err != nil {
		return err
	}
	httpSrv := &http.Server{
		Handler:           recorder.NewHandler(recorder.HandlerParams{Service: svc, Config: cfg, Logger: log.With("part", "api"), Gatherer: reg}),
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: cfg.Limits.RequestHeadersTimeout,
		ReadTimeout:       time.Minute, // requests are small; downloads are writes
		IdleTimeout:       cfg.Limits.KeepAliveTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return err
	}
	if n := cfg.Limits.MaxConcurrentConnections; n > 0 {
		ln = netutil.LimitListener(ln, n)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	errc := make(chan error, 1)
	go func() { errc <- httpSrv.Serve(ln) }()
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	log.Info("vclass-recorder started", "version", version, "listen", ln.Addr().String(), "tls", tlsCfg != nil, "media", cfg.MediaURL,
		"recordings", cfg.RecordingDir, "clients", len(cfg.Clients), "config", cfg.Source)
	fmt.Fprintf(stdout, "vclass-recorder: API at %s://%s/api/v1/recordings\n", scheme, ln.Addr())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing every recording's files")
	sctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	if err := svc.Shutdown(sctx); err != nil {
		log.Warn("recordings still finishing at the shutdown deadline", "err", err)
	}
	if err := httpSrv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("http shutdown", "err", err)
	}
	log.Info("stopped")
	return nil
}
