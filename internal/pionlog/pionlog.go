// Package pionlog routes Pion's scoped logs into slog, for the server and
// the Go client alike.
package pionlog

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"

	"github.com/pion/logging"
)

// pionLogger routes Pion's scoped logs into slog one level down: Pion warns
// about routine events (a candidate pair failing, a closed stream read), so
// its warnings are info and its info is debug; errors stay errors; trace
// is dropped.
type pionLogger struct {
	log *slog.Logger
}

// Factory makes Pion's loggers, each with a "pion" attribute naming its
// scope.
type Factory struct{ Log *slog.Logger }

// NewLogger implements logging.LoggerFactory.
func (f Factory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.Log.With("pion", scope)}
}

func (l pionLogger) emit(level slog.Level, msg string) {
	if level == slog.LevelInfo && closing(msg) {
		level = slog.LevelDebug
	}
	l.log.Log(context.Background(), level, msg)
}

func (l pionLogger) emitf(level slog.Level, format string, a []any) {
	if l.log.Enabled(context.Background(), level) {
		l.emit(level, fmt.Sprintf(format, opaque(a)...))
	}
}

// opaque keeps Pion's live objects out of formatting. Pion logs some of
// them whole ("got new track: %+v" of a *TrackRemote): fmt reads their
// fields by reflection without their locks while Pion's other goroutines
// write them (a data race), and prints pages of internals. A pointer to a
// struct that cannot describe itself is logged as its type, with its ID
// when it has one (through its own, locked, method).
func opaque(a []any) []any {
	var out []any
	for i, v := range a {
		switch v.(type) {
		case nil, fmt.Stringer, error:
			continue
		}
		t := reflect.TypeOf(v)
		if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
			continue
		}
		if out == nil {
			out = append([]any(nil), a...)
		}
		if id, ok := v.(interface{ ID() string }); ok {
			out[i] = fmt.Sprintf("%T(%s)", v, id.ID())
		} else {
			out[i] = fmt.Sprintf("%T", v)
		}
	}
	if out == nil {
		return a
	}
	return out
}

// closing tells Pion's warnings about sockets it reads after they were
// closed: every transport that ends says so, dozens at a shutdown.
func closing(msg string) bool {
	return strings.Contains(msg, "closed pipe") || strings.Contains(msg, "use of closed network connection")
}

func (l pionLogger) Trace(string)          {}
func (l pionLogger) Tracef(string, ...any) {}
func (l pionLogger) Debug(msg string)      { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Debugf(format string, a ...any) {
	l.emitf(slog.LevelDebug, format, a)
}
func (l pionLogger) Info(msg string) { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Infof(format string, a ...any) {
	l.emitf(slog.LevelDebug, format, a)
}
func (l pionLogger) Warn(msg string)               { l.emit(slog.LevelInfo, msg) }
func (l pionLogger) Warnf(format string, a ...any) { l.emitf(slog.LevelInfo, format, a) }
func (l pionLogger) Error(msg string)              { l.emit(slog.LevelError, msg) }
func (l pionLogger) Errorf(format string, a ...any) {
	l.emitf(slog.LevelError, format, a)
}
