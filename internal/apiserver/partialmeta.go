package apiserver

import "k8s.io/apimachinery/pkg/runtime"

// bookmarkIn returns a watch bookmark's object in the form the watcher
// asked for: a client watching partial metadata (client-go's metadata
// client and informers) can decode nothing else, so a bookmark of the
// resource's own kind would break its watch.
func bookmarkIn(form responseForm, obj runtime.Object) any {
	if form == formPartialMetadata || form == formPartialMetadataList {
		return toPartialMetadata(obj)
	}
	return obj
}
