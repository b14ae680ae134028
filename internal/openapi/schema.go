package openapi

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"

	"k8s.io/kube-openapi/pkg/validation/spec"
)

// Extension keys Kubernetes puts on its OpenAPI documents.
const (
	extGVK    = "x-kubernetes-group-version-kind"
	extAction = "x-kubernetes-action"
)

// schemaSet collects component schemas derived from Go types by reflection:
// one named object schema per struct type, with properties named by the
// json tags and descriptions from the types' SwaggerDoc methods. It is
// enough for `kubectl explain`; it carries no patch-strategy or validation
// markers (those are deliberately not advertised, see document.go).
type schemaSet struct {
	schemas map[string]*spec.Schema
}

func newSchemaSet() *schemaSet {
	return &schemaSet{schemas: map[string]*spec.Schema{}}
}

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	byteSliceType     = reflect.TypeFor[[]byte]()
)

// Interfaces the k8s.io types implement to describe themselves.
type (
	modelNamer      interface{ OpenAPIModelName() string }
	schemaTyper     interface{ OpenAPISchemaType() []string }
	schemaFormatter interface{ OpenAPISchemaFormat() string }
	oneOfTyper      interface{ OpenAPIV3OneOfTypes() []string }
	swaggerDocer    interface{ SwaggerDoc() map[string]string }
)

// modelName is the component name of a named Go type, as upstream spells it
// ("io.k8s.api.core.v1.Pod"): the generated OpenAPIModelName if present,
// otherwise the package path with its domain reversed.
func modelName(t reflect.Type) string {
	if n, ok := reflect.Zero(t).Interface().(modelNamer); ok {
		return n.OpenAPIModelName()
	}
	pkg := t.PkgPath()
	first, rest, _ := strings.Cut(pkg, "/")
	labels := strings.Split(first, ".")
	for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
		labels[i], labels[j] = labels[j], labels[i]
	}
	name := strings.Join(labels, ".")
	if rest != "" {
		name += "." + strings.ReplaceAll(rest, "/", ".")
	}
	return name + "." + t.Name()
}

// ref returns a schema referring to the component for t, adding it (and
// every type it reaches) to the set first. t must be a struct type.
func (s *schemaSet) ref(t reflect.Type) (name string) {
	name = modelName(t)
	if _, ok := s.schemas[name]; ok {
		return name
	}
	obj := &spec.Schema{}
	s.schemas[name] = obj // placeholder first: types may be recursive
	*obj = s.structSchema(t)
	return name
}

// typeSchema is the schema for a value of type t: inline for scalars,
// slices, maps and self-describing types; a $ref for structs.
func (s *schemaSet) typeSchema(t reflect.Type) spec.Schema {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	zero := reflect.Zero(t).Interface()
	if o, ok := zero.(oneOfTyper); ok {
		var alts []spec.Schema
		for _, typ := range o.OpenAPIV3OneOfTypes() {
			alts = append(alts, spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{typ}}})
		}
		sch := spec.Schema{SchemaProps: spec.SchemaProps{OneOf: alts}}
		if f, ok := zero.(schemaFormatter); ok && f.OpenAPISchemaFormat() == "int-or-string" {
			sch.AddExtension("x-kubernetes-int-or-string", true)
		}
		return sch
	}
	if st, ok := zero.(schemaTyper); ok {
		sch := spec.Schema{SchemaProps: spec.SchemaProps{Type: st.OpenAPISchemaType()}}
		if f, ok := zero.(schemaFormatter); ok {
			sch.Format = f.OpenAPISchemaFormat()
		}
		return sch
	}
	if t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonMarshalerType) {
		// Opaque JSON (RawExtension, FieldsV1, ...).
		sch := spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"object"}}}
		sch.AddExtension("x-kubernetes-preserve-unknown-fields", true)
		return sch
	}
	if t == byteSliceType {
		return scalar("string", "byte")
	}
	switch t.Kind() {
	case reflect.Bool:
		return scalar("boolean", "")
	case reflect.Int32, reflect.Uint32:
		return scalar("integer", "int32")
	case reflect.Int, reflect.Int64, reflect.Int8, reflect.Int16, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint64:
		return scalar("integer", "int64")
	case reflect.Float32, reflect.Float64:
		return scalar("number", "double")
	case reflect.String:
		return scalar("string", "")
	case reflect.Slice, reflect.Array:
		item := s.typeSchema(t.Elem())
		return spec.Schema{SchemaProps: spec.SchemaProps{
			Type:  []string{"array"},
			Items: &spec.SchemaOrArray{Schema: &item},
		}}
	case reflect.Map:
		val := s.typeSchema(t.Elem())
		return spec.Schema{SchemaProps: spec.SchemaProps{
			Type:                 []string{"object"},
			AdditionalProperties: &spec.SchemaOrBool{Allows: true, Schema: &val},
		}}
	case reflect.Struct:
		return spec.Schema{SchemaProps: spec.SchemaProps{Ref: spec.MustCreateRef("#/components/schemas/" + s.ref(t))}}
	default: // interface{} and anything else: any JSON value
		sch := spec.Schema{}
		sch.AddExtension("x-kubernetes-preserve-unknown-fields", true)
		return sch
	}
}

func scalar(typ, format string) spec.Schema {
	return spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{typ}, Format: format}}
}

// structSchema is the object schema of struct type t: its json-tagged
// fields, inline (embedded) structs flattened, described by SwaggerDoc.
func (s *schemaSet) structSchema(t reflect.Type) spec.Schema {
	obj := spec.Schema{SchemaProps: spec.SchemaProps{
		Type:       []string{"object"},
		Properties: map[string]spec.Schema{},
	}}
	docs := map[string]string{}
	if d, ok := reflect.Zero(t).Interface().(swaggerDocer); ok {
		docs = d.SwaggerDoc()
	}
	obj.Description = docs[""]
	s.addFields(&obj, t, docs)
	if len(obj.Properties) == 0 {
		obj.Properties = nil
	}
	return obj
}

func (s *schemaSet) addFields(obj *spec.Schema, t reflect.Type, docs map[string]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		inline := strings.Contains(","+opts+",", ",inline,") || (f.Anonymous && name == "")
		if inline {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded := map[string]string{}
				if d, ok := reflect.Zero(ft).Interface().(swaggerDocer); ok {
					embedded = d.SwaggerDoc()
				}
				s.addFields(obj, ft, embedded)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		prop := s.typeSchema(f.Type)
		if d := docs[name]; d != "" {
			if prop.Ref.String() != "" {
				// A $ref ignores its siblings in OpenAPI 3.0; wrap it as upstream does.
				prop = spec.Schema{SchemaProps: spec.SchemaProps{AllOf: []spec.Schema{prop}}}
			}
			prop.Description = d
		}
		obj.Properties[name] = prop
	}
}

// markKind adds gvk to the x-kubernetes-group-version-kind list of the
// component schema name.
func (s *schemaSet) markKind(name string, group, version, kind string) {
	sch := s.schemas[name]
	var list []map[string]string
	if v, ok := sch.Extensions[extGVK]; ok {
		list, _ = v.([]map[string]string)
	}
	for _, g := range list {
		if g["group"] == group && g["version"] == version && g["kind"] == kind {
			return
		}
	}
	list = append(list, map[string]string{"group": group, "version": version, "kind": kind})
	sort.Slice(list, func(i, j int) bool {
		return list[i]["group"]+"/"+list[i]["version"]+"/"+list[i]["kind"] < list[j]["group"]+"/"+list[j]["version"]+"/"+list[j]["kind"]
	})
	sch.AddExtension(extGVK, list)
}
