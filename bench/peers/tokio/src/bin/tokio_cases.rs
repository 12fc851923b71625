//! tokio_cases — the Tokio 1.24 versions of green_bench's scheduler and sync
//! cases (bench/green_bench.cpp, scheduler_cases.cpp, sync_cases.cpp), for
//! the side-by-side suite. It mirrors bench/peers/go/sched_cases.go: one case
//! per run, one line of output in the same format:
//!
//!     tokio_cases -workers 2 -case spawn_join -n 100000
//!     case=spawn_join workers=2 n=100000 ns_per_op=312.4 cold_ns_per_op=401.7
//!
//! workers is the multi-threaded runtime's worker_threads (-workers W, or
//! TOKIO_WORKER_THREADS, or the CPUs). Every case body runs in a task spawned
//! on the runtime, so its spawns and wakes happen on a worker thread, as
//! green's rt.run and Go's main goroutine do (block_on's future runs on the
//! calling thread, which is not a worker). Every line has case=, workers=,
//! n= and one headline figure: ns_per_op for the timing cases, ms for skynet
//! and bytes_per_task for memory; extra key=value fields follow. A wrong
//! result prints "tokio_cases: ..." on stderr and exits 1; a bad argument
//! exits 2.
//!
//! Cases (-n, default in brackets; the suite passes green's counts):
//!
//!   spawn_join     [100000] tokio::spawn of an empty task, in batches of
//!                  1,000, each batch's JoinHandles awaited in turn;
//!                  ns_per_op is the median of 5 warm passes, cold_ns_per_op
//!                  the first pass in the process.
//!   yield          [1000000] two tasks each calling tokio::task::yield_now()
//!                  n times; ns per yield. Tokio cannot pin a task to a
//!                  worker, so, like Go's GOMAXPROCS(1), it runs on a
//!                  current_thread runtime (runtime=current_thread). In Tokio
//!                  1.24 yield_now defers the task until the scheduler has
//!                  polled its I/O driver without blocking: that poll (one
//!                  epoll_wait per round of the two tasks) is part of the cost.
//!   handoff_same   [500000] one-way hand-off between two tasks: a ping-pong
//!                  of two tokio::sync::Notify, each used as a baton
//!                  (notify_one stores a permit if its waiter is not there
//!                  yet: the park/unpark analog); ns per one-way hand-off.
//!                  On a current_thread runtime, as for yield.
//!   handoff_cross  [250000] the same ping-pong on the W-worker runtime
//!                  (needs >= 2). Tokio cannot pin either side: a task woken
//!                  from a worker goes into that worker's LIFO slot unless an
//!                  idle worker steals it, so this is "a hand-off with W
//!                  workers to spare", as in the Go version, not a hand-off
//!                  forced across workers.
//!   queue_same     [500000] the same two tasks through two
//!                  tokio::sync::mpsc channels of capacity 1 (the Queue
//!                  analog; each item checked). current_thread runtime.
//!   queue_cross    [250000] queue_same on the W-worker runtime (>= 2), with
//!                  the placement caveat of handoff_cross.
//!   skynet         [1000000] leaves: a 10-ary tree of tasks, each node
//!                  spawning its 10 children with tokio::spawn and awaiting
//!                  their JoinHandles (green's Greenlet::get); ms for the
//!                  tree.
//!   lock           [1000] acquisitions per task by -threads [1000] tasks,
//!                  each taking a tokio::sync::Mutex around an increment; ns
//!                  per acquisition (green: 1,000 green threads x 1,000, 200
//!                  in --quick).
//!   pool_map       [1000000] inputs mapped through f(x) = x+1 the way
//!                  green's Pool(-pool [1000]).map does it: a
//!                  tokio::sync::Semaphore of 1,000 permits, a task spawned
//!                  per input once a permit is free, which stores f(x) at the
//!                  input's index (results in order) and gives the permit
//!                  back; the end is acquiring all 1,000 permits. ns per call.
//!   memory         [100000] tasks, each spawned and then parked on one
//!                  shared tokio::sync::Notify (notify_waiters at the end:
//!                  the Event analog); their JoinHandles are kept and awaited
//!                  at the end. bytes_per_task is the growth of peak RSS
//!                  (VmHWM in /proc/self/status) over n, less the vector of
//!                  handles (as green's case leaves out its vector);
//!                  rss_bytes_per_task the same for VmRSS. Run it alone in
//!                  its process (VmHWM is the process's peak), at 100000 and
//!                  1000000. A parked task is its future's state machine in
//!                  a heap-allocated task cell: no stack.

use green_tokio_peers::{current_thread, multi_thread, Args};
use std::future::Future;
use std::pin::Pin;
use std::process::exit;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, Mutex, Notify, Semaphore};
use tokio::task::JoinHandle;

const BATCH: usize = 1000; // spawn_join: tasks started before joining, like green's kBatch

fn fail(what: &str) -> ! {
    eprintln!("tokio_cases: {what}");
    exit(1);
}

fn ns_per(start: Instant, ops: f64) -> f64 {
    start.elapsed().as_nanos() as f64 / ops
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
}

/// Runs a case body in a task on rt (so it runs on a worker) and returns its
/// result.
fn run<T: Send + 'static>(rt: &Runtime, body: impl Future<Output = T> + Send + 'static) -> T {
    rt.block_on(async move { tokio::spawn(body).await.expect("case task") })
}

async fn spawn_join(n: usize) -> f64 {
    let mut handles: Vec<JoinHandle<()>> = Vec::with_capacity(BATCH);
    let start = Instant::now();
    for _ in (0..n).step_by(BATCH) {
        for _ in 0..BATCH {
            handles.push(tokio::spawn(async {}));
        }
        for h in handles.drain(..) {
            h.await.expect("join");
        }
    }
    ns_per(start, n as f64)
}

async fn yield_pair(n: usize) -> f64 {
    let body = move || async move {
        for _ in 0..n {
            tokio::task::yield_now().await;
        }
    };
    let start = Instant::now();
    let (a, b) = (tokio::spawn(body()), tokio::spawn(body()));
    a.await.unwrap();
    b.await.unwrap();
    ns_per(start, 2.0 * n as f64)
}

async fn hand_off(n: usize) -> f64 {
    let (to_a, to_b) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let start = Instant::now();
    let a = {
        let (to_a, to_b) = (to_a.clone(), to_b.clone());
        tokio::spawn(async move {
            for _ in 0..n {
                to_b.notify_one();
                to_a.notified().await;
            }
        })
    };
    let b = tokio::spawn(async move {
        for _ in 0..n {
            to_b.notified().await;
            to_a.notify_one();
        }
    });
    a.await.unwrap();
    b.await.unwrap();
    ns_per(start, 2.0 * n as f64) // one-way hand-offs
}

async fn queue_ping_pong(n: usize) -> f64 {
    let (to_b, mut from_a) = mpsc::channel::<usize>(1);
    let (to_a, mut from_b) = mpsc::channel::<usize>(1);
    let start = Instant::now();
    let a = tokio::spawn(async move {
        for i in 0..n {
            to_b.send(i).await.unwrap();
            if from_b.recv().await != Some(i) {
                fail("queue ping-pong: wrong item");
            }
        }
    });
    let b = tokio::spawn(async move {
        for _ in 0..n {
            let v = from_a.recv().await.unwrap();
            to_a.send(v).await.unwrap();
        }
    });
    a.await.unwrap();
    b.await.unwrap();
    ns_per(start, 2.0 * n as f64)
}

fn skynet(num: i64, size: i64, div: i64) -> Pin<Box<dyn Future<Output = i64> + Send>> {
    Box::pin(async move {
        if size == 1 {
            return num;
        }
        let sub = size / div;
        let children: Vec<JoinHandle<i64>> =
            (0..div).map(|i| tokio::spawn(skynet(num + i * sub, sub, div))).collect();
        let mut sum = 0;
        for c in children {
            sum += c.await.unwrap();
        }
        sum
    })
}

async fn contended_lock(threads: usize, per_thread: usize) -> f64 {
    let counter = Arc::new(Mutex::new(0usize));
    let start = Instant::now();
    let tasks: Vec<JoinHandle<()>> = (0..threads)
        .map(|_| {
            let counter = counter.clone();
            tokio::spawn(async move {
                for _ in 0..per_thread {
                    *counter.lock().await += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let ns = ns_per(start, (threads * per_thread) as f64);
    if *counter.lock().await != threads * per_thread {
        fail("contended lock: lost increments");
    }
    ns
}

async fn pool_map(n: usize, pool: usize) -> f64 {
    let input: Arc<Vec<i64>> = Arc::new((0..n as i64).collect());
    let start = Instant::now();
    // Each slot is written by one task; the final acquire of every permit
    // orders those writes before the reads below.
    let out: Arc<Vec<AtomicI64>> = Arc::new((0..n).map(|_| AtomicI64::new(0)).collect());
    let sem = Arc::new(Semaphore::new(pool));
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (input, out) = (input.clone(), out.clone());
        tokio::spawn(async move {
            out[i].store(input[i] + 1, Ordering::Relaxed);
            drop(permit);
        });
    }
    let _all = sem.acquire_many(pool as u32).await.unwrap();
    let ns = ns_per(start, n as f64);
    if out[0].load(Ordering::Relaxed) != 1 || out[n - 1].load(Ordering::Relaxed) != n as i64 {
        fail("pool_map: wrong results");
    }
    ns
}

/// A "Key:   123 kB" line of /proc/self/status, in bytes.
fn status_bytes(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_else(|e| fail(&e.to_string()));
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
            let kb: f64 = rest.trim().trim_end_matches(" kB").parse().unwrap_or_else(|_| fail(line));
            return kb * 1024.0;
        }
    }
    fail(&format!("no {key} in /proc/self/status"));
}

/// Peak RSS and RSS growth per parked task.
async fn memory(n: usize) -> (f64, f64) {
    tokio::spawn(async {}).await.unwrap(); // warm the runtime's own structures
    let (hwm0, rss0) = (status_bytes("VmHWM"), status_bytes("VmRSS"));
    let event = Arc::new(Notify::new());
    let waiting = Arc::new(AtomicUsize::new(0));
    let mut parked: Vec<JoinHandle<()>> = Vec::with_capacity(n);
    let handles = (parked.capacity() * std::mem::size_of::<JoinHandle<()>>()) as f64;
    for _ in 0..n {
        let (event, waiting) = (event.clone(), waiting.clone());
        parked.push(tokio::spawn(async move {
            let notified = event.notified();
            tokio::pin!(notified);
            notified.as_mut().enable(); // now notify_waiters reaches it
            waiting.fetch_add(1, Ordering::Release);
            notified.await; // parked until the event is set
        }));
    }
    while waiting.load(Ordering::Acquire) < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (hwm1, rss1) = (status_bytes("VmHWM"), status_bytes("VmRSS"));
    event.notify_waiters();
    for p in parked {
        p.await.unwrap();
    }
    ((hwm1 - hwm0 - handles) / n as f64, (rss1 - rss0 - handles) / n as f64)
}

fn main() {
    let args = Args::parse(
        "tokio_cases",
        &["case", "n", "workers", "threads", "pool"],
        "usage: tokio_cases -case NAME [-n N] [-workers W] [-threads T (1000)] [-pool P (1000)]\n\
         NAME: spawn_join, yield, handoff_same, handoff_cross, queue_same, queue_cross,\n\
         \x20     skynet, lock, pool_map or memory (see the top of tokio_cases.rs)",
    );
    let name = args.string("case", "");
    let default_n = match name.as_str() {
        "spawn_join" => 100_000,
        "yield" => 1_000_000,
        "handoff_same" | "queue_same" => 500_000,
        "handoff_cross" | "queue_cross" => 250_000,
        "skynet" => 1_000_000,
        "lock" => 1000,
        "pool_map" => 1_000_000,
        "memory" => 100_000,
        _ => {
            eprintln!("tokio_cases: unknown -case {name:?} (try -help)");
            exit(2);
        }
    };
    let n: usize = args.get("n", default_n);
    let threads: usize = args.get("threads", 1000);
    let pool: usize = args.get("pool", 1000);
    let workers = args.workers();
    if n < 1 || threads < 1 || pool < 1 {
        eprintln!("tokio_cases: -n, -threads and -pool must be >= 1");
        exit(2);
    }
    let head = format!("case={name} workers={workers} n={n}");
    let need_two = || {
        if workers < 2 {
            eprintln!("tokio_cases: {name} needs -workers >= 2");
            exit(2);
        }
    };
    // The runtime each case runs on: W workers, or one thread where Go's
    // version runs under GOMAXPROCS(1).
    let multi = || multi_thread(workers);
    match name.as_str() {
        "spawn_join" => {
            if n % BATCH != 0 {
                fail(&format!("spawn_join: -n must be a multiple of {BATCH}"));
            }
            let rt = multi();
            let cold = run(&rt, spawn_join(n));
            let warm: Vec<f64> = (0..5).map(|_| run(&rt, spawn_join(n))).collect();
            println!("{head} ns_per_op={:.1} cold_ns_per_op={cold:.1}", median(warm));
        }
        "yield" => println!("{head} ns_per_op={:.1} runtime=current_thread", run(&current_thread(), yield_pair(n))),
        "handoff_same" => {
            println!("{head} ns_per_op={:.1} runtime=current_thread", run(&current_thread(), hand_off(n)))
        }
        "handoff_cross" => {
            need_two();
            println!("{head} ns_per_op={:.1}", run(&multi(), hand_off(n)));
        }
        "queue_same" => {
            println!("{head} ns_per_op={:.1} runtime=current_thread", run(&current_thread(), queue_ping_pong(n)))
        }
        "queue_cross" => {
            need_two();
            println!("{head} ns_per_op={:.1}", run(&multi(), queue_ping_pong(n)));
        }
        "skynet" => {
            let mut l = n;
            while l > 1 {
                if l % 10 != 0 {
                    fail("skynet: -n must be a power of 10");
                }
                l /= 10;
            }
            let rt = multi();
            let start = Instant::now();
            let sum = run(&rt, skynet(0, n as i64, 10));
            let ms = start.elapsed().as_nanos() as f64 / 1e6;
            if sum != (n as i64) * (n as i64 - 1) / 2 {
                fail(&format!("skynet: wrong sum {sum}"));
            }
            println!("{head} ms={ms:.1}");
        }
        "lock" => println!("{head} ns_per_op={:.1} threads={threads}", run(&multi(), contended_lock(threads, n))),
        "pool_map" => println!("{head} ns_per_op={:.1} pool={pool}", run(&multi(), pool_map(n, pool))),
        "memory" => {
            let (hwm, rss) = run(&multi(), memory(n));
            println!("{head} bytes_per_task={hwm:.0} rss_bytes_per_task={rss:.0}");
        }
        _ => unreachable!(),
    }
}
