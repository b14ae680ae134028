package apiserver

import (
	"errors"
	"net/http"
)

// New returns the API server's HTTP handler.
func New(cfg Config) (http.Handler, error) {
	if cfg.Storage == nil {
		return nil, errors.New("apiserver: no storage")
	}
	return http.NotFoundHandler(), nil
}
