package hpa

import (
	"math"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

// History is what the controller remembers of one HPA between syncs (in
// memory, as upstream): recent unstabilized recommendations, for the
// stabilization windows, and recent scale changes, for the rate policies.
type History struct {
	Recommendations []Recommendation
	ScaleUps        []ScaleEvent
	ScaleDowns      []ScaleEvent
}

// Recommendation is a replica count recommended at a time.
type Recommendation struct {
	Replicas int32
	At       time.Time
}

// ScaleEvent is a change of replicas (always positive) at a time.
type ScaleEvent struct {
	Change   int32
	At       time.Time
	outdated bool
}

// recordInitial seeds the recommendations with the current size.
func (h *History) recordInitial(current int32, now time.Time) {
	if h.Recommendations == nil {
		h.Recommendations = []Recommendation{{current, now}}
	}
}

// RecordScale remembers a successful rescale from prev to next replicas,
// reusing a slot of an event older than the direction's longest policy
// period. Nothing is kept without a behavior (the events are only used
// by behavior policies).
func (h *History) RecordScale(b *autoscalingv2.HorizontalPodAutoscalerBehavior, prev, next int32, now time.Time) {
	if b == nil || prev == next {
		return
	}
	events, rules, change := &h.ScaleUps, b.ScaleUp, next-prev
	if next < prev {
		events, rules, change = &h.ScaleDowns, b.ScaleDown, prev-next
	}
	cutoff := now.Add(-time.Duration(longestPolicyPeriod(rules)) * time.Second)
	slot := -1
	for i := range *events {
		if (*events)[i].At.Before(cutoff) {
			(*events)[i].outdated = true
		}
		if (*events)[i].outdated {
			slot = i
		}
	}
	ev := ScaleEvent{Change: change, At: now}
	if slot >= 0 {
		(*events)[slot] = ev
	} else {
		*events = append(*events, ev)
	}
}

func longestPolicyPeriod(r *autoscalingv2.HPAScalingRules) int32 {
	var longest int32
	if r == nil {
		return 0
	}
	for _, p := range r.Policies {
		longest = max(longest, p.PeriodSeconds)
	}
	return longest
}

// changeInPeriod sums the changes of events within period before now.
func changeInPeriod(periodSeconds int32, events []ScaleEvent, now time.Time) int32 {
	cutoff := now.Add(-time.Duration(periodSeconds) * time.Second)
	var sum int32
	for _, e := range events {
		if e.At.After(cutoff) {
			sum += e.Change
		}
	}
	return sum
}

// limit is a normalized replica count and the ScalingLimited reason and
// message that explain it.
type limit struct {
	replicas        int32
	reason, message string
}

// stabilizeLegacy is upstream's normalization without a behavior: the
// highest recommendation within the downscale window, recording desired.
func (h *History) stabilizeLegacy(desired int32, window time.Duration, now time.Time) int32 {
	highest := desired
	cutoff := now.Add(-window)
	old := -1
	for i, r := range h.Recommendations {
		if r.At.Before(cutoff) {
			old = i
		} else if r.Replicas > highest {
			highest = r.Replicas
		}
	}
	h.store(old, Recommendation{desired, now})
	return highest
}

func (h *History) store(slot int, r Recommendation) {
	if slot >= 0 {
		h.Recommendations[slot] = r
	} else {
		h.Recommendations = append(h.Recommendations, r)
	}
}

// legacyRules bounds desired by min and max replicas and by upstream's
// fixed scale-up limit (twice the current size, at least 4).
func legacyRules(current, desired, minReplicas, maxReplicas int32) limit {
	upLimit := int32(math.Max(2*float64(current), 4))
	maxAllowed, reason, msg := maxReplicas, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
	if maxReplicas > upLimit {
		maxAllowed, reason, msg = upLimit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
	}
	switch {
	case desired < minReplicas:
		return limit{minReplicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count"}
	case desired > maxAllowed:
		return limit{maxAllowed, reason, msg}
	}
	return limit{desired, "DesiredWithinRange", "the desired count is within the acceptable range"}
}

// stabilizeWithBehavior keeps the recommendation between the lowest
// recommendation of the scale-up window and the highest of the scale-down
// window (so it moves only when every recent one agrees), recording
// desired. It returns the AbleToScale reason and message for a
// stabilized result.
func (h *History) stabilizeWithBehavior(current, desired int32, up, down *autoscalingv2.HPAScalingRules, now time.Time) (int32, string, string) {
	upCutoff := now.Add(-time.Duration(windowSeconds(up)) * time.Second)
	downCutoff := now.Add(-time.Duration(windowSeconds(down)) * time.Second)
	upRec, downRec := desired, desired
	old := -1
	for i, r := range h.Recommendations {
		if r.At.After(upCutoff) {
			upRec = min(upRec, r.Replicas)
		}
		if r.At.After(downCutoff) {
			downRec = max(downRec, r.Replicas)
		}
		if r.At.Before(upCutoff) && r.At.Before(downCutoff) {
			old = i
		}
	}
	rec := current
	if rec < upRec {
		rec = upRec
	}
	if rec > downRec {
		rec = downRec
	}
	h.store(old, Recommendation{desired, now})
	if desired >= current {
		return rec, "ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation"
	}
	return rec, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation"
}

func windowSeconds(r *autoscalingv2.HPAScalingRules) int32 {
	if r == nil || r.StabilizationWindowSeconds == nil {
		return 0
	}
	return *r.StabilizationWindowSeconds
}

// behaviorRules bounds desired by min and max replicas and by the
// behavior's rate policies over the recent scale events.
func (h *History) behaviorRules(current, desired, minReplicas, maxReplicas int32, up, down *autoscalingv2.HPAScalingRules, now time.Time) limit {
	switch {
	case desired > current:
		upLimit := max(scaleUpLimit(current, h.ScaleUps, h.ScaleDowns, up, now), current)
		maxAllowed, reason, msg := maxReplicas, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
		if maxAllowed > upLimit {
			maxAllowed, reason, msg = upLimit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
		}
		if desired > maxAllowed {
			return limit{maxAllowed, reason, msg}
		}
	case desired < current:
		downLimit := min(scaleDownLimit(current, h.ScaleUps, h.ScaleDowns, down, now), current)
		minAllowed, reason, msg := minReplicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
		if minAllowed < downLimit {
			minAllowed, reason, msg = downLimit, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate"
		}
		if desired < minAllowed {
			return limit{minAllowed, reason, msg}
		}
	}
	return limit{desired, "DesiredWithinRange", "the desired count is within the acceptable range"}
}

// scaleUpLimit is the most replicas the scale-up policies allow now: per
// policy, the size at the start of its period plus its allowance, the
// largest (selectPolicy Max, the default) or smallest (Min) of them;
// Disabled allows none.
func scaleUpLimit(current int32, ups, downs []ScaleEvent, r *autoscalingv2.HPAScalingRules, now time.Time) int32 {
	if r == nil {
		return math.MaxInt32
	}
	sel := selectPolicy(r)
	if sel == autoscalingv2.DisabledPolicySelect {
		return current
	}
	result := int32(math.MinInt32)
	pick := func(a, b int32) int32 { return max(a, b) }
	if sel == autoscalingv2.MinChangePolicySelect {
		result, pick = math.MaxInt32, func(a, b int32) int32 { return min(a, b) }
	}
	for _, p := range r.Policies {
		start := current - changeInPeriod(p.PeriodSeconds, ups, now) + changeInPeriod(p.PeriodSeconds, downs, now)
		var proposed int32
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			proposed = start + p.Value
		case autoscalingv2.PercentScalingPolicy:
			// Rounded up so that a small target can always grow.
			proposed = int32(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		}
		result = pick(result, proposed)
	}
	return result
}

// scaleDownLimit is the fewest replicas the scale-down policies allow
// now: per policy, the size at the start of its period less its
// allowance, the smallest (Max change, the default) or largest (Min).
func scaleDownLimit(current int32, ups, downs []ScaleEvent, r *autoscalingv2.HPAScalingRules, now time.Time) int32 {
	if r == nil {
		return math.MinInt32
	}
	sel := selectPolicy(r)
	if sel == autoscalingv2.DisabledPolicySelect {
		return current
	}
	result := int32(math.MaxInt32)
	pick := func(a, b int32) int32 { return min(a, b) }
	if sel == autoscalingv2.MinChangePolicySelect {
		result, pick = math.MinInt32, func(a, b int32) int32 { return max(a, b) }
	}
	for _, p := range r.Policies {
		start := current - changeInPeriod(p.PeriodSeconds, ups, now) + changeInPeriod(p.PeriodSeconds, downs, now)
		var proposed int32
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			proposed = start - p.Value
		case autoscalingv2.PercentScalingPolicy:
			proposed = int32(float64(start) * (1 - float64(p.Value)/100))
		}
		result = pick(result, proposed)
	}
	return result
}

func selectPolicy(r *autoscalingv2.HPAScalingRules) autoscalingv2.ScalingPolicySelect {
	if r.SelectPolicy == nil {
		return autoscalingv2.MaxChangePolicySelect
	}
	return *r.SelectPolicy
}
