// sched_cases.go — the Go 1.19 versions of green_bench's scheduler and sync
// cases (bench/green_bench.cpp, scheduler_cases.cpp, sync_cases.cpp), for
// the side-by-side suite. One case per run, one line of output:
//
//	GOMAXPROCS=2 go run sched_cases.go -case spawn_join -n 100000
//	case=spawn_join workers=2 n=100000 ns_per_op=312.4 cold_ns_per_op=401.7
//
// workers is GOMAXPROCS (the suite sets it from the environment, like
// green's --workers). Every line has case=, workers=, n= and one headline
// figure: ns_per_op for the timing cases, ms for skynet and
// bytes_per_goroutine for memory; extra key=value fields follow. A wrong
// result prints "sched_cases: ..." on stderr and exits 1.
//
// Cases (-n, default in brackets; the suite passes green's counts):
//
//	spawn_join     [100000] goroutines started in batches of 1,000, each
//	               batch waited for with a sync.WaitGroup (Go has no join
//	               handle); ns_per_op is the median of 5 warm passes,
//	               cold_ns_per_op the first pass in the process.
//	yield          [1000000] two goroutines each calling runtime.Gosched()
//	               n times; ns per Gosched. Run under GOMAXPROCS(1) so they
//	               alternate on one P, like green's two threads pinned on
//	               worker 0 (with two Ps they would run side by side).
//	handoff_same   [500000] one-way hand-off through unbuffered channels
//	               (a ping-pong of chan struct{}: the park/unpark analog);
//	               ns per one-way hand-off. Go cannot pin a goroutine, so
//	               "same worker" is made by running it under GOMAXPROCS(1).
//	handoff_cross  [250000] the same ping-pong at the process's GOMAXPROCS
//	               (needs >= 2). Go cannot pin either side to a P: the woken
//	               goroutine goes into the waker's P (runnext) unless an idle
//	               spinning P steals it, so this is "a hand-off with W Ps to
//	               spare", as close to green's cross-worker case as Go gets,
//	               not a hand-off forced across Ps.
//	queue_same     [500000] the same two as handoff_same through chan int
//	               with a buffer of 1 (the Queue analog; each item checked).
//	queue_cross    [250000] queue_same at the process's GOMAXPROCS (>= 2),
//	               with the placement caveat of handoff_cross.
//	skynet         [1000000] leaves: a 10-ary tree of goroutines, each
//	               leaf sending its number to its parent on a channel with a
//	               buffer of 10 (a child never waits for its parent, like a
//	               finished green thread awaiting join); ms for the tree.
//	lock           [1000] acquisitions per goroutine by -threads [1000]
//	               goroutines, each taking a sync.Mutex around an increment;
//	               ns per acquisition (green: 1,000 green threads x 1,000,
//	               200 in --quick).
//	pool_map       [1000000] inputs mapped by a fixed pool of -pool [1000]
//	               goroutines taking indices from a channel and storing
//	               f(x) = x+1 at the input's index (results in order); ns per
//	               call (green: Pool(1000).map).
//	memory         [100000] goroutines, each started and then blocked on one
//	               shared channel (closed at the end: the Event analog).
//	               bytes_per_goroutine is the growth of peak RSS (VmHWM in
//	               /proc/self/status) over n; sys_bytes_per_goroutine the
//	               growth of runtime.MemStats.Sys over n. Run it alone in its
//	               process (VmHWM is the process's peak), at 100000 and
//	               1000000.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const batch = 1000 // spawn_join: goroutines started before waiting, like green's kBatch

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "sched_cases: "+format+"\n", args...)
	os.Exit(1)
}

func nsPer(start time.Time, ops float64) float64 {
	return float64(time.Since(start).Nanoseconds()) / ops
}

func median(v []float64) float64 {
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// onOneP runs f under GOMAXPROCS(1): the only way to put two goroutines on
// one worker in Go.
func onOneP(f func() float64) float64 {
	old := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(old)
	return f()
}

func spawnJoin(n int) float64 {
	start := time.Now()
	var wg sync.WaitGroup
	for done := 0; done < n; done += batch {
		wg.Add(batch)
		for i := 0; i < batch; i++ {
			go wg.Done()
		}
		wg.Wait()
	}
	return nsPer(start, float64(n))
}

func yieldPair(n int) float64 {
	var wg sync.WaitGroup
	wg.Add(2)
	body := func() {
		for i := 0; i < n; i++ {
			runtime.Gosched()
		}
		wg.Done()
	}
	start := time.Now()
	go body()
	go body()
	wg.Wait()
	return nsPer(start, 2*float64(n))
}

func handOff(n int) float64 {
	toA, toB := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	start := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			toB <- struct{}{}
			<-toA
		}
		close(done)
	}()
	go func() {
		for i := 0; i < n; i++ {
			<-toB
			toA <- struct{}{}
		}
	}()
	<-done
	return nsPer(start, 2*float64(n)) // one-way hand-offs
}

func queuePingPong(n int) float64 {
	toA, toB := make(chan int, 1), make(chan int, 1)
	done := make(chan struct{})
	start := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			toB <- i
			if <-toA != i {
				fail("queue ping-pong: wrong item")
			}
		}
		close(done)
	}()
	go func() {
		for i := 0; i < n; i++ {
			toA <- <-toB
		}
	}()
	<-done
	return nsPer(start, 2*float64(n))
}

func skynet(out chan<- int, num, size, div int) {
	if size == 1 {
		out <- num
		return
	}
	children := make(chan int, div)
	sub := size / div
	for i := 0; i < div; i++ {
		go skynet(children, num+i*sub, sub, div)
	}
	sum := 0
	for i := 0; i < div; i++ {
		sum += <-children
	}
	out <- sum
}

func contendedLock(threads, perThread int) float64 {
	var mu sync.Mutex
	counter := 0 // guarded by mu
	var wg sync.WaitGroup
	wg.Add(threads)
	start := time.Now()
	for t := 0; t < threads; t++ {
		go func() {
			for i := 0; i < perThread; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	ns := nsPer(start, float64(threads)*float64(perThread))
	if counter != threads*perThread {
		fail("contended lock: lost increments")
	}
	return ns
}

func poolMap(n, poolSize int) float64 {
	in := make([]int, n)
	for i := range in {
		in[i] = i
	}
	start := time.Now()
	out := make([]int, n)
	jobs := make(chan int, poolSize)
	var wg sync.WaitGroup
	wg.Add(poolSize)
	for p := 0; p < poolSize; p++ {
		go func() {
			for i := range jobs {
				out[i] = in[i] + 1
			}
			wg.Done()
		}()
	}
	for i := range in {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	ns := nsPer(start, float64(n))
	if out[0] != 1 || out[n-1] != n {
		fail("pool_map: wrong results")
	}
	return ns
}

// vmHWM is the process's peak resident set, in bytes.
func vmHWM() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		fail("%v", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if line := s.Text(); strings.HasPrefix(line, "VmHWM:") { // "VmHWM:  12345 kB"
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(line[6:]), " kB"), 10, 64)
			if err != nil {
				fail("VmHWM: %v", err)
			}
			return kb * 1024
		}
	}
	fail("no VmHWM in /proc/self/status")
	return 0
}

func memSys() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Sys
}

// memory returns the peak RSS and Sys growth per parked goroutine.
func memory(n int) (rss, sys float64) {
	runtime.GC()
	hwm0, sys0 := vmHWM(), memSys()
	event := make(chan struct{})
	var started, finished sync.WaitGroup
	started.Add(n)
	finished.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-event // parked until the event is set
			finished.Done()
		}()
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond) // the last ones reach <-event
	hwm1, sys1 := vmHWM(), memSys()
	close(event)
	finished.Wait()
	return float64(hwm1-hwm0) / float64(n), float64(sys1-sys0) / float64(n)
}

func main() {
	name := flag.String("case", "", "spawn_join, yield, handoff_same, handoff_cross, queue_same, queue_cross, skynet, lock, pool_map or memory")
	n := flag.Int("n", 0, "size of the case (0: its default; see the top of sched_cases.go)")
	threads := flag.Int("threads", 1000, "lock: goroutines taking the mutex")
	pool := flag.Int("pool", 1000, "pool_map: goroutines in the pool")
	flag.Parse()
	defaults := map[string]int{"spawn_join": 100000, "yield": 1000000, "handoff_same": 500000,
		"handoff_cross": 250000, "queue_same": 500000, "queue_cross": 250000, "skynet": 1000000,
		"lock": 1000, "pool_map": 1000000, "memory": 100000}
	def, known := defaults[*name]
	if !known {
		fmt.Fprintf(os.Stderr, "sched_cases: unknown -case %q (try -help)\n", *name)
		os.Exit(2)
	}
	if *n == 0 {
		*n = def
	}
	if *n < 1 || *threads < 1 || *pool < 1 {
		fmt.Fprintln(os.Stderr, "sched_cases: -n, -threads and -pool must be >= 1")
		os.Exit(2)
	}
	workers := runtime.GOMAXPROCS(0)
	head := fmt.Sprintf("case=%s workers=%d n=%d", *name, workers, *n)
	needTwo := func() {
		if workers < 2 {
			fmt.Fprintf(os.Stderr, "sched_cases: %s needs GOMAXPROCS >= 2\n", *name)
			os.Exit(2)
		}
	}
	switch *name {
	case "spawn_join":
		if *n%batch != 0 {
			fail("spawn_join: -n must be a multiple of %d", batch)
		}
		cold := spawnJoin(*n)
		var warm []float64
		for k := 0; k < 5; k++ {
			warm = append(warm, spawnJoin(*n))
		}
		fmt.Printf("%s ns_per_op=%.1f cold_ns_per_op=%.1f\n", head, median(warm), cold)
	case "yield":
		fmt.Printf("%s ns_per_op=%.1f gomaxprocs_during=1\n", head, onOneP(func() float64 { return yieldPair(*n) }))
	case "handoff_same":
		fmt.Printf("%s ns_per_op=%.1f gomaxprocs_during=1\n", head, onOneP(func() float64 { return handOff(*n) }))
	case "handoff_cross":
		needTwo()
		fmt.Printf("%s ns_per_op=%.1f\n", head, handOff(*n))
	case "queue_same":
		fmt.Printf("%s ns_per_op=%.1f gomaxprocs_during=1\n", head, onOneP(func() float64 { return queuePingPong(*n) }))
	case "queue_cross":
		needTwo()
		fmt.Printf("%s ns_per_op=%.1f\n", head, queuePingPong(*n))
	case "skynet":
		leaves := *n
		for l := leaves; l > 1; l /= 10 {
			if l%10 != 0 {
				fail("skynet: -n must be a power of 10")
			}
		}
		out := make(chan int, 1)
		start := time.Now()
		go skynet(out, 0, leaves, 10)
		sum := <-out
		ms := float64(time.Since(start).Nanoseconds()) / 1e6
		if sum != leaves*(leaves-1)/2 {
			fail("skynet: wrong sum %d", sum)
		}
		fmt.Printf("%s ms=%.1f\n", head, ms)
	case "lock":
		fmt.Printf("%s ns_per_op=%.1f threads=%d\n", head, contendedLock(*threads, *n), *threads)
	case "pool_map":
		fmt.Printf("%s ns_per_op=%.1f pool=%d\n", head, poolMap(*n, *pool), *pool)
	case "memory":
		rss, sys := memory(*n)
		fmt.Printf("%s bytes_per_goroutine=%.0f sys_bytes_per_goroutine=%.0f\n", head, rss, sys)
	}
}
