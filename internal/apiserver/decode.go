package apiserver

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// readBody reads a request body of at most limit bytes (413 beyond).
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	data, err := readAll(r.Body, r.ContentLength, limit+1)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("reading request body: %v", err))
	}
	if int64(len(data)) > limit {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d bytes", limit))
	}
	if isJSONType(mediaType(r)) { // YAML is checked once converted, in toJSON
		if err := checkNesting(data); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// readAll reads body up to max bytes. A declared length (most clients
// declare it) sizes the buffer at once, rather than growing it from 512
// bytes as io.ReadAll does.
func readAll(body io.Reader, declared, max int64) ([]byte, error) {
	if declared <= 0 || declared >= max {
		return io.ReadAll(io.LimitReader(body, max))
	}
	// One byte more than declared, to see EOF without growing.
	data := make([]byte, 0, declared+1)
	for {
		n, err := body.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return data, err
		}
		if len(data) == cap(data) {
			// Longer than declared: read the rest as io.ReadAll would.
			rest, err := io.ReadAll(io.LimitReader(body, max-int64(len(data))))
			return append(data, rest...), err
		}
	}
}

// mediaType returns the request's content type without parameters.
func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "application/json"
	}
	mt, _, err := parseMediaType(ct)
	if err != nil {
		return ct
	}
	return mt
}

// parseMediaType is mime.ParseMediaType, which makes a map for the
// parameters of every media type: a type without parameters (most Accept
// and Content-Type values) is lower-cased and returned with none.
func parseMediaType(v string) (mediatype string, params map[string]string, err error) {
	v = strings.TrimSpace(v)
	if plainMediaType(v) {
		return strings.ToLower(v), nil, nil
	}
	return mime.ParseMediaType(v)
}

// plainMediaType reports whether v is type/subtype of token characters,
// with nothing else.
func plainMediaType(v string) bool {
	slash := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '/' && !slash && i > 0 && i < len(v)-1:
			slash = true
		case c > ' ' && c < 0x7f && !strings.ContainsRune("()<>@,;:\\\"/[]?=", rune(c)):
		default:
			return false
		}
	}
	return slash
}

// toJSON converts a JSON or YAML body to JSON; 400 when it is neither.
func toJSON(body []byte, contentType string) ([]byte, error) {
	switch contentType {
	case "application/json", "application/merge-patch+json", "application/json-patch+json",
		"application/strategic-merge-patch+json", "*/*", "":
		return body, nil
	case "application/yaml", "application/apply-patch+yaml", "text/yaml", "application/x-yaml":
		j, err := yaml.YAMLToJSON(body)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding YAML: %v", err))
		}
		if err := checkNesting(j); err != nil {
			return nil, err
		}
		return j, nil
	}
	return nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "", schema.GroupResource{}, "", fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got %q)", contentType), 0, false)
}

// protobufType is the media type of Kubernetes' protobuf encoding, which
// client-go uses by default for built-in types.
const protobufType = "application/vnd.kubernetes.protobuf"

var protobufSerializer = protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)

// decodeRequest decodes a request body in JSON, YAML or protobuf into into.
func decodeRequest(w http.ResponseWriter, r *http.Request, body []byte, into runtime.Object, want schema.GroupVersionKind) error {
	ct := mediaType(r)
	if ct == protobufType {
		if _, _, err := protobufSerializer.Decode(body, &want, into); err != nil {
			return apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", want.Kind, want.Version, want.Kind, err))
		}
		into.GetObjectKind().SetGroupVersionKind(want)
		return nil
	}
	data, err := toJSON(body, ct)
	if err != nil {
		return err
	}
	return decodeObject(w, r, data, into, want)
}

// fieldValidation is the request's fieldValidation directive (Strict, Warn, Ignore).
func fieldValidation(r *http.Request) string {
	switch v := r.URL.Query().Get("fieldValidation"); v {
	case metav1.FieldValidationStrict, metav1.FieldValidationIgnore:
		return v
	}
	return metav1.FieldValidationWarn
}

// decodeObject decodes a JSON object into into, enforcing the fieldValidation
// directive: Strict turns unknown or duplicate fields into a 400, Warn into
// Warning headers. It checks apiVersion and kind against want.
func decodeObject(w http.ResponseWriter, r *http.Request, data []byte, into runtime.Object, want schema.GroupVersionKind) error {
	kindName := want.Kind
	strictErrs, err := sigsjson.UnmarshalStrict(data, into, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", kindName, want.Version, kindName, err))
	}
	gvk := into.GetObjectKind().GroupVersionKind()
	// Option kinds such as DeleteOptions are accepted in any group version, as upstream does.
	optionKind := want.Kind == "DeleteOptions"
	if gvk.Kind != "" && gvk.Kind != want.Kind || gvk.Version != "" && gvk.GroupVersion() != want.GroupVersion() && !optionKind {
		return apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", gvk.GroupVersion().String()+", Kind="+gvk.Kind, want.GroupVersion().String()+", Kind="+want.Kind))
	}
	into.GetObjectKind().SetGroupVersionKind(want)
	if len(strictErrs) == 0 {
		return nil
	}
	switch fieldValidation(r) {
	case metav1.FieldValidationStrict:
		msgs := make([]string, len(strictErrs))
		for i, e := range strictErrs {
			msgs[i] = e.Error()
		}
		return apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: strict decoding error: %s", kindName, want.Version, kindName, strings.Join(msgs, ", ")))
	case metav1.FieldValidationWarn:
		for _, e := range strictErrs {
			w.Header().Add("Warning", fmt.Sprintf("299 - %q", e.Error()))
		}
	}
	return nil
}
