package replicaset

import (
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// Matcher matches labels against a selector as labels.Selector.Matches
// does, faster when the selector is made of equalities only (matchLabels,
// and matchExpressions "In" one value, as every ReplicaSet of a
// Deployment): it then looks each required label up once, where the
// generic selector looks it up twice and goes through interfaces. A sync
// matches every pod of its ReplicaSet, 10,000 of them for a big one.
type Matcher struct {
	pairs []labelPair     // the labels required, if sel is nil
	sel   labels.Selector // the selector, if it is not equalities only
}

type labelPair struct{ key, value string }

// NewMatcher compiles sel.
func NewMatcher(sel labels.Selector) Matcher {
	reqs, selectable := sel.Requirements()
	if !selectable {
		return Matcher{sel: sel} // labels.Nothing()
	}
	pairs := make([]labelPair, 0, len(reqs))
	for _, r := range reqs {
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			if vals := r.Values(); vals.Len() == 1 {
				pairs = append(pairs, labelPair{r.Key(), vals.UnsortedList()[0]})
				continue
			}
		}
		return Matcher{sel: sel}
	}
	return Matcher{pairs: pairs}
}

// Matches reports whether the selector matches l.
func (m Matcher) Matches(l map[string]string) bool {
	if m.sel != nil {
		return m.sel.Matches(labels.Set(l))
	}
	for _, p := range m.pairs {
		if v, ok := l[p.key]; !ok || v != p.value {
			return false
		}
	}
	return true
}

// Requires reports whether every label set the selector matches carries
// all of want, so that matching the selector implies matching want.
// It answers false when it cannot tell (a selector not of equalities).
func (m Matcher) Requires(want map[string]string) bool {
	if m.sel != nil {
		return false
	}
	for k, v := range want {
		found := false
		for _, p := range m.pairs {
			if p.key == k {
				found = p.value == v
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
