package apiserver

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// maxBodyNesting bounds how deeply a JSON body's objects and arrays may
// nest. No built-in kind comes near it (a pod's deepest paths are about a
// dozen levels); beyond it a body is hostile, and it is refused before any
// recursive decoder or patch sees it.
const maxBodyNesting = 128

// checkNesting returns a 400 when JSON data nests objects and arrays more
// than maxBodyNesting deep. It scans once without allocating; it does not
// validate the JSON otherwise (the decoder does).
func checkNesting(data []byte) error {
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > maxBodyNesting {
				return apierrors.NewBadRequest(fmt.Sprintf("the request body nests objects and arrays more than %d levels deep", maxBodyNesting))
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// isJSONType reports whether a request body of media type ct is JSON (the
// types toJSON passes through as they are).
func isJSONType(ct string) bool {
	switch ct {
	case "application/json", "application/merge-patch+json", "application/json-patch+json",
		"application/strategic-merge-patch+json", "*/*", "":
		return true
	}
	return false
}
