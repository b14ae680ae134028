package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseLogEntry(t *testing.T) {
	ts := time.Date(2026, 1, 2, 15, 4, 5, 123456789, time.UTC)
	for _, tc := range []struct {
		line    string
		want    LogEntry
		wantErr bool
	}{
		{line: "2026-01-02T15:04:05.123456789Z stdout F hello world\n",
			want: LogEntry{Time: ts, Stream: Stdout, Content: []byte("hello world")}},
		{line: "2026-01-02T15:04:05.123456789Z stderr P part",
			want: LogEntry{Time: ts, Stream: Stderr, Partial: true, Content: []byte("part")}},
		{line: "2026-01-02T15:04:05.123456789Z stdout F ",
			want: LogEntry{Time: ts, Stream: Stdout, Content: []byte{}}},
		{line: "2026-01-02T15:04:05.123456789Z stdout F", // empty line, no separator
			want: LogEntry{Time: ts, Stream: Stdout}},
		{line: "2026-01-02T17:04:05.123456789+02:00 stdout F  two spaces ",
			want: LogEntry{Time: ts, Stream: Stdout, Content: []byte(" two spaces ")}},
		{line: "not a log line", wantErr: true},
		{line: "2026-01-02 stdout F x", wantErr: true},
		{line: "2026-01-02T15:04:05Z stdin F x", wantErr: true},
		{line: "2026-01-02T15:04:05Z stdout X x", wantErr: true},
	} {
		got, err := ParseLogEntry([]byte(tc.line))
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseLogEntry(%q) error = %v, want error %v", tc.line, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		if !got.Time.Equal(tc.want.Time) || got.Stream != tc.want.Stream || got.Partial != tc.want.Partial || !bytes.Equal(got.Content, tc.want.Content) {
			t.Errorf("ParseLogEntry(%q) = %+v, want %+v", tc.line, got, tc.want)
		}
	}
}

// fixedClock returns a clock that starts at base and advances 1s per call.
func fixedClock(base time.Time) func() time.Time {
	n := 0
	return func() time.Time {
		n++
		return base.Add(time.Duration(n-1) * time.Second)
	}
}

func TestLogWriter(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	var buf bytes.Buffer
	w := NewLogWriter(&buf, Stderr, fixedClock(base))
	for _, p := range []string{"one\ntw", "o\n", "", "three"} {
		if _, err := io.WriteString(w, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := "2026-01-02T03:04:05.000000006Z stderr F one\n" +
		"2026-01-02T03:04:06.000000006Z stderr F two\n" +
		"2026-01-02T03:04:07.000000006Z stderr F three\n"
	if buf.String() != want {
		t.Errorf("LogWriter wrote\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestLogWriterSplitsLongLines(t *testing.T) {
	var buf bytes.Buffer
	w := NewLogWriter(&buf, Stdout, nil)
	long := strings.Repeat("x", maxLogEntry*2+10)
	if _, err := io.WriteString(w, long+"\n"); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	var tags []bool
	var content []byte
	for sc.Scan() {
		e, err := ParseLogEntry(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		tags = append(tags, e.Partial)
		content = append(content, e.Content...)
	}
	if want := []bool{true, true, false}; len(tags) != 3 || tags[0] != want[0] || tags[1] != want[1] || tags[2] != want[2] {
		t.Errorf("partial flags = %v, want %v", tags, want)
	}
	if string(content) != long {
		t.Errorf("reassembled %d bytes, want %d", len(content), len(long))
	}
}

// writeLog writes a log file of the given lines (each a full stdout entry
// one second apart from base) and returns its path.
func writeLog(t *testing.T, base time.Time, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "0.log")
	var buf bytes.Buffer
	w := NewLogWriter(&buf, Stdout, fixedClock(base))
	for _, l := range lines {
		io.WriteString(w, l+"\n")
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readAll(t *testing.T, path string, opts LogOptions) string {
	t.Helper()
	r, err := OpenLog(context.Background(), path, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOpenLog(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	path := writeLog(t, base, "a", "b", "c", "d")
	for _, tc := range []struct {
		name string
		opts LogOptions
		want string
	}{
		{"all", LogOptions{}, "a\nb\nc\nd\n"},
		{"tail 2", LogOptions{TailLines: 2}, "c\nd\n"},
		{"tail 1", LogOptions{TailLines: 1}, "d\n"},
		{"tail more than there are", LogOptions{TailLines: 10}, "a\nb\nc\nd\n"},
		{"since", LogOptions{Since: base.Add(2 * time.Second)}, "c\nd\n"},
		{"timestamps", LogOptions{TailLines: 1, Timestamps: true}, "2026-01-02T03:04:08Z d\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := readAll(t, path, tc.opts); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOpenLogJoinsPartialEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	data := "2026-01-02T03:04:05Z stdout P hel\n" +
		"2026-01-02T03:04:05Z stdout F lo\n" +
		"garbage\n" +
		"2026-01-02T03:04:06Z stderr F err\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, path, LogOptions{Timestamps: true})
	want := "2026-01-02T03:04:05Z hello\ngarbage\n2026-01-02T03:04:06Z err\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestOpenLogMissing(t *testing.T) {
	_, err := OpenLog(context.Background(), filepath.Join(t.TempDir(), "nope.log"), LogOptions{}, nil)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("error = %v, want ErrNotFound", err)
	}
}

func TestOpenLogFollowUntilExit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewLogWriter(f, Stdout, nil)
	io.WriteString(w, "first\n")

	var exited atomic.Bool
	r, err := OpenLog(context.Background(), path, LogOptions{Follow: true}, func(context.Context) bool { return exited.Load() })
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	br := bufio.NewReader(r)
	if line, err := br.ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("first line = %q, %v", line, err)
	}
	// A line written in two halves, while the reader follows.
	io.WriteString(f, "2026-01-02T03:04:05Z stdout F sec")
	io.WriteString(f, "ond\n")
	if line, err := br.ReadString('\n'); err != nil || line != "second\n" {
		t.Fatalf("second line = %q, %v", line, err)
	}
	io.WriteString(w, "last\n")
	exited.Store(true)
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if string(rest) != "last\n" {
		t.Errorf("after exit read %q, want %q", rest, "last\n")
	}
}

func TestOpenLogFollowStopsOnCancelAndClose(t *testing.T) {
	path := writeLog(t, time.Now(), "x")
	never := func(context.Context) bool { return false }

	ctx, cancel := context.WithCancel(context.Background())
	r, err := OpenLog(ctx, path, LogOptions{Follow: true}, never)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.ReadAll(r); !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v, want context.Canceled", err)
	}
	r.Close()

	r, err = OpenLog(context.Background(), path, LogOptions{Follow: true}, never)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(buf); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("read after close: %v, want io.ErrClosedPipe", err)
	}
}
