// echo_server.go — the plain Go echo server green's echo benchmark compares
// against: one goroutine per connection, Read then Write, TCP_NODELAY on
// (Go's default). GOMAXPROCS sets the number of worker threads.
//
//	go run echo_server.go -port 6001
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 16*1024)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func main() {
	port := flag.Int("port", 6001, "TCP port (0 picks a free one)")
	flag.Parse()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo_server.go:", err)
		os.Exit(1)
	}
	fmt.Printf("echo_server.go: listening on %s with GOMAXPROCS=%d\n", ln.Addr(), runtime.GOMAXPROCS(0))
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "echo_server.go:", err)
			os.Exit(1)
		}
		go serve(c)
	}
}
