package bench

import (
	"bufio"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Histogram is one label set's cumulative buckets: upper bound → count.
type Histogram map[float64]float64

// parseHistograms reads the Prometheus text format and returns the buckets
// of the histogram name, summed over the label sets that share the value of
// the label by (e.g. "verb").
func parseHistograms(r io.Reader, name, by string) (map[string]Histogram, error) {
	out := map[string]Histogram{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	prefix := name + "_bucket{"
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		labels := parseLabels(line[len(prefix):end])
		v, err := strconv.ParseFloat(strings.TrimSpace(strings.Fields(line[end+1:])[0]), 64)
		if err != nil {
			continue
		}
		le, err := strconv.ParseFloat(labels["le"], 64)
		if err != nil {
			continue
		}
		key := labels[by]
		if out[key] == nil {
			out[key] = Histogram{}
		}
		out[key][le] += v
	}
	return out, sc.Err()
}

// parseLabels parses `a="x",b="y"` (no escaped quotes in our labels).
func parseLabels(s string) map[string]string {
	m := map[string]string{}
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			break
		}
		k := s[:eq]
		rest := s[eq+2:]
		q := strings.IndexByte(rest, '"')
		if q < 0 {
			break
		}
		m[k] = rest[:q]
		s = strings.TrimPrefix(rest[q+1:], ",")
	}
	return m
}

// diff returns after − before, bucket by bucket.
func diff(after, before map[string]Histogram) map[string]Histogram {
	out := map[string]Histogram{}
	for k, h := range after {
		d := Histogram{}
		for le, v := range h {
			d[le] = v - before[k][le]
		}
		out[k] = d
	}
	return out
}

// Count is the number of observations (the +Inf bucket).
func (h Histogram) Count() float64 { return h[math.Inf(1)] }

// Quantile estimates the q-quantile as Prometheus' histogram_quantile
// does: linear interpolation inside the bucket that holds it. It returns
// NaN for an empty histogram, and the highest finite bound when the
// quantile falls in the +Inf bucket.
func (h Histogram) Quantile(q float64) float64 {
	bounds := make([]float64, 0, len(h))
	for le := range h {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	if len(bounds) == 0 || h.Count() == 0 {
		return math.NaN()
	}
	rank := q * h.Count()
	prevBound, prevCount := 0.0, 0.0
	for _, le := range bounds {
		c := h[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				return prevBound
			}
			if c == prevCount {
				return le
			}
			return prevBound + (le-prevBound)*(rank-prevCount)/(c-prevCount)
		}
		prevBound, prevCount = le, c
	}
	return prevBound
}

// parseRequestCounts reads apiserver_request_total from the Prometheus
// text format, keyed "VERB resource[/subresource] code".
func parseRequestCounts(r io.Reader) (map[string]float64, error) {
	return parseCounters(r, "apiserver_request_total", func(l map[string]string) string {
		res := l["resource"]
		if l["subresource"] != "" {
			res += "/" + l["subresource"]
		}
		return l["verb"] + " " + res + " " + l["code"]
	})
}

// parseRejections reads apiserver_flowcontrol_rejected_requests_total,
// keyed "priority-level reason".
func parseRejections(r io.Reader) (map[string]float64, error) {
	return parseCounters(r, "apiserver_flowcontrol_rejected_requests_total", func(l map[string]string) string {
		return l["priority_level"] + " " + l["reason"]
	})
}

// parseCounters reads the series of the counter name from the Prometheus
// text format, summed by the key each one's labels give.
func parseCounters(r io.Reader, name string, key func(labels map[string]string) string) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	prefix := name + "{"
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		f := strings.Fields(line[end+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[key(parseLabels(line[len(prefix):end]))] += v
	}
	return out, sc.Err()
}
