// Package auth holds Drover's identities: who a request comes from, the
// cluster's certificates, and the tokens that prove identity.
package auth

import "net/http"

// User is an authenticated identity, named as Kubernetes names them
// (e.g. "admin" in group "system:masters", or "system:node:n1").
type User struct {
	Name   string
	Groups []string
}

// Authenticator tells who sent a request; ok is false when the request
// carries no valid credentials.
type Authenticator interface {
	Authenticate(r *http.Request) (user *User, ok bool)
}
