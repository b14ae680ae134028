package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
)

// helperEnv makes the test binary act as a pod's process when it is run
// inside a network namespace by the iptables tests: "serve" answers
// $DROVER_PROXY_NAME on $DROVER_PROXY_ADDR, "get" prints the body of
// $DROVER_PROXY_URL.
const helperEnv = "DROVER_PROXY_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "serve":
		name := os.Getenv("DROVER_PROXY_NAME")
		err := http.ListenAndServe(os.Getenv("DROVER_PROXY_ADDR"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name)
		}))
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	case "get":
		if server := os.Getenv("DROVER_PROXY_DNS"); server != "" {
			// Resolve names with the cluster DNS, as a pod whose
			// resolv.conf names it would.
			r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, server)
			}}
			net.DefaultResolver = r
		}
		body, err := get(os.Getenv("DROVER_PROXY_URL"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Print(body)
		os.Exit(0)
	}
	os.Exit(m.Run())
}
