// Command web is the HTTP server in Drover's test image.
//
//	GET /            the version string and the hostname, "<version> <hostname>\n"
//	GET /healthz     "ok"; status 500 while the file named by -unhealthy-file exists
//	GET /burn?ms=N   spins one core for N milliseconds of CPU time, then answers
//	GET /fetch?url=U GETs U from inside the container and answers with its body (502 if it fails)
//	GET /lookup?host=H resolves H with the container's resolver, one address a line (502 if it fails)
//
// It listens on -addr, by default all addresses at $PORT (else 8080), and logs one line per
// request to stdout. The version comes from -version, else $VERSION, else
// "v1". Build it statically (CGO_ENABLED=0) to put it in an image, see
// image.Web.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	version := flag.String("version", envOr("VERSION", "v1"), "version string served at /")
	addr := flag.String("addr", ":"+envOr("PORT", "8080"), "address to listen on")
	unhealthy := flag.String("unhealthy-file", "", "while this file exists /healthz fails")
	flag.Parse()
	log.SetOutput(os.Stdout)
	log.SetFlags(0)

	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "%s %s\n", *version, host)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if *unhealthy != "" {
			if _, err := os.Stat(*unhealthy); err == nil {
				http.Error(w, "unhealthy", http.StatusInternalServerError)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/burn", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 || ms > 60000 {
			http.Error(w, "ms must be 0..60000", http.StatusBadRequest)
			return
		}
		used := burn(time.Duration(ms) * time.Millisecond)
		fmt.Fprintf(w, "burned %v\n", used)
	})
	mux.HandleFunc("/fetch", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL.Query().Get("url"), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	mux.HandleFunc("/lookup", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupHost(ctx, r.URL.Query().Get("host"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		for _, a := range addrs {
			fmt.Fprintln(w, a)
		}
	})
	srv := &http.Server{
		Handler:           logRequests(mux),
		ReadHeaderTimeout: 10 * time.Second,
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		log.Printf("web: shutting down")
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
	}()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Printf("web: %v", err)
		os.Exit(1)
	}
	log.Printf("web %s: listening on %s", *version, ln.Addr())
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Printf("web: %v", err)
		os.Exit(1)
	}
}

// burn keeps the CPU busy until the process has used d more CPU time (or a
// wall-clock bound of 10×d passes, if the CPU is throttled), and returns the
// CPU time used.
func burn(d time.Duration) time.Duration {
	start := cpuTime()
	deadline := time.Now().Add(10 * d)
	x := 1
	for cpuTime()-start < d && time.Now().Before(deadline) {
		for i := 0; i < 100000; i++ {
			x = x*31 + i
		}
	}
	_ = x
	return cpuTime() - start
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s %s", r.RemoteAddr, r.Method, r.URL.RequestURI())
		h.ServeHTTP(w, r)
	})
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
