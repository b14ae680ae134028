package process_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// modeEnv makes the test binary act as a container's program (see
// testProgram) instead of running the tests.
const modeEnv = "PROCESS_TEST_MODE"

func TestMain(m *testing.M) {
	if mode := os.Getenv(modeEnv); mode != "" {
		os.Exit(testProgram(mode))
	}
	os.Exit(m.Run())
}

// testProgram is what test containers run: the test binary itself with
// PROCESS_TEST_MODE set.
func testProgram(mode string) int {
	switch mode {
	case "exit": // one line on each stream, then exit with $CODE
		fmt.Println("to stdout")
		fmt.Fprintln(os.Stderr, "to stderr")
		code, _ := strconv.Atoi(os.Getenv("CODE"))
		return code
	case "term": // exit 0 on SIGTERM
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		fmt.Println("waiting for SIGTERM")
		<-ch
		fmt.Println("got SIGTERM")
		return 0
	case "ignore": // ignore SIGTERM
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		select {}
	case "busy": // burn CPU
		x := 0
		for {
			x++
		}
	case "hog": // allocate and touch memory until killed
		var keep [][]byte
		for i := 0; ; i++ {
			b := make([]byte, 8<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
			fmt.Printf("%d MiB\n", 8*(i+1))
		}
	case "tick": // a line every 20ms
		for i := 0; ; i++ {
			fmt.Printf("tick %d\n", i)
			time.Sleep(20 * time.Millisecond)
		}
	case "serve": // answer each connection on $POD_IP:$PORT with a greeting
		ln, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("POD_IP"), os.Getenv("PORT")))
		if err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println("listening on", ln.Addr())
		for {
			c, err := ln.Accept()
			if err != nil {
				return 1
			}
			fmt.Fprintf(c, "hello from %s\n", os.Getenv("NAME"))
			c.Close()
		}
	case "dial": // read the greeting from $POD_IP:$PORT, retrying for 20s
		deadline := time.Now().Add(20 * time.Second)
		for {
			c, err := net.Dial("tcp", net.JoinHostPort(os.Getenv("POD_IP"), os.Getenv("PORT")))
			if err == nil {
				line, err := bufio.NewReader(c).ReadString('\n')
				c.Close()
				if err == nil {
					fmt.Print("got: ", line)
					return 0
				}
			}
			if time.Now().After(deadline) {
				fmt.Println("dial:", err)
				return 1
			}
			time.Sleep(20 * time.Millisecond)
		}
	case "agent": // run a ticking container with a runtime of our own, then exit
		return agentProgram()
	}
	fmt.Fprintln(os.Stderr, "unknown mode", mode)
	return 2
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
