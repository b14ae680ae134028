package apiserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// protobufWatchType is the content type of a protobuf watch stream: each
// event a metav1.WatchEvent in protobuf's raw form (no envelope), framed
// by its length as four big-endian bytes, its object in the enveloped form
// of protobufType. client-go's protobuf clients expect exactly this.
const protobufWatchType = protobufType + ";stream=watch"

// protobufForm reports whether the client prefers Kubernetes' protobuf
// encoding, and of what: the first media type of its Accept header that
// Drover can answer decides. Protobuf is served for plain objects and for
// partial metadata (as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1, as
// client-go's metadata client asks first); Tables are JSON only, so a
// protobuf type asking for one is passed over for the JSON type after it.
func protobufForm(r *http.Request) (responseForm, bool) {
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		mt, params, err := parseMediaType(part)
		if err != nil {
			continue
		}
		switch mt {
		case protobufType:
			metaV1 := params["g"] == metav1.GroupName && params["v"] == "v1"
			switch as := params["as"]; {
			case as == "":
				return formObject, true
			case as == "PartialObjectMetadata" && metaV1:
				return formPartialMetadata, true
			case as == "PartialObjectMetadataList" && metaV1:
				return formPartialMetadataList, true
			}
		case "application/json", "application/yaml", "*/*", "application/*":
			return formObject, false
		}
	}
	return formObject, false
}

// wantsProtobuf reports whether the client prefers plain objects in
// protobuf.
func wantsProtobuf(r *http.Request) bool {
	form, ok := protobufForm(r)
	return ok && form == formObject
}

// hasProtobuf reports whether obj's type has a protobuf encoding (all
// built-in types do; unstructured objects do not).
func hasProtobuf(obj runtime.Object) bool {
	_, ok := obj.(interface {
		Size() int
		MarshalToSizedBuffer([]byte) (int, error)
	})
	return ok
}

// encodeProtobuf encodes obj in the enveloped protobuf form; obj's kind
// must be set. Types without protobuf marshalling get errNoProtobuf.
func encodeProtobuf(obj runtime.Object) ([]byte, error) {
	if !hasProtobuf(obj) {
		return nil, errNoProtobuf
	}
	var buf bytes.Buffer
	if err := protobufSerializer.Encode(obj, &buf); err != nil {
		return nil, fmt.Errorf("encoding %T as protobuf: %w", obj, err)
	}
	return buf.Bytes(), nil
}

var errNoProtobuf = errors.New("no protobuf encoding for this type")

// writeProtobuf writes obj as protobuf, or as JSON when its type has no
// protobuf encoding (clients that ask for protobuf accept JSON too).
func writeProtobuf(w http.ResponseWriter, code int, obj runtime.Object) {
	data, err := encodeProtobuf(obj)
	if errors.Is(err, errNoProtobuf) {
		writeJSON(w, code, obj)
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", protobufType)
	w.WriteHeader(code)
	_, _ = w.Write(data)
}

// appendProtobufWatchEvent appends one framed event of a protobuf watch
// stream to buf: object is the event's object in enveloped protobuf.
func appendProtobufWatchEvent(buf []byte, t watch.EventType, object []byte) ([]byte, error) {
	ev := metav1.WatchEvent{Type: string(t), Object: runtime.RawExtension{Raw: object}}
	size := ev.Size()
	start := len(buf)
	buf = slices.Grow(buf, 4+size)[:start+4+size]
	binary.BigEndian.PutUint32(buf[start:], uint32(size))
	if _, err := ev.MarshalToSizedBuffer(buf[start+4:]); err != nil {
		return buf[:start], fmt.Errorf("encoding watch event: %w", err)
	}
	return buf, nil
}
