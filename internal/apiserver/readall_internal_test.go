package apiserver

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

// TestReadAll: whatever the declared length says, readAll returns the body
// as io.ReadAll would, up to max bytes.
func TestReadAll(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 300) // 3,000 bytes
	for _, tc := range []struct {
		name          string
		declared, max int64
		want          int
	}{
		{"declared exactly", 3000, 10000, 3000},
		{"undeclared", -1, 10000, 3000},
		{"declared short", 1000, 10000, 3000},
		{"declared long", 5000, 10000, 3000},
		{"beyond max, declared", 3000, 2001, 2001},
		{"beyond max, declared short", 1000, 2001, 2001},
		{"beyond max, undeclared", 0, 2001, 2001},
	} {
		for _, r := range []struct {
			name string
			r    func() io.Reader
		}{
			{"whole", func() io.Reader { return bytes.NewReader(body) }},
			{"one byte at a time", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(body)) }},
			{"data with EOF", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(body)) }},
		} {
			got, err := readAll(r.r(), tc.declared, tc.max)
			if err != nil || !bytes.Equal(got, body[:tc.want]) {
				t.Errorf("%s, %s: %d bytes, %v; want the first %d", tc.name, r.name, len(got), err, tc.want)
			}
		}
	}
	if _, err := readAll(iotest.ErrReader(io.ErrUnexpectedEOF), 100, 1000); err != io.ErrUnexpectedEOF {
		t.Errorf("a failing body: %v, want its error", err)
	}
}
