package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Container log files use the CRI log format, one entry per line:
//
//	2026-01-02T15:04:05.123456789Z stdout F hello world
//
// that is a RFC 3339 timestamp with nanoseconds, the stream, a tag ("F" for
// a full line, "P" for a partial one whose rest follows in the next entry),
// and the content. containerd writes it; the process runtime writes it with
// LogWriter; OpenLog reads it back as plain text.

// Stream names a container output stream in a log entry.
type Stream string

// The two output streams.
const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

// logTimeFormat is the fixed-width RFC 3339 form containerd writes.
const logTimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// maxLogEntry is the longest content put in one entry; longer lines are
// split into partial entries, as containerd does (16 KiB).
const maxLogEntry = 16 << 10

// LogEntry is one parsed line of a CRI log file.
type LogEntry struct {
	Time   time.Time
	Stream Stream
	// Partial is true when the content continues in the next entry.
	Partial bool
	// Content is the text without the newline that ends a full line.
	Content []byte
}

// ParseLogEntry parses one line of a CRI log file, with or without its
// trailing newline.
func ParseLogEntry(line []byte) (LogEntry, error) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	fields := bytes.SplitN(line, []byte{' '}, 4)
	if len(fields) < 3 {
		return LogEntry{}, fmt.Errorf("runtime: log entry %q: want timestamp, stream, tag and content", line)
	}
	ts, err := time.Parse(time.RFC3339Nano, string(fields[0]))
	if err != nil {
		return LogEntry{}, fmt.Errorf("runtime: log entry timestamp: %w", err)
	}
	e := LogEntry{Time: ts, Stream: Stream(fields[1])}
	if e.Stream != Stdout && e.Stream != Stderr {
		return LogEntry{}, fmt.Errorf("runtime: log entry stream %q: want stdout or stderr", fields[1])
	}
	switch string(fields[2]) {
	case "F":
	case "P":
		e.Partial = true
	default:
		return LogEntry{}, fmt.Errorf("runtime: log entry tag %q: want F or P", fields[2])
	}
	if len(fields) == 4 {
		e.Content = fields[3]
	}
	return e, nil
}

// AppendLogEntry appends e in the CRI log format, ending with a newline.
func AppendLogEntry(dst []byte, e LogEntry) []byte {
	dst = e.Time.UTC().AppendFormat(dst, logTimeFormat)
	dst = append(dst, ' ')
	dst = append(dst, e.Stream...)
	if e.Partial {
		dst = append(dst, " P "...)
	} else {
		dst = append(dst, " F "...)
	}
	dst = append(dst, e.Content...)
	return append(dst, '\n')
}

// LogWriter turns a container's raw output on one stream into CRI log
// entries written to an underlying writer, one Write call per entry; writers
// for stdout and stderr may share a file opened with O_APPEND. A LogWriter is
// safe for concurrent use. Close writes a pending unterminated line.
type LogWriter struct {
	mu     sync.Mutex
	w      io.Writer
	stream Stream
	now    func() time.Time
	buf    []byte // output not yet ended by a newline
	entry  []byte // scratch space for one encoded entry
}

// NewLogWriter returns a LogWriter for stream that stamps entries with now
// (time.Now when nil).
func NewLogWriter(w io.Writer, stream Stream, now func() time.Time) *LogWriter {
	if now == nil {
		now = time.Now
	}
	return &LogWriter{w: w, stream: stream, now: now}
}

// Write records p; complete lines are written at once, a trailing partial
// line when it completes, grows past 16 KiB, or at Close.
func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		if err := l.emit(l.buf[:i], false); err != nil {
			return len(p), err
		}
		l.buf = l.buf[i+1:]
	}
	for len(l.buf) >= maxLogEntry {
		if err := l.emit(l.buf[:maxLogEntry], true); err != nil {
			return len(p), err
		}
		l.buf = l.buf[maxLogEntry:]
	}
	// Move the remainder to the front so buf does not grow without bound.
	l.buf = append(l.buf[:0:0], l.buf...)
	return len(p), nil
}

// Close writes a pending unterminated line as a full entry. It does not
// close the underlying writer.
func (l *LogWriter) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) == 0 {
		return nil
	}
	err := l.emit(l.buf, false)
	l.buf = nil
	return err
}

func (l *LogWriter) emit(content []byte, partial bool) error {
	for len(content) > maxLogEntry {
		if err := l.emit(content[:maxLogEntry], true); err != nil {
			return err
		}
		content = content[maxLogEntry:]
	}
	l.entry = AppendLogEntry(l.entry[:0], LogEntry{Time: l.now(), Stream: l.stream, Partial: partial, Content: content})
	if _, err := l.w.Write(l.entry); err != nil {
		return fmt.Errorf("runtime: write log entry: %w", err)
	}
	return nil
}

// logPollInterval is how often a followed log is checked for new output.
const logPollInterval = 100 * time.Millisecond

// OpenLog reads the CRI log file at path as plain text, as
// Runtime.ContainerLogs describes. exited reports whether the container has
// exited; a follower stops once it has and the file is drained. Entries that
// do not parse are passed through as they are.
func OpenLog(ctx context.Context, path string, opts LogOptions, exited func(context.Context) bool) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("runtime: open log %s: %w", path, ErrNotFound)
		}
		return nil, fmt.Errorf("runtime: open log: %w", err)
	}
	if opts.TailLines > 0 {
		off, err := tailOffset(f, opts.TailLines)
		if err == nil {
			_, err = f.Seek(off, io.SeekStart)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("runtime: seek log %s: %w", path, err)
		}
	}
	pr, pw := io.Pipe()
	r := &logReader{PipeReader: pr, done: make(chan struct{})}
	go func() {
		defer f.Close()
		pw.CloseWithError(copyLog(ctx, f, pw, opts, exited, r.done))
	}()
	return r, nil
}

type logReader struct {
	*io.PipeReader
	once sync.Once
	done chan struct{}
}

func (r *logReader) Close() error {
	r.once.Do(func() { close(r.done) })
	return r.PipeReader.Close()
}

// copyLog decodes entries from f into w until the end of the file (or, when
// following, until exited and drained, ctx is done or done is closed).
func copyLog(ctx context.Context, f io.Reader, w io.Writer, opts LogOptions, exited func(context.Context) bool, done <-chan struct{}) error {
	br := bufio.NewReaderSize(f, 64<<10)
	var (
		pending   []byte // an entry read only in part (the writer is mid-write)
		midLine   bool   // the last entry written was partial
		out       []byte
		lastCheck bool // exited was true before the last read: this drain is final
	)
	for {
		chunk, err := br.ReadBytes('\n')
		pending = append(pending, chunk...)
		if err == nil {
			out = out[:0]
			out, midLine = decodeLine(out, pending, opts, midLine)
			pending = pending[:0]
			if len(out) > 0 {
				if _, werr := w.Write(out); werr != nil {
					return nil // the reader went away
				}
			}
			continue
		}
		if err != io.EOF {
			return fmt.Errorf("runtime: read log: %w", err)
		}
		// At the end of what is written so far.
		if !opts.Follow || lastCheck {
			if len(pending) > 0 { // an unterminated last line
				out, _ = decodeLine(out[:0], pending, opts, midLine)
				if _, werr := w.Write(out); werr != nil {
					return nil
				}
			}
			return nil
		}
		if exited != nil && exited(ctx) {
			// Drain what was written before the exit, then stop.
			lastCheck = true
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return nil
		case <-time.After(logPollInterval):
		}
	}
}

// decodeLine appends the text of one raw log line to out according to opts
// and reports whether the line ended mid-line (a partial entry).
func decodeLine(out, line []byte, opts LogOptions, midLine bool) ([]byte, bool) {
	e, err := ParseLogEntry(line)
	if err != nil {
		return append(out, line...), false
	}
	if !opts.Since.IsZero() && e.Time.Before(opts.Since) {
		return out, e.Partial
	}
	if opts.Timestamps && !midLine {
		out = e.Time.UTC().AppendFormat(out, time.RFC3339Nano)
		out = append(out, ' ')
	}
	out = append(out, e.Content...)
	if !e.Partial {
		out = append(out, '\n')
	}
	return out, e.Partial
}

// tailOffset finds where the last n lines of f start, reading backwards.
func tailOffset(f *os.File, n int64) (int64, error) {
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	const block = 32 << 10
	buf := make([]byte, block)
	pos := end
	var newlines int64
	for pos > 0 {
		size := int64(block)
		if pos < size {
			size = pos
		}
		pos -= size
		if _, err := f.ReadAt(buf[:size], pos); err != nil {
			return 0, err
		}
		for i := size - 1; i >= 0; i-- {
			if buf[i] != '\n' {
				continue
			}
			if pos+i == end-1 {
				// The newline ending the file ends the last line; it does
				// not start one.
				continue
			}
			newlines++
			if newlines == n {
				return pos + i + 1, nil
			}
		}
	}
	return 0, nil
}
