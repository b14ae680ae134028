package apiserver

import (
	"time"

	"github.com/drover/drover/internal/registry"
)

// ttl is how long objects of res are kept after a write: Config.EventTTL
// for resources that expire (events), as upstream's events registry gives
// on create and on every update; 0 (forever) for the others.
func (s *server) ttl(res *registry.Resource) time.Duration {
	if res.Storage().Expires {
		return s.cfg.EventTTL
	}
	return 0
}
