package registry

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var supportedEventTypes = []string{corev1.EventTypeNormal, corev1.EventTypeWarning}

// Events is core/v1 events. Its table leads with LAST SEEN and shows the
// name only in -o wide, so it lays out its own Name column.
func Events() *Resource {
	return &Resource{
		GroupVersion:   corev1.SchemeGroupVersion,
		Kind:           "Event",
		Plural:         "events",
		Singular:       "event",
		ShortNames:     []string{"ev"},
		Namespaced:     true,
		New:            func() runtime.Object { return &corev1.Event{} },
		NewList:        func() runtime.Object { return &corev1.EventList{} },
		Validate:       func(obj runtime.Object) field.ErrorList { return validateEvent(obj.(*corev1.Event)) },
		ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList { return validateEvent(obj.(*corev1.Event)) },
		OwnNameColumn:  true,
		Expires:        true,
		TableColumns: []metav1.TableColumnDefinition{
			col("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
			col("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
			col("Reason", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
			col("Object", "The object that this event is about."),
			wide(col("Subobject", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].")),
			wide(col("Source", "The component reporting this event. Should be a short machine understandable string.")),
			col("Message", "A human-readable description of the status of this operation."),
			wide(col("First Seen", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)")),
			wide(col("Count", "The number of times this event has occurred.")),
			wide(metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: "Name must be unique within a namespace."}),
		},
		TableRow: func(obj runtime.Object) []interface{} { return eventRow(obj.(*corev1.Event)) },
		SelectableFields: func(obj runtime.Object) fields.Set {
			e := obj.(*corev1.Event)
			source := e.Source.Component
			if source == "" {
				source = e.ReportingController
			}
			return fields.Set{
				"involvedObject.kind":            e.InvolvedObject.Kind,
				"involvedObject.namespace":       e.InvolvedObject.Namespace,
				"involvedObject.name":            e.InvolvedObject.Name,
				"involvedObject.uid":             string(e.InvolvedObject.UID),
				"involvedObject.apiVersion":      e.InvolvedObject.APIVersion,
				"involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
				"involvedObject.fieldPath":       e.InvolvedObject.FieldPath,
				"reason":                         e.Reason,
				"reportingComponent":             e.ReportingController,
				"source":                         source,
				"type":                           e.Type,
			}
		},
	}
}

// validateEvent requires the involved object and checks the type.
func validateEvent(e *corev1.Event) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("involvedObject")
	if e.InvolvedObject.Kind == "" {
		errs = append(errs, field.Required(p.Child("kind"), ""))
	}
	if e.InvolvedObject.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	}
	// A cluster-scoped object's events live in "default" (or nowhere);
	// a namespaced object's in its namespace.
	ns := e.InvolvedObject.Namespace
	if (ns == "" && e.Namespace != "" && e.Namespace != metav1.NamespaceDefault) || (ns != "" && ns != e.Namespace) {
		errs = append(errs, field.Invalid(p.Child("namespace"), ns, "does not match event.namespace"))
	}
	if e.Type != "" && !contains(supportedEventTypes, e.Type) {
		errs = append(errs, field.NotSupported(field.NewPath("type"), e.Type, supportedEventTypes))
	}
	errs = append(errs, nonNegative(int64(e.Count), field.NewPath("count"))...)
	return errs
}

// eventRow renders LAST SEEN TYPE REASON OBJECT | SUBOBJECT SOURCE |
// MESSAGE | FIRST SEEN COUNT NAME.
func eventRow(e *corev1.Event) []interface{} {
	first := age(e.FirstTimestamp)
	if e.FirstTimestamp.IsZero() {
		first = microAge(e.EventTime)
	}
	last := age(e.LastTimestamp)
	if e.LastTimestamp.IsZero() {
		last = first
	}
	count := e.Count
	if e.Series != nil {
		last = microAge(e.Series.LastObservedTime)
		count = e.Series.Count
	} else if count == 0 {
		count = 1
	}
	target := strings.ToLower(e.InvolvedObject.Kind)
	if e.InvolvedObject.Name != "" {
		target = fmt.Sprintf("%s/%s", target, e.InvolvedObject.Name)
	}
	component, instance := e.Source.Component, e.Source.Host
	if component == "" {
		component = e.ReportingController
	}
	if instance == "" {
		instance = e.ReportingInstance
	}
	source := component
	if instance != "" {
		source = component + ", " + instance
	}
	return []interface{}{
		last, e.Type, e.Reason, target, e.InvolvedObject.FieldPath, source,
		strings.TrimSpace(e.Message), first, int64(count), e.Name,
	}
}
