// chat_server.go — the plain Go chat server green's chat benchmark compares
// against. It speaks exactly the protocol of examples/chat_server.cpp:
//
//   - the server says "Welcome! What is your name?"; the first line is the
//     name; an empty, over-long (> 32 bytes) or taken name gets a message
//     and a new prompt;
//   - "## <name> joined from <ip>." goes to everybody (the new user too);
//   - every later line goes to every other user as "<name>> <text>";
//   - "## <name> left the chat." goes to the others when the user leaves;
//   - a line longer than -max-line bytes is dropped and its sender gets
//     "## line rejected: longer than N bytes.";
//   - a user whose queue holds -max-queue lines (it reads slower than the
//     room talks) gets what is queued, then "## you are not reading fast
//     enough: disconnected.", and is disconnected; once dropped, a user has
//     -grace seconds to take the rest (a write deadline), then it is cut off
//     (the C++ server starts its grace at the first stalled send after the
//     drop, this one at the drop: the same bound, a little stricter);
//   - SIGINT/SIGTERM: "## the server is shutting down." to all, then stop.
//
// Written the plain Go way: a reader goroutine (the connection's handler)
// and a writer goroutine per user, a buffered channel per user between
// them, the users map under a sync.RWMutex (broadcasts take the read lock;
// joins and leaves the write lock), TCP_NODELAY on (Go's default). The
// writer drains: it takes one line, then appends every line already queued
// in its channel to one buffer and does one Write, as the C++ server does.
//
// A user's channel is never closed (broadcasters send to it concurrently,
// and a send on a closed channel panics); dropping a user closes its `done`
// channel instead, and the writer then flushes what is queued and stops.
// GOMAXPROCS (from the environment) sets the number of worker threads.
//
//	GOMAXPROCS=2 go run chat_server.go -port 7000
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const maxName = 32

var (
	maxLine  = flag.Int("max-line", 4096, "longest accepted line, in bytes (without its line ending)")
	maxQueue = flag.Int("max-queue", 100000, "lines queued for one slow user before it is dropped")
	grace    = flag.Float64("grace", 2, "seconds a dropped user has to take what is on its way")
)

type user struct {
	name     string
	conn     *net.TCPConn
	out      chan string   // lines for this user's writer; never closed
	done     chan struct{} // closed once the user is dropped
	once     sync.Once
	dropped  atomic.Bool // no more lines are queued for it
	tooSlow  atomic.Bool // dropped because its queue was full
	finished chan struct{}
}

type room struct {
	mu    sync.RWMutex
	users map[string]*user
}

// join adds a user unless the name is taken.
func (r *room) join(name string, c *net.TCPConn) *user {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, taken := r.users[name]; taken {
		return nil
	}
	u := &user{name: name, conn: c, out: make(chan string, *maxQueue), done: make(chan struct{}),
		finished: make(chan struct{})}
	r.users[name] = u
	return u
}

func (r *room) leave(name string) {
	r.mu.Lock()
	delete(r.users, name)
	r.mu.Unlock()
}

// offer queues a line for u without blocking; a full queue drops u.
func (r *room) offer(u *user, line string) {
	select {
	case u.out <- line:
	default:
		u.tooSlow.Store(true)
		r.drop(u)
	}
}

// broadcast queues line for every user but skip.
func (r *room) broadcast(line string, skip *user) {
	r.mu.RLock()
	for _, u := range r.users {
		if u != skip && !u.dropped.Load() {
			r.offer(u, line)
		}
	}
	r.mu.RUnlock()
}

// drop stops queueing lines for u; its writer sends what it has (within the
// grace) and disconnects.
func (r *room) drop(u *user) {
	u.once.Do(func() {
		u.dropped.Store(true)
		u.conn.SetWriteDeadline(time.Now().Add(time.Duration(*grace * float64(time.Second))))
		close(u.done)
	})
}

func (r *room) dropAll() {
	r.mu.RLock()
	for _, u := range r.users {
		r.drop(u)
	}
	r.mu.RUnlock()
}

// drain appends every line already queued for u to buf.
func drain(u *user, buf []byte) []byte {
	for {
		select {
		case line := <-u.out:
			buf = append(buf, line...)
		default:
			return buf
		}
	}
}

// writer sends everything queued in one Write, until the user is dropped.
func writer(u *user, c *net.TCPConn) {
	defer close(u.finished)
	var buf []byte
	var err error
	for err == nil {
		select {
		case line := <-u.out:
			buf = drain(u, append(buf[:0], line...))
			_, err = c.Write(buf)
		case <-u.done:
			if buf = drain(u, buf[:0]); len(buf) > 0 {
				_, err = c.Write(buf)
			}
			if err == nil && u.tooSlow.Load() {
				c.Write([]byte("## you are not reading fast enough: disconnected.\n"))
			}
			err = io.EOF // done
		}
	}
	c.CloseRead() // with CloseWrite, shutdown(SHUT_RDWR): ends the reader's loop
	c.CloseWrite()
}

var errTooLong = errors.New("line too long")

// readLine is green::Stream::read_line on a bufio.Reader whose buffer holds
// maxLine+2 bytes: the next line with its '\n'; errTooLong once that many
// bytes came without one (they are consumed); the rest of the stream at its
// end; io.EOF after that.
func readLine(r *bufio.Reader) (string, error) {
	b, err := r.ReadSlice('\n')
	switch {
	case err == nil:
		return string(b), nil
	case err == bufio.ErrBufferFull:
		return "", errTooLong
	case len(b) > 0 && err == io.EOF:
		return string(b), nil
	}
	return "", err
}

func askName(r *bufio.Reader, c *net.TCPConn, rm *room) (*user, string) {
	tooLong := "That name is too long (at most " + strconv.Itoa(maxName) + " bytes). Name?\n"
	c.Write([]byte("Welcome! What is your name?\n"))
	for {
		line, err := readLine(r)
		if err == errTooLong {
			for err == errTooLong { // skip the rest of it
				_, err = readLine(r)
			}
			if err != nil {
				return nil, ""
			}
			c.Write([]byte(tooLong))
			continue
		}
		if err != nil {
			return nil, ""
		}
		name := strings.TrimRight(line, "\r\n")
		var u *user
		switch {
		case name == "":
			c.Write([]byte("A name cannot be empty. Name?\n"))
		case len(name) > maxName:
			c.Write([]byte(tooLong))
		default:
			if u = rm.join(name, c); u == nil {
				c.Write([]byte("The name " + name + " is taken. Name?\n"))
			} else {
				return u, name
			}
		}
	}
}

func handle(c *net.TCPConn, rm *room) {
	defer c.Close()
	r := bufio.NewReaderSize(c, *maxLine+2)
	u, name := askName(r, c, rm)
	if u == nil {
		return
	}
	host := c.RemoteAddr().String()
	host = host[:strings.LastIndexByte(host, ':')]
	rm.broadcast("## "+name+" joined from "+host+".\n", nil)
	go writer(u, c)
	skipping := false // inside an over-long line: drop up to its end
	for {
		line, err := readLine(r)
		if err == errTooLong {
			if !skipping {
				skipping = true
				rm.offer(u, "## line rejected: longer than "+strconv.Itoa(*maxLine)+" bytes.\n")
			}
			continue
		}
		if err != nil {
			break // end of stream, reset by the peer, or shut down by the writer
		}
		if skipping {
			skipping = line[len(line)-1] != '\n'
			continue
		}
		if line[len(line)-1] != '\n' {
			line += "\n" // the last line of a closed stream
		}
		rm.broadcast(name+"> "+line, u)
	}
	rm.leave(name)
	rm.drop(u) // the writer flushes and ends
	<-u.finished
	rm.broadcast("## "+name+" left the chat.\n", nil)
}

func main() {
	host := flag.String("host", "0.0.0.0", "address to listen on")
	port := flag.Int("port", 7000, "TCP port (0 picks a free one)")
	flag.Parse()
	if *maxLine < 1 || *maxQueue < 1 || *grace < 0 {
		fmt.Fprintln(os.Stderr, "chat_server.go: bad arguments")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "chat_server.go:", err)
		os.Exit(1)
	}
	rm := &room{users: map[string]*user{}}
	var handlers sync.WaitGroup
	var stopping atomic.Bool
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		stopping.Store(true)
		rm.broadcast("## the server is shutting down.\n", nil)
		rm.dropAll()
		ln.Close()
	}()
	fmt.Printf("chat_server.go: listening on %s with GOMAXPROCS=%d\n", ln.Addr(), runtime.GOMAXPROCS(0))
	for {
		c, err := ln.Accept()
		if err != nil {
			if stopping.Load() {
				break
			}
			fmt.Fprintln(os.Stderr, "chat_server.go:", err)
			os.Exit(1)
		}
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			handle(c.(*net.TCPConn), rm)
		}()
	}
	finished := make(chan struct{})
	go func() { handlers.Wait(); close(finished) }()
	select { // like the C++ server's stop(1s)
	case <-finished:
	case <-time.After(time.Second):
	}
}
