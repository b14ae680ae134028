// Package restwrite sends one protobuf write (a create, an update, a
// status update) over a client-go REST client's HTTP client without
// client-go's request machinery: the request the API server receives is
// the one client-go's typed client sends (same method, URL, body and
// headers: the REST client's transport adds User-Agent, credentials and
// failover), each attempt waits for the client's rate limiter, and the
// answer is handled as client-go's Request.Do handles it (a 429 or 5xx
// with Retry-After is waited for and sent again, up to client-go's ten
// times; an error answer becomes the server's Status as an
// *errors.StatusError). Path builds a request's path from the segments
// client-go's would; Metadata reads back the written object's metadata.
//
// What it skips is client-go's per-request bookkeeping: the request URL
// built from its segments (and again, as a template, for a latency metric
// nothing reads), the retry state, the DNS trace, the response decoder's
// negotiation. For a simulated fleet writing a pod status and posting an
// event per pod these were a tenth of its CPU.
//
// Not kept from client-go: Warning headers are not passed to a warning
// handler, and client-go's request metrics are not observed.
package restwrite

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/rest"
)

// Content types of a protobuf write, as client-go's UseProtobufAsDefault
// (and kubeclient.Protobuf) set them.
const (
	contentType = kruntime.ContentTypeProtobuf
	accept      = kruntime.ContentTypeProtobuf + "," + kruntime.ContentTypeJSON
)

// maxRetries is how often an answer with Retry-After is waited for and
// the request sent again, as client-go's default.
const maxRetries = 10

// Object is what can be written: a typed API object with its TypeMeta set
// (APIVersion and Kind are what its protobuf envelope carries).
type Object interface {
	kruntime.Object
	// proto.Marshaler's sized marshalling, which every k8s.io/api type has.
	Size() int
	MarshalToSizedBuffer([]byte) (int, error)
}

// encoder is the protobuf envelope's encoder (it needs no scheme to
// encode: the object's TypeMeta is written as it is).
var encoder = protobuf.NewSerializer(nil, nil)

// Encode returns obj in Kubernetes' protobuf envelope. obj's TypeMeta must
// be set.
func Encode(obj Object) ([]byte, error) {
	var buf bytes.Buffer
	if err := encoder.Encode(obj, &buf); err != nil {
		return nil, fmt.Errorf("encode %T: %w", obj, err)
	}
	return buf.Bytes(), nil
}

// hosts caches each REST client's base URL, keyed weakly: an entry goes
// when its client does.
var hosts sync.Map // weak.Pointer[rest.RESTClient] -> baseURL

// baseURL is what a REST client puts around a request's path: its
// scheme://host[/base path], without a trailing slash, and the query it
// adds to every request (a timeout of the config's), if any.
type baseURL struct{ prefix, query string }

// url is the URL of the request for path.
func (b baseURL) url(path string) string {
	if b.query == "" {
		return b.prefix + path
	}
	return b.prefix + path + "?" + b.query
}

// base returns rc's base URL.
func base(rc *rest.RESTClient) (baseURL, error) {
	key := weak.Make(rc)
	if b, ok := hosts.Load(key); ok {
		return b.(baseURL), nil
	}
	u := rc.Get().AbsPath("/").URL()
	if u == nil || u.Host == "" {
		return baseURL{}, fmt.Errorf("restwrite: REST client has no host")
	}
	b := baseURL{query: u.RawQuery}
	u.RawQuery = ""
	b.prefix = strings.TrimSuffix(u.String(), "/")
	if _, loaded := hosts.LoadOrStore(key, b); !loaded {
		runtime.AddCleanup(rc, func(k weak.Pointer[rest.RESTClient]) { hosts.Delete(k) }, key)
	}
	return b, nil
}

// Request is one write.
type Request struct {
	// Method is POST, PUT or PATCH.
	Method string
	// Path is the absolute path, e.g. /api/v1/namespaces/NS/events.
	Path string
	// Body is the encoded body, of ContentType (default protobuf).
	Body []byte
	// ContentType of Body; default the protobuf media type.
	ContentType string
	// Resource and Name name the object in an error that carries no
	// Status of the server's.
	Resource schema.GroupResource
	Name     string
}

// Do sends req over rc's HTTP client and returns the answer's body (a 2xx
// answer) or the error client-go's Request.Do would give.
func Do(ctx context.Context, rc *rest.RESTClient, req Request) ([]byte, error) {
	b, err := base(rc)
	if err != nil {
		return nil, err
	}
	client := rc.Client
	if client == nil {
		client = http.DefaultClient
	}
	ct := req.ContentType
	if ct == "" {
		ct = contentType
	}
	url := b.url(req.Path)
	limiter := rc.GetRateLimiter()
	for try := 0; ; try++ {
		// As client-go's Request does, each attempt waits for the
		// client's rate limiter (an agent's QPS and burst).
		if limiter != nil {
			if err := limiter.Wait(ctx); err != nil {
				return nil, fmt.Errorf("client rate limiter Wait returned an error: %w", err)
			}
		}
		hreq, err := http.NewRequestWithContext(ctx, req.Method, url, bytes.NewReader(req.Body))
		if err != nil {
			return nil, fmt.Errorf("restwrite: %w", err)
		}
		hreq.Header = http.Header{"Accept": {accept}, "Content-Type": {ct}}
		resp, err := send(client, hreq)
		if err != nil {
			return nil, err
		}
		body, rerr := readBody(resp)
		resp.Body.Close()
		if rerr != nil {
			return nil, fmt.Errorf("unexpected error when reading response body. Please retry. Original error: %w", rerr)
		}
		code := resp.StatusCode
		if code >= http.StatusOK && code <= http.StatusPartialContent {
			return body, nil
		}
		wait, retryAfter := retryAfter(resp)
		if retryAfter && try < maxRetries {
			t := time.NewTimer(time.Duration(wait) * time.Second)
			select {
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			}
		}
		return nil, responseError(req, code, wait, resp.Header.Get("Content-Type"), body)
	}
}

// send sends req through client's transport, as client.Do would: the
// API server does not redirect writes, so a client without a timeout or
// cookie jar of its own (client-go's, unless rest.Config.Timeout is set)
// adds nothing to its transport but the bookkeeping of redirects, a
// tenth of a fleet's write's client-side cost; with either, client.Do.
func send(client *http.Client, req *http.Request) (*http.Response, error) {
	if client.Timeout > 0 || client.Jar != nil || client.CheckRedirect != nil {
		return client.Do(req)
	}
	rt := client.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// readBody reads resp's body whole, in one buffer of its length when the
// server said it (io.ReadAll grows its buffer from 512 bytes).
func readBody(resp *http.Response) ([]byte, error) {
	if n := resp.ContentLength; n > 0 && n <= 16<<20 {
		body := make([]byte, n)
		_, err := io.ReadFull(resp.Body, body)
		return body, err
	}
	return io.ReadAll(resp.Body)
}

// retryAfter is client-go's checkWait: a 429 or 5xx with a Retry-After of
// whole seconds.
func retryAfter(resp *http.Response) (int, bool) {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500 {
		return 0, false
	}
	if h := resp.Header.Get("Retry-After"); h != "" {
		if i, err := strconv.Atoi(h); err == nil {
			return i, true
		}
	}
	return 0, false
}

// protobufMagic starts an object in Kubernetes' protobuf envelope.
var protobufMagic = []byte{0x6b, 0x38, 0x73, 0x00}

// Path is the path client-go's Namespace(namespace).Resource(resource)
// .Name(name).SubResource(subresource) builds in group version gv (under
// the REST client's base path, which Do adds): the collection without a
// name, one object with it, its subresource with both.
func Path(gv schema.GroupVersion, namespace, resource, name, subresource string) string {
	p := "/apis/" + gv.Group + "/" + gv.Version
	if gv.Group == "" {
		p = "/api/" + gv.Version
	}
	p += "/namespaces/" + namespace + "/" + resource
	if name != "" {
		p += "/" + name
		if subresource != "" {
			p += "/" + subresource
		}
	}
	return p
}

// Metadata decodes the metadata of the object a write answered with, in
// protobuf or JSON, and nothing else of it: what a writer wants back is
// most often a name the server generated or the new resourceVersion.
func Metadata(body []byte) (metav1.ObjectMeta, error) {
	var m metav1.PartialObjectMetadata
	if rest, ok := bytes.CutPrefix(body, protobufMagic); ok {
		var u kruntime.Unknown
		if err := u.Unmarshal(rest); err != nil {
			return metav1.ObjectMeta{}, fmt.Errorf("decode the written object: %w", err)
		}
		// An object's field 1 is its metadata, as PartialObjectMetadata's
		// is; the other fields are skipped.
		if err := m.Unmarshal(u.Raw); err != nil {
			return metav1.ObjectMeta{}, fmt.Errorf("decode the written object's metadata: %w", err)
		}
	} else if err := json.Unmarshal(body, &m); err != nil {
		return metav1.ObjectMeta{}, fmt.Errorf("decode the written object: %w", err)
	}
	if m.ResourceVersion == "" {
		return metav1.ObjectMeta{}, errors.New("the written object has no resourceVersion")
	}
	return m.ObjectMeta, nil
}

// responseError is the error of an answer that is not a 2xx: the server's
// Status if the body is one (protobuf or JSON), else a generic error of
// the status code, as client-go makes them.
func responseError(req Request, code, retryAfter int, ct string, body []byte) error {
	var st metav1.Status
	decoded := false
	if rest, ok := bytes.CutPrefix(body, protobufMagic); ok {
		var u kruntime.Unknown
		if u.Unmarshal(rest) == nil && u.Kind == "Status" && st.Unmarshal(u.Raw) == nil {
			decoded = true
		}
	} else if strings.HasPrefix(ct, kruntime.ContentTypeJSON) && json.Unmarshal(body, &st) == nil && st.Kind == "Status" {
		decoded = true
	}
	if decoded && st.Status != metav1.StatusSuccess {
		return &apierrors.StatusError{ErrStatus: st}
	}
	msg := ""
	if strings.HasPrefix(ct, "text/") {
		msg = strings.TrimSpace(string(body))
	}
	return apierrors.NewGenericServerResponse(code, req.Method, req.Resource, req.Name, msg, retryAfter, true)
}
