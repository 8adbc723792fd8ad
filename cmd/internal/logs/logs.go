// Package logs sets up the services' logs: text on stdout and, with a
// folder, rotated JSON files there.
package logs

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/natefinch/lumberjack.v2"
)

// New makes a logger at level (debug, info, warn, error, none) writing to
// stdout and, when dir is set, to dir/name.log, rotated at 50 MB. The
// returned function closes the file.
func New(level, dir, name string, stdout io.Writer) (*slog.Logger, func(), error) {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "none":
		return slog.New(slog.DiscardHandler), func() {}, nil
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	handlers := []slog.Handler{slog.NewTextHandler(stdout, opts)}
	closeFn := func() {}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, fmt.Errorf("log dir: %w", err)
		}
		file := &lumberjack.Logger{
			Filename: filepath.Join(dir, name+".log"), MaxSize: 50, MaxBackups: 10, MaxAge: 30, Compress: true,
		}
		handlers = append(handlers, slog.NewJSONHandler(file, opts))
		closeFn = func() { _ = file.Close() }
	}
	return slog.New(slog.NewMultiHandler(handlers...)), closeFn, nil
}
