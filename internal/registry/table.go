package registry

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
)

// Now is the clock table cells measure ages against. Tests replace it to
// get deterministic AGE cells.
var Now = time.Now

// Column descriptions shared by many tables.
const (
	ageDescription = "CreationTimestamp is a timestamp representing the server time when this object was created."
)

// ageColumn is the AGE column every table has.
var ageColumn = metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: ageDescription}

// col returns a string column definition.
func col(name, description string) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: "string", Description: description}
}

// intCol returns an integer column definition.
func intCol(name, description string) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: "integer", Description: description}
}

// wide marks a column as shown only by kubectl get -o wide.
func wide(c metav1.TableColumnDefinition) metav1.TableColumnDefinition {
	c.Priority = 1
	return c
}

// age renders a timestamp the way kubectl's AGE column does: the time
// since ts in short human form, or "<unknown>" for a zero timestamp.
func age(ts metav1.Time) string {
	if ts.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(Now().Sub(ts.Time))
}

// microAge is age for a MicroTime.
func microAge(ts metav1.MicroTime) string {
	if ts.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(Now().Sub(ts.Time))
}

// listWithMore joins up to max items and says how many were left out, as
// kubectl's printers do ("a,b,c + 2 more...").
func listWithMore(list []string, max int, empty string) string {
	if len(list) == 0 {
		return empty
	}
	if len(list) > max {
		return fmt.Sprintf("%s + %d more...", strings.Join(list[:max], ","), len(list)-max)
	}
	return strings.Join(list, ",")
}

// containerCells returns the CONTAINERS and IMAGES cells of a workload.
func containerCells(containers []corev1.Container) (names, images string) {
	n := make([]string, 0, len(containers))
	im := make([]string, 0, len(containers))
	for _, c := range containers {
		n = append(n, c.Name)
		im = append(im, c.Image)
	}
	return strings.Join(n, ","), strings.Join(im, ",")
}

// selectorCell renders a label selector for the SELECTOR column.
func selectorCell(sel *metav1.LabelSelector) string {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return "<invalid>"
	}
	return s.String()
}
