package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/controlplane"
	"github.com/drover/drover/internal/controlplane/failover"
)

// agentServersFile (in the agent's data dir) keeps the servers the agent
// last learned from the cluster, so that a restarted agent whose --server
// is down still finds a live one.
const agentServersFile = "servers"

// agentSeeds are the servers of --server (comma-separated), then those
// the agent learned before it last stopped.
func agentSeeds(server, dataDir string) ([]string, error) {
	seeds, err := failover.ParseURLs(server)
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	if data, err := os.ReadFile(filepath.Join(dataDir, agentServersFile)); err == nil {
		if known, err := failover.ParseURLs(strings.TrimSpace(string(data))); err == nil {
			seeds = append(seeds, known...)
		}
	}
	return seeds, nil
}

// withFailover makes cfg send each request to a live server among seeds
// and the servers the cluster lists (learned now and kept current while
// ctx lives, and saved in dataDir). A kubeconfig server that is not a
// plain https://HOST[:PORT] is used as it is.
func withFailover(ctx context.Context, cfg *rest.Config, seeds []string, dataDir string, log *slog.Logger) (*failover.Servers, error) {
	servers, err := failover.New(seeds, failover.OnSwitch(func(from, to string, err error) {
		if err != nil {
			log.Warn("API server failed; switching", "from", from, "to", to, "err", err)
		} else {
			log.Info("API server switched", "from", from, "to", to)
		}
	}))
	if err != nil {
		return nil, err
	}
	servers.Configure(cfg)
	learner := rest.CopyConfig(cfg)
	learner.UserAgent = "drover-agent-failover"
	kube, err := kubernetes.NewForConfig(learner)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	path := filepath.Join(dataDir, agentServersFile)
	fetch := func(ctx context.Context) ([]string, error) {
		urls, err := failover.FromCluster(ctx, kube)
		if err == nil && len(urls) > 0 {
			data := []byte(strings.Join(urls, ",") + "\n")
			if old, _ := os.ReadFile(path); !bytes.Equal(old, data) {
				if err := os.WriteFile(path, data, 0o600); err != nil {
					log.Warn("saving the API servers", "err", err)
				}
			}
		}
		return urls, err
	}
	go servers.Keep(ctx, failover.DefaultRefresh, fetch, log)
	return servers, nil
}

// agentFailoverConfig builds the agent's client for --server (one URL or
// several, comma-separated) with node credentials: it joins through the
// first reachable server and fails over among every known server.
func agentFailoverConfig(ctx context.Context, server, token, nodeName, dataDir string, log *slog.Logger) (*rest.Config, error) {
	seeds, err := agentSeeds(server, dataDir)
	if err != nil {
		return nil, err
	}
	j := controlplane.NodeJoin{Server: failover.Reachable(ctx, seeds, 3*time.Second), Token: token, NodeName: nodeName,
		Dir: filepath.Join(dataDir, agentPKIDir), Logger: log}
	cfg, err := controlplane.NodeCredentials(ctx, j)
	if err != nil {
		return nil, err
	}
	// The server joined through goes first.
	seeds = append([]string{j.Server}, seeds...)
	servers, err := withFailover(ctx, cfg, seeds, dataDir, log)
	if err != nil {
		return nil, err
	}
	// client-go rereads the certificate files, so renewal in place reaches it.
	j.CurrentServer = servers.Current
	go controlplane.KeepNodeCredentials(ctx, j, nodeCertCheckInterval)
	return cfg, nil
}

// agentKubeconfigFailover adds failover to a --kubeconfig client whose
// server is a plain https://HOST[:PORT]; other servers are left alone.
func agentKubeconfigFailover(ctx context.Context, cfg *rest.Config, dataDir string, log *slog.Logger) (*rest.Config, error) {
	if _, err := failover.NormalizeURL(cfg.Host); err != nil || cfg.Transport != nil {
		return cfg, nil
	}
	seeds, err := agentSeeds(cfg.Host, dataDir)
	if err != nil {
		return cfg, nil
	}
	if _, err := withFailover(ctx, cfg, seeds, dataDir, log); err != nil {
		return nil, err
	}
	return cfg, nil
}
