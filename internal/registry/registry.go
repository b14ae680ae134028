// Package registry describes every resource Drover serves: its names and
// scope, and its strategy (defaults, validation, table columns, selectable
// fields, subresources). It is pure: no I/O, no HTTP. The API server is
// generic over these descriptions.
//
// The server runs a resource's hooks in this order:
//
//	create:        Default, PrepareForCreate, Validate
//	update:        Default, PrepareForUpdate, ValidateUpdate
//	status update: Default, ValidateStatus
//
// A status update defaults the client's object before its status is taken
// into the stored object, whose spec and metadata it keeps as stored, as
// upstream's status strategies do.
//
// Default also folds what upstream folds during version conversion
// (Secret stringData into data, podIP into podIPs, clusterIP into
// clusterIPs), since Drover has no internal version. Field errors use
// upstream's paths and messages. Cluster IP and node port allocation, the
// ServiceAccount admission default and subresources other than status and
// scale (pods/binding, pods/eviction, namespaces/finalize) belong to the
// server.
package registry

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Resource is one REST resource (e.g. apps/v1 deployments) and its strategy.
// Function fields may be nil, meaning "nothing to do".
type Resource struct {
	// GroupVersion and Kind as upstream names them; ListKind is Kind+"List".
	GroupVersion schema.GroupVersion
	Kind         string
	// Plural is the path segment (deployments); Singular is lower-case kind.
	Plural     string
	Singular   string
	ShortNames []string
	Categories []string // e.g. "all" for kubectl get all
	Namespaced bool
	// ValidateName, if set, replaces the server's DNS-subdomain check of
	// metadata.name (RBAC names are path segments: "system:discovery").
	ValidateName func(name string, prefix bool) []string

	// New returns an empty typed object (e.g. &appsv1.Deployment{}); NewList its list.
	New     func() runtime.Object
	NewList func() runtime.Object

	// StatusSubresource: the object has .status served at /status; the main
	// resource ignores status changes and /status ignores everything else.
	StatusSubresource bool
	// Scale, if set, serves autoscaling/v1 Scale at /scale.
	Scale *ScaleAccess
	// Verbs restricts the verbs served; nil means all of get, list, watch,
	// create, update, patch, delete, deletecollection.
	Verbs []string

	// StorageOf, if set, names the resource whose stored form this one shares
	// (autoscaling/v1 HPAs are stored as autoscaling/v2); ToStorage and
	// FromStorage convert between the two.
	StorageOf   *Resource
	ToStorage   func(obj runtime.Object) (runtime.Object, error)
	FromStorage func(stored runtime.Object) (runtime.Object, error)

	// Default fills unset fields as upstream's defaulting does, in place.
	Default func(obj runtime.Object)
	// PrepareForCreate resets what a client may not set on create (e.g.
	// status), after Default and before Validate.
	PrepareForCreate func(obj runtime.Object)
	// PrepareForUpdate, if set, runs on an update of the main resource after
	// Default and before ValidateUpdate; old is the stored object. It bumps
	// metadata.generation when the spec changed (apps, autoscaling, policy).
	// The server itself keeps old's status when StatusSubresource is set.
	PrepareForUpdate func(obj, old runtime.Object)
	// Validate checks a new object; every bad field is listed.
	Validate func(obj runtime.Object) field.ErrorList
	// ValidateUpdate checks an update (immutable fields and the new object).
	ValidateUpdate func(obj, old runtime.Object) field.ErrorList
	// ValidateStatus checks a /status update; nil means Validate-free.
	ValidateStatus func(obj, old runtime.Object) field.ErrorList

	// TableColumns and TableRow give kubectl get's columns after Name: the
	// server prepends the Name column and cell itself, unless OwnNameColumn
	// is set. TableRow returns one cell per column of TableColumns, wide
	// (Priority 1) columns included.
	TableColumns []metav1.TableColumnDefinition
	TableRow     func(obj runtime.Object) []interface{}
	// OwnNameColumn means TableColumns and TableRow lay out every column,
	// the name included, and the server must not prepend Name: kubectl's
	// events table starts with LAST SEEN and shows the name only in -o wide.
	OwnNameColumn bool

	// Expires means objects are stored to expire the server's event TTL
	// after each write (apiserver.Config.EventTTL, upstream's --event-ttl),
	// as upstream stores events.
	Expires bool

	// SelectableFields returns the fields a field selector may use.
	// metadata.name and metadata.namespace are always included by the
	// server, and are not among them.
	SelectableFields func(obj runtime.Object) fields.Set
	// FieldValue, if set, answers for one field of obj as
	// SelectableFields(obj) would, without building the set: the field's
	// value, and whether it is one of them. The server matches field
	// selectors with it, on every object of a list and on every watch event
	// for every watcher.
	FieldValue func(obj runtime.Object, field string) (string, bool)
}

// ScaleAccess reads and writes replicas for the /scale subresource.
type ScaleAccess struct {
	// Get returns spec replicas, status replicas and the label selector as a string.
	Get func(obj runtime.Object) (specReplicas, statusReplicas int32, selector string)
	// Set writes spec replicas.
	Set func(obj runtime.Object, replicas int32)
}

// GroupVersionKind returns the resource's GVK.
func (r *Resource) GroupVersionKind() schema.GroupVersionKind {
	return r.GroupVersion.WithKind(r.Kind)
}

// GroupVersionResource returns the resource's GVR.
func (r *Resource) GroupVersionResource() schema.GroupVersionResource {
	return r.GroupVersion.WithResource(r.Plural)
}

// Storage returns the resource whose stored form this one uses (itself by default).
func (r *Resource) Storage() *Resource {
	if r.StorageOf != nil {
		return r.StorageOf
	}
	return r
}
