// Package rawapi sends the agent's most frequent API requests (a pod's
// status write, an event's creation) over a client-go REST client's own
// HTTP client, and so with its authentication, user agent, timeout and
// failover, but without client-go's request builder: it builds each
// request's URL several times over (and once more as a template for a
// latency metric) and sets up a retry policy per request, which cost a
// simulated fleet of 500 nodes more CPU than encoding the requests.
//
// Requests are sent in protobuf, answers accepted in protobuf or JSON. As
// client-go does, an answer of 429 or 5xx with a Retry-After header is
// waited for and the request sent again, up to MaxRetries times; other
// answers outside 2xx become the API errors client-go would return
// (k8s.io/apimachinery/pkg/api/errors), decoded from the server's Status.
package rawapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// MaxRetries is how often a request the server asked to send again later
// (429 or 5xx with Retry-After) is sent again, client-go's default.
const MaxRetries = 10

// Media types.
const (
	Protobuf            = "application/vnd.kubernetes.protobuf"
	StrategicMergePatch = "application/strategic-merge-patch+json"
	accept              = Protobuf + ",application/json"
)

// Client sends requests to one API group version.
type Client struct {
	http *http.Client
	base string // e.g. https://10.0.0.1:6443/api/v1
	// wait waits out a Retry-After (tests shorten it).
	wait func(ctx context.Context, d time.Duration) error
}

// New returns a client over rc's HTTP client and base URL, or nil when rc
// is not a *rest.RESTClient of its own (a fake): callers then use the
// typed client.
func New(rc rest.Interface) *Client {
	c, ok := rc.(*rest.RESTClient)
	if !ok || c == nil || c.Client == nil {
		return nil
	}
	u := c.Get().URL() // the base and the versioned API path
	u.RawQuery = ""
	return &Client{http: c.Client, base: u.String(), wait: sleep}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Do sends body (of media type contentType) with method to path (below
// the group version, e.g. "/namespaces/default/events") and returns the
// answer's body.
func (c *Client) Do(ctx context.Context, method, path, contentType string, body []byte) ([]byte, error) {
	url := c.base + path
	for try := 0; ; try++ {
		req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Accept", accept)
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s %s: read the answer: %w", method, url, err)
		}
		if resp.StatusCode >= http.StatusOK && resp.StatusCode <= http.StatusPartialContent {
			return data, nil
		}
		secs, retryAfter := retryAfterSeconds(resp)
		if retryAfter && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500) && try < MaxRetries {
			if err := c.wait(ctx, time.Duration(secs)*time.Second); err != nil {
				return nil, err
			}
			continue
		}
		return nil, responseError(resp, method, data, secs)
	}
}

func retryAfterSeconds(resp *http.Response) (int, bool) {
	if h := resp.Header.Get("Retry-After"); h != "" {
		if i, err := strconv.Atoi(h); err == nil {
			return i, true
		}
	}
	return 0, false
}

// responseError is the error of an answer outside 2xx: the server's
// Status when it sent one, else a generic error with the answer's code.
func responseError(resp *http.Response, method string, body []byte, retryAfter int) error {
	if obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil); err == nil {
		if st, ok := obj.(*metav1.Status); ok && st.Status != metav1.StatusSuccess {
			return apierrors.FromObject(st)
		}
	}
	isText := bytes.HasPrefix([]byte(resp.Header.Get("Content-Type")), []byte("text/"))
	return apierrors.NewGenericServerResponse(resp.StatusCode, method, schema.GroupResource{}, "", string(body), retryAfter, isText)
}

// protobufMagic starts an object in Kubernetes' protobuf envelope.
var protobufMagic = []byte{0x6b, 0x38, 0x73, 0x00}

// Envelope wraps an object's protobuf encoding (raw) in Kubernetes'
// envelope, as the API server reads a request body of media type
// Protobuf.
func Envelope(apiVersion, kind string, raw []byte) ([]byte, error) {
	u := runtime.Unknown{TypeMeta: runtime.TypeMeta{APIVersion: apiVersion, Kind: kind}, Raw: raw}
	out := make([]byte, len(protobufMagic)+u.Size())
	copy(out, protobufMagic)
	if _, err := u.MarshalToSizedBuffer(out[len(protobufMagic):]); err != nil {
		return nil, fmt.Errorf("encode %s: %w", kind, err)
	}
	return out, nil
}

// AppendField appends protobuf field number num of wire type "bytes"
// holding b (an embedded message's encoding) to dst.
func AppendField(dst []byte, num int, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(num)<<3|2)
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// ResourceVersion reads metadata.resourceVersion from an object the API
// server returned, in protobuf or JSON, without decoding the rest of it.
func ResourceVersion(body []byte) (string, error) {
	var rv string
	if rest, ok := bytes.CutPrefix(body, protobufMagic); ok {
		var u runtime.Unknown
		if err := u.Unmarshal(rest); err != nil {
			return "", fmt.Errorf("decode the written object: %w", err)
		}
		// An object's field 1 is its metadata, as PartialObjectMetadata's
		// is; the other fields are skipped.
		var m metav1.PartialObjectMetadata
		if err := m.Unmarshal(u.Raw); err != nil {
			return "", fmt.Errorf("decode the written object's metadata: %w", err)
		}
		rv = m.ResourceVersion
	} else {
		var m struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return "", fmt.Errorf("decode the written object: %w", err)
		}
		rv = m.Metadata.ResourceVersion
	}
	if rv == "" {
		return "", errors.New("the written object has no resourceVersion")
	}
	return rv, nil
}
