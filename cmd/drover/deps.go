package main

import (
	_ "github.com/spf13/cobra"
	_ "go.etcd.io/etcd/client/v3"
	_ "go.etcd.io/etcd/server/v3/embed"
	_ "k8s.io/api/core/v1"
	_ "k8s.io/apimachinery/pkg/runtime"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/component-base/cli"
	_ "k8s.io/kubectl/pkg/cmd"
	_ "k8s.io/apimachinery/pkg/util/strategicpatch"
	_ "gopkg.in/evanphx/json-patch.v4"
	_ "k8s.io/kube-openapi/pkg/handler3"
	_ "github.com/prometheus/client_golang/prometheus"
)

func main() {}
