// Package kubeclient holds how Drover's own components configure their
// client-go clients.
package kubeclient

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
)

// Protobuf returns a copy of cfg whose typed clients send and prefer
// Kubernetes' protobuf encoding, as upstream's components do: decoding
// watch events from JSON was the largest single cost of Drover's control
// plane and simulated nodes under load. JSON stays acceptable, for the
// types and forms the server answers only in JSON.
func Protobuf(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.ContentType = runtime.ContentTypeProtobuf
	c.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	return c
}
