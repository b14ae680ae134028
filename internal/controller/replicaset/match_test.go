package replicaset

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// TestMatcherAgreesWithSelector checks Matcher.Matches against
// labels.Selector.Matches for equality-only selectors (compiled) and
// others (delegated), over label sets that do and do not match.
func TestMatcherAgreesWithSelector(t *testing.T) {
	selectors := []*metav1.LabelSelector{
		nil, // matches nothing
		{},  // matches everything
		{MatchLabels: map[string]string{"app": "web"}},
		{MatchLabels: map[string]string{"app": "web", "pod-template-hash": "abc"}},
		{MatchLabels: map[string]string{"app": "web"}, MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"front"}}}},
		{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"front", "back"}}}},
		{MatchLabels: map[string]string{"app": "web"}, MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"back"}}}},
		{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists}}},
		{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpDoesNotExist}}},
	}
	sets := []map[string]string{
		nil,
		{"app": "web"},
		{"app": "db"},
		{"app": "web", "pod-template-hash": "abc"},
		{"app": "web", "pod-template-hash": "xyz"},
		{"app": "web", "tier": "front"},
		{"app": "web", "tier": "back"},
		{"tier": "front"},
		{"app": "", "tier": ""},
	}
	compiled := 0
	for _, ls := range selectors {
		sel, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil {
			t.Fatal(err)
		}
		m := NewMatcher(sel)
		if m.sel == nil {
			compiled++
		}
		for _, l := range sets {
			if got, want := m.Matches(l), sel.Matches(labels.Set(l)); got != want {
				t.Errorf("selector %q on %v: Matcher %v, Selector %v", sel, l, got, want)
			}
		}
	}
	if compiled != 4 { // {}, the two matchLabels, matchLabels + In one value
		t.Errorf("%d selectors compiled to equalities, want 4", compiled)
	}
}

func TestMatcherRequires(t *testing.T) {
	sel := func(ls *metav1.LabelSelector) Matcher {
		s, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil {
			t.Fatal(err)
		}
		return NewMatcher(s)
	}
	hashed := sel(&metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "pod-template-hash": "abc"}})
	exists := sel(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists}}})
	for _, tc := range []struct {
		m        Matcher
		template map[string]string
		want     bool
	}{
		{hashed, map[string]string{"app": "web", "pod-template-hash": "abc"}, true},
		{hashed, map[string]string{"app": "web"}, true},
		{hashed, nil, true},
		{hashed, map[string]string{"app": "web", "extra": "x"}, false},
		{hashed, map[string]string{"app": "db"}, false},
		{exists, map[string]string{"app": "web"}, false},
	} {
		t.Run(fmt.Sprint(tc.template), func(t *testing.T) {
			if got := tc.m.Requires(tc.template); got != tc.want {
				t.Errorf("Requires(%v) = %v, want %v", tc.template, got, tc.want)
			}
		})
	}
}

// TestComputeStatusFullyLabeled checks that fullyLabeledReplicas counts
// the pods carrying all the template's labels, whether or not the sync's
// selector lets computeStatus skip looking.
func TestComputeStatusFullyLabeled(t *testing.T) {
	rs := bigRS("web", 3)
	rs.Spec.Template.Labels = map[string]string{"app": "web", "tier": "front"}
	full := podOf(rs, "full", "1")
	full.Labels = map[string]string{"app": "web", "tier": "front"}
	partial := podOf(rs, "partial", "1")
	for _, tc := range []struct {
		selector *metav1.LabelSelector
		want     int32
	}{
		{&metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, 1},                  // template has more: look
		{&metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "tier": "front"}}, 2}, // selected pods carry them all
	} {
		sel, err := metav1.LabelSelectorAsSelector(tc.selector)
		if err != nil {
			t.Fatal(err)
		}
		m := NewMatcher(sel)
		pods := []*corev1.Pod{full}
		if m.Matches(partial.Labels) {
			pods = append(pods, partial)
		} else {
			partial2 := partial.DeepCopy()
			partial2.Labels = map[string]string{"app": "web", "tier": "front"}
			pods = append(pods, partial2)
		}
		st, _ := computeStatus(rs, pods, nil, nil, metav1.Now(), &m)
		if st.FullyLabeledReplicas != tc.want {
			t.Errorf("selector %v: fullyLabeledReplicas %d, want %d", tc.selector, st.FullyLabeledReplicas, tc.want)
		}
		if plain, _ := ComputeStatus(rs, pods, nil, nil, metav1.Now()); plain.FullyLabeledReplicas != st.FullyLabeledReplicas {
			t.Errorf("selector %v: ComputeStatus says %d, computeStatus %d", tc.selector, plain.FullyLabeledReplicas, st.FullyLabeledReplicas)
		}
	}
}
