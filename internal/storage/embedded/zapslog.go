package embedded

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newZapLogger returns a zap logger (what etcd logs with) that writes to l.
// etcd is chatty at info level, so only errors pass unless l is enabled for
// debug, in which case info and above pass. Once closing is set, everything
// is logged at debug level: etcd reports its listeners closing as errors.
func newZapLogger(l *slog.Logger, closing *atomic.Bool) *zap.Logger {
	level := zapcore.ErrorLevel
	if l.Enabled(context.Background(), slog.LevelDebug) {
		level = zapcore.InfoLevel
	}
	return zap.New(&slogCore{logger: l.With("component", "etcd"), level: level, closing: closing})
}

// slogCore is a zapcore.Core that forwards entries to a slog.Logger.
type slogCore struct {
	logger  *slog.Logger
	level   zapcore.Level
	closing *atomic.Bool
	attrs   []any
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= c.level }

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	clone := *c
	clone.attrs = append(append([]any(nil), c.attrs...), fieldAttrs(fields)...)
	return &clone
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	args := append(append([]any(nil), c.attrs...), fieldAttrs(fields)...)
	if e.LoggerName != "" {
		args = append(args, "logger", e.LoggerName)
	}
	level := slogLevel(e.Level)
	if c.closing.Load() {
		level = slog.LevelDebug
	}
	c.logger.Log(context.Background(), level, e.Message, args...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

func fieldAttrs(fields []zapcore.Field) []any {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := slices.Sorted(maps.Keys(enc.Fields))
	attrs := make([]any, 0, len(keys))
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, enc.Fields[k]))
	}
	return attrs
}

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}
