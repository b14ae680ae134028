package proxy

import (
	"fmt"
	"io"
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
