package openapi

import (
	"reflect"
	"slices"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/drover/drover/internal/registry"
)

// PatchContentTypes are the patch media types the documents advertise on
// every PATCH operation. Strategic merge patch is deliberately absent: when
// kubectl apply does not find it, it computes the strategic patch from its
// compiled-in Go types instead of from (partial) OpenAPI schemas, and still
// sends it as a strategic merge patch, which the server accepts.
var PatchContentTypes = []string{
	"application/json-patch+json",
	"application/merge-patch+json",
}

// allVerbs is what a resource with nil Verbs serves.
var allVerbs = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}

// responseTypes are the media types responses are offered in.
var responseTypes = []string{"application/json", "application/yaml"}

// gvPath is the path of a group version below /openapi/v3 ("api/v1",
// "apis/apps/v1"), also its key in the root document.
func gvPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "api/" + gv.Version
	}
	return "apis/" + gv.Group + "/" + gv.Version
}

// buildDocuments returns one OpenAPI v3 document per group version, keyed
// by gvPath.
func buildDocuments(resources []*registry.Resource) map[string]*spec3.OpenAPI {
	byGV := map[schema.GroupVersion][]*registry.Resource{}
	for _, r := range resources {
		byGV[r.GroupVersion] = append(byGV[r.GroupVersion], r)
	}
	docs := make(map[string]*spec3.OpenAPI, len(byGV))
	for gv, rs := range byGV {
		docs[gvPath(gv)] = buildDocument(gv, rs)
	}
	return docs
}

// buildDocument is the document of one group version.
func buildDocument(gv schema.GroupVersion, resources []*registry.Resource) *spec3.OpenAPI {
	b := &docBuilder{
		gv:      gv,
		schemas: newSchemaSet(),
		paths:   map[string]*spec3.Path{},
	}
	// Shared meta types every document refers to.
	b.status = b.schemas.ref(reflect.TypeFor[metav1.Status]())
	b.deleteOptions = b.schemas.ref(reflect.TypeFor[metav1.DeleteOptions]())
	b.patch = b.schemas.ref(reflect.TypeFor[metav1.Patch]())
	resourceList := b.schemas.ref(reflect.TypeFor[metav1.APIResourceList]())

	prefix := "/" + gvPath(gv)
	b.paths[prefix+"/"] = &spec3.Path{PathProps: spec3.PathProps{Get: &spec3.Operation{
		OperationProps: spec3.OperationProps{
			Description: "get available resources",
			OperationId: "get" + b.idPrefix() + "APIResources",
			Tags:        []string{b.tag()},
			Responses:   responses(map[int]string{200: resourceList}),
		},
	}}}
	for _, r := range resources {
		b.addResource(r)
	}
	return &spec3.OpenAPI{
		Version: "3.0.0",
		Info:    &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes", Version: "v1.37.2"}},
		Paths:   &spec3.Paths{Paths: b.paths},
		Components: &spec3.Components{
			Schemas: b.schemas.schemas,
			SecuritySchemes: spec3.SecuritySchemes{"BearerToken": &spec3.SecurityScheme{
				SecuritySchemeProps: spec3.SecuritySchemeProps{
					Type: "apiKey", Name: "authorization", In: "header",
					Description: "Bearer Token authentication",
				},
			}},
		},
		SecurityRequirement: []map[string][]string{{"BearerToken": {}}},
	}
}

type docBuilder struct {
	gv      schema.GroupVersion
	schemas *schemaSet
	paths   map[string]*spec3.Path
	// component names of shared meta types
	status, deleteOptions, patch string
}

// tag is upstream's operation tag ("core_v1", "apps_v1").
func (b *docBuilder) tag() string {
	g := b.gv.Group
	if g == "" {
		g = "core"
	}
	return strings.ReplaceAll(strings.Split(g, ".")[0], "-", "_") + "_" + b.gv.Version
}

// idPrefix is the group-version part of operation ids ("CoreV1", "AppsV1").
func (b *docBuilder) idPrefix() string {
	g := b.gv.Group
	if g == "" {
		g = "core"
	}
	var sb strings.Builder
	for _, part := range strings.FieldsFunc(strings.Split(g, ".")[0]+"-"+b.gv.Version, func(r rune) bool { return r == '-' }) {
		sb.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return sb.String()
}

func (b *docBuilder) addResource(r *registry.Resource) {
	gvk := r.GroupVersionKind()
	kindSchema := b.objectSchema(r.New, gvk)
	listSchema := b.objectSchema(r.NewList, gvk.GroupVersion().WithKind(gvk.Kind+"List"))

	verbs := map[string]bool{}
	vs := r.Verbs
	if vs == nil {
		vs = allVerbs
	}
	for _, v := range vs {
		verbs[v] = true
	}

	prefix := "/" + gvPath(b.gv)
	collection := prefix + "/" + r.Plural
	scope := ""
	pathParams := []*spec3.Parameter{}
	if r.Namespaced {
		collection = prefix + "/namespaces/{namespace}/" + r.Plural
		scope = "Namespaced"
		pathParams = append(pathParams, pathParam("namespace", "object name and auth scope, such as for teams and projects"))
	}
	item := collection + "/{name}"
	itemParams := slices.Concat([]*spec3.Parameter{pathParam("name", "name of the "+r.Kind)}, pathParams)
	id := b.idPrefix() + scope + r.Kind
	op := func(action, verb, desc string, params []*spec3.Parameter, body *spec3.RequestBody, resp map[int]string, opGVK schema.GroupVersionKind) *spec3.Operation {
		o := &spec3.Operation{OperationProps: spec3.OperationProps{
			Tags:        []string{b.tag()},
			Description: desc,
			OperationId: verb + id,
			Parameters:  params,
			RequestBody: body,
			Responses:   responses(resp),
		}}
		o.AddExtension(extAction, action)
		o.AddExtension(extGVK, map[string]string{"group": opGVK.Group, "version": opGVK.Version, "kind": opGVK.Kind})
		return o
	}

	coll := &spec3.Path{PathProps: spec3.PathProps{Parameters: slices.Concat(pathParams, []*spec3.Parameter{prettyParam()})}}
	if verbs["list"] && listSchema != "" {
		coll.Get = op("list", "list", "list or watch objects of kind "+r.Kind, listParams(), nil, map[int]string{200: listSchema}, gvk)
		if r.Namespaced {
			// The list across all namespaces.
			all := &spec3.Path{PathProps: spec3.PathProps{Parameters: []*spec3.Parameter{prettyParam()}}}
			all.Get = op("list", "list", "list or watch objects of kind "+r.Kind, listParams(), nil, map[int]string{200: listSchema}, gvk)
			all.Get.OperationId = "list" + b.idPrefix() + r.Kind + "ForAllNamespaces"
			b.paths[prefix+"/"+r.Plural] = all
		}
	}
	if verbs["create"] {
		coll.Post = op("post", "create", "create a "+r.Kind, writeParams(), body(kindSchema), map[int]string{200: kindSchema, 201: kindSchema, 202: kindSchema}, gvk)
	}
	if verbs["deletecollection"] {
		coll.Delete = op("deletecollection", "deletecollection", "delete collection of "+r.Kind,
			slices.Concat(deleteParams(), listParams()), body(b.deleteOptions), map[int]string{200: b.status}, gvk)
	}
	if coll.Get != nil || coll.Post != nil || coll.Delete != nil {
		b.paths[collection] = coll
	}

	one := &spec3.Path{PathProps: spec3.PathProps{Parameters: slices.Concat(itemParams, []*spec3.Parameter{prettyParam()})}}
	if verbs["get"] {
		one.Get = op("get", "read", "read the specified "+r.Kind, nil, nil, map[int]string{200: kindSchema}, gvk)
	}
	if verbs["update"] {
		one.Put = op("put", "replace", "replace the specified "+r.Kind, writeParams(), body(kindSchema), map[int]string{200: kindSchema, 201: kindSchema}, gvk)
	}
	if verbs["patch"] {
		one.Patch = op("patch", "patch", "partially update the specified "+r.Kind, patchParams(), patchBody(b.patch), map[int]string{200: kindSchema, 201: kindSchema}, gvk)
	}
	if verbs["delete"] {
		one.Delete = op("delete", "delete", "delete a "+r.Kind, deleteParams(), body(b.deleteOptions), map[int]string{200: kindSchema, 202: kindSchema}, gvk)
	}
	if one.Get != nil || one.Put != nil || one.Patch != nil || one.Delete != nil {
		b.paths[item] = one
	}

	if r.StatusSubresource {
		st := &spec3.Path{PathProps: spec3.PathProps{Parameters: slices.Concat(itemParams, []*spec3.Parameter{prettyParam()})}}
		st.Get = op("get", "read", "read status of the specified "+r.Kind, nil, nil, map[int]string{200: kindSchema}, gvk)
		st.Put = op("put", "replace", "replace status of the specified "+r.Kind, writeParams(), body(kindSchema), map[int]string{200: kindSchema, 201: kindSchema}, gvk)
		st.Patch = op("patch", "patch", "partially update status of the specified "+r.Kind, patchParams(), patchBody(b.patch), map[int]string{200: kindSchema, 201: kindSchema}, gvk)
		for _, o := range []*spec3.Operation{st.Get, st.Put, st.Patch} {
			o.OperationId += "Status"
		}
		b.paths[item+"/status"] = st
	}
	if r.Scale != nil {
		scaleSchema := b.schemas.ref(reflect.TypeFor[autoscalingv1.Scale]())
		b.schemas.markKind(scaleSchema, "autoscaling", "v1", "Scale")
		scaleGVK := autoscalingv1.SchemeGroupVersion.WithKind("Scale")
		sc := &spec3.Path{PathProps: spec3.PathProps{Parameters: slices.Concat(itemParams, []*spec3.Parameter{prettyParam()})}}
		sc.Get = op("get", "read", "read scale of the specified "+r.Kind, nil, nil, map[int]string{200: scaleSchema}, scaleGVK)
		sc.Put = op("put", "replace", "replace scale of the specified "+r.Kind, writeParams(), body(scaleSchema), map[int]string{200: scaleSchema, 201: scaleSchema}, scaleGVK)
		sc.Patch = op("patch", "patch", "partially update scale of the specified "+r.Kind, patchParams(), patchBody(b.patch), map[int]string{200: scaleSchema, 201: scaleSchema}, scaleGVK)
		for _, o := range []*spec3.Operation{sc.Get, sc.Put, sc.Patch} {
			o.OperationId += "Scale"
		}
		b.paths[item+"/scale"] = sc
	}
}

// objectSchema adds the component schema of the objects newObj makes,
// marked as kind gvk, and returns its name. Without newObj the schema is a
// bare object.
func (b *docBuilder) objectSchema(newObj func() runtime.Object, gvk schema.GroupVersionKind) string {
	var name string
	if newObj != nil {
		t := reflect.TypeOf(newObj())
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		name = b.schemas.ref(t)
	} else {
		name = "dev.drover.unknown." + strings.ReplaceAll(gvk.GroupVersion().String(), "/", ".") + "." + gvk.Kind
		b.schemas.schemas[name] = &spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"object"}}}
	}
	b.schemas.markKind(name, gvk.Group, gvk.Version, gvk.Kind)
	return name
}

func schemaRef(name string) *spec.Schema {
	return &spec.Schema{SchemaProps: spec.SchemaProps{Ref: spec.MustCreateRef("#/components/schemas/" + name)}}
}

func body(schemaName string) *spec3.RequestBody {
	return &spec3.RequestBody{RequestBodyProps: spec3.RequestBodyProps{
		Content: map[string]*spec3.MediaType{"*/*": {MediaTypeProps: spec3.MediaTypeProps{Schema: schemaRef(schemaName)}}},
	}}
}

func patchBody(patchSchema string) *spec3.RequestBody {
	content := map[string]*spec3.MediaType{}
	for _, ct := range PatchContentTypes {
		content[ct] = &spec3.MediaType{MediaTypeProps: spec3.MediaTypeProps{Schema: schemaRef(patchSchema)}}
	}
	return &spec3.RequestBody{RequestBodyProps: spec3.RequestBodyProps{Content: content, Required: true}}
}

var statusText = map[int]string{200: "OK", 201: "Created", 202: "Accepted"}

func responses(codes map[int]string) *spec3.Responses {
	rs := &spec3.Responses{ResponsesProps: spec3.ResponsesProps{StatusCodeResponses: map[int]*spec3.Response{
		401: {ResponseProps: spec3.ResponseProps{Description: "Unauthorized"}},
	}}}
	for code, schemaName := range codes {
		content := map[string]*spec3.MediaType{}
		for _, ct := range responseTypes {
			content[ct] = &spec3.MediaType{MediaTypeProps: spec3.MediaTypeProps{Schema: schemaRef(schemaName)}}
		}
		rs.StatusCodeResponses[code] = &spec3.Response{ResponseProps: spec3.ResponseProps{
			Description: statusText[code], Content: content,
		}}
	}
	return rs
}

func pathParam(name, desc string) *spec3.Parameter {
	return &spec3.Parameter{ParameterProps: spec3.ParameterProps{
		Name: name, In: "path", Description: desc, Required: true, Schema: stringSchema(),
	}}
}

func stringSchema() *spec.Schema {
	s := scalar("string", "")
	s.UniqueItems = true
	return &s
}

func query(name, typ, desc string) *spec3.Parameter {
	s := scalar(typ, "")
	s.UniqueItems = true
	return &spec3.Parameter{ParameterProps: spec3.ParameterProps{Name: name, In: "query", Description: desc, Schema: &s}}
}

func prettyParam() *spec3.Parameter {
	return query("pretty", "string", "If 'true', then the output is pretty printed.")
}

func listParams() []*spec3.Parameter {
	return []*spec3.Parameter{
		query("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
		query("continue", "string", "The continue option should be set when retrieving more results from the server."),
		query("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
		query("labelSelector", "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
		query("limit", "integer", "limit is a maximum number of responses to return for a list call."),
		query("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
		query("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
		query("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`."),
		query("timeoutSeconds", "integer", "Timeout for the list/watch call."),
		query("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."),
	}
}

func writeParams() []*spec3.Parameter {
	return []*spec3.Parameter{
		query("dryRun", "string", "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed"),
		query("fieldManager", "string", "fieldManager is a name associated with the actor or entity that is making these changes."),
		query("fieldValidation", "string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn (the default), Strict."),
	}
}

func patchParams() []*spec3.Parameter {
	return writeParams()
}

func deleteParams() []*spec3.Parameter {
	return []*spec3.Parameter{
		query("dryRun", "string", "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed"),
		query("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted."),
		query("orphanDependents", "boolean", "Deprecated: please use the PropagationPolicy."),
		query("propagationPolicy", "string", "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'."),
	}
}
