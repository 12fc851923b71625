//! tokio_chat_server — the plain Tokio chat server green's chat benchmark
//! (bench/chat_bench.sh, driven by examples/chat_load) compares against. It
//! speaks exactly the protocol of examples/chat_server.cpp and
//! bench/peers/go/chat_server.go:
//!
//!   - the server says "Welcome! What is your name?"; the first line is the
//!     name; an empty, over-long (> 32 bytes) or taken name gets a message
//!     and a new prompt;
//!   - "## <name> joined from <ip>." goes to everybody (the new user too);
//!   - every later line goes to every other user as "<name>> <text>";
//!   - "## <name> left the chat." goes to the others when the user leaves;
//!   - a line longer than -max-line bytes is dropped and its sender gets
//!     "## line rejected: longer than N bytes.";
//!   - a user whose queue holds -max-queue lines (it reads slower than the
//!     room talks) gets what is queued, then "## you are not reading fast
//!     enough: disconnected.", and is disconnected; once dropped, a user has
//!     -grace seconds (from the drop, like the Go server) to take the rest,
//!     then it is cut off;
//!   - SIGINT/SIGTERM: "## the server is shutting down." to all, then stop.
//!
//! Written the plain Tokio way: a reader task (the connection's handler) and
//! a writer task per user, a bounded tokio::sync::mpsc channel per user
//! between them, the users map under a std::sync::RwLock (broadcasts take
//! the read lock and never await under it; joins and leaves take the write
//! lock), TCP_NODELAY on. A line is an Arc<[u8]> shared by every queue it is
//! in. The writer DRAINS: it awaits one line, then takes every line already
//! queued with try_recv into one buffer and does one write_all, as the C++
//! and Go servers do. `-workers W` sets worker_threads.
//!
//!     tokio_chat_server -port 7000 -workers 2
//!
//! What it measures, with chat_load: fan-out throughput (lines delivered per
//! second) and delivery latency of a runtime whose tasks hand lines to each
//! other through channels and write them to sockets.

use green_tokio_peers::{multi_thread, Args};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::Notify;
use tokio::time::Instant;

const MAX_NAME: usize = 32;
const TOO_SLOW: &[u8] = b"## you are not reading fast enough: disconnected.\n";

type Line = Arc<[u8]>;

struct Options {
    max_line: usize,
    max_queue: usize,
    grace: Duration,
}

struct User {
    out: mpsc::Sender<Line>,   // to this user's writer
    dropped: AtomicBool,       // no more lines are queued for it
    too_slow: AtomicBool,      // dropped because its queue was full
    cut_at: Mutex<Option<Instant>>, // set once, at the drop: the end of its grace
    done: Notify,              // notified at the drop
}

impl User {
    /// Resolves once the user has been dropped.
    async fn dropped(&self) {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable(); // registered before the flag is read
            if self.dropped.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

struct Room {
    users: RwLock<HashMap<Vec<u8>, Arc<User>>>,
    o: Options,
}

impl Room {
    /// Adds a user unless the name is taken; gives its writer's receiver.
    fn join(&self, name: &[u8]) -> Option<(Arc<User>, mpsc::Receiver<Line>)> {
        let mut users = self.users.write().unwrap();
        if users.contains_key(name) {
            return None;
        }
        let (tx, rx) = mpsc::channel(self.o.max_queue);
        let u = Arc::new(User {
            out: tx,
            dropped: AtomicBool::new(false),
            too_slow: AtomicBool::new(false),
            cut_at: Mutex::new(None),
            done: Notify::new(),
        });
        users.insert(name.to_vec(), u.clone());
        Some((u, rx))
    }

    fn leave(&self, name: &[u8]) {
        self.users.write().unwrap().remove(name);
    }

    /// Queues a line for u without waiting; a full queue drops u.
    fn offer(&self, u: &User, line: &Line) {
        if let Err(TrySendError::Full(_)) = u.out.try_send(line.clone()) {
            u.too_slow.store(true, Ordering::Relaxed);
            self.drop_user(u);
        } // Closed: its writer has ended (the connection broke); the reader leaves.
    }

    /// Queues line for every user but skip.
    fn broadcast(&self, line: Line, skip: Option<&User>) {
        let users = self.users.read().unwrap();
        for u in users.values() {
            let is_skip = skip.map_or(false, |s| std::ptr::eq(s, &**u));
            if !is_skip && !u.dropped.load(Ordering::Relaxed) {
                self.offer(u, &line);
            }
        }
    }

    /// Stops queueing lines for u; its writer sends what it has (within the
    /// grace) and disconnects.
    fn drop_user(&self, u: &User) {
        let mut cut_at = u.cut_at.lock().unwrap();
        if cut_at.is_some() {
            return; // dropped already
        }
        *cut_at = Some(Instant::now() + self.o.grace);
        u.dropped.store(true, Ordering::Release);
        drop(cut_at);
        u.done.notify_waiters();
    }

    fn drop_all(&self) {
        for u in self.users.read().unwrap().values() {
            self.drop_user(u);
        }
    }
}

/// Writes all of data. A user in the room may take as long as it likes (its
/// queue bound catches it if it falls behind); once it is dropped, the write
/// fails when its grace is over.
async fn send(u: &User, w: &mut OwnedWriteHalf, data: &[u8]) -> io::Result<()> {
    tokio::select! {
        r = w.write_all(data) => r,
        _ = async {
            u.dropped().await;
            let at = u.cut_at.lock().unwrap().expect("set at the drop");
            tokio::time::sleep_until(at).await
        } => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// The writer task: everything queued goes out in one write, until the user
/// is dropped; then the rest, the notice if it was too slow, and the end.
async fn writer(u: Arc<User>, mut rx: mpsc::Receiver<Line>, mut w: OwnedWriteHalf) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            line = rx.recv() => line, // never None: u holds a sender
            _ = u.dropped() => None,
        };
        let more = first.is_some();
        buf.clear();
        if let Some(line) = first {
            buf.extend_from_slice(&line);
        }
        while let Ok(line) = rx.try_recv() {
            buf.extend_from_slice(&line); // drain: every line already queued
        }
        if !buf.is_empty() && send(&u, &mut w, &buf).await.is_err() {
            break; // broken, or cut off after its grace
        }
        if !more {
            if u.too_slow.load(Ordering::Relaxed) {
                let _ = send(&u, &mut w, TOO_SLOW).await;
            }
            break;
        }
    }
    // shutdown(SHUT_RDWR), as the Go and C++ writers do: it ends the reader's
    // read (tokio's write half can only shut down the writing side).
    unsafe { libc::shutdown(w.as_ref().as_raw_fd(), libc::SHUT_RDWR) };
}

enum Read {
    Line(Range<usize>), // a line with its '\n' (or the last bytes of the stream)
    TooLong,            // the buffer filled up without a '\n' (it is consumed)
    Eof,                // the end, a reset, or the writer's shutdown
}

/// Go's bufio.Reader.ReadSlice('\n') on a fixed buffer of max_line + 2 bytes
/// (the same rules as green::Stream::read_line and the Go server's readLine).
struct LineReader {
    r: OwnedReadHalf,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl LineReader {
    fn new(r: OwnedReadHalf, size: usize) -> LineReader {
        LineReader { r, buf: vec![0; size], start: 0, end: 0 }
    }

    async fn next(&mut self) -> Read {
        let mut scanned = self.start;
        loop {
            if let Some(i) = self.buf[scanned..self.end].iter().position(|&b| b == b'\n') {
                let line = self.start..scanned + i + 1;
                self.start = line.end;
                return Read::Line(line);
            }
            if self.end - self.start == self.buf.len() {
                self.start = 0;
                self.end = 0;
                return Read::TooLong;
            }
            if self.start > 0 {
                // slide the partial line to the front, as bufio does
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            scanned = self.end;
            match self.r.read(&mut self.buf[self.end..]).await {
                Ok(0) | Err(_) if self.end > self.start => {
                    let rest = self.start..self.end;
                    self.start = self.end;
                    return Read::Line(rest);
                }
                Ok(0) | Err(_) => return Read::Eof,
                Ok(n) => self.end += n,
            }
        }
    }
}

async fn ask_name(
    r: &mut LineReader,
    w: &mut OwnedWriteHalf,
    room: &Room,
) -> Option<(Arc<User>, mpsc::Receiver<Line>, Vec<u8>)> {
    let too_long = format!("That name is too long (at most {MAX_NAME} bytes). Name?\n");
    w.write_all(b"Welcome! What is your name?\n").await.ok()?;
    loop {
        let range = match r.next().await {
            Read::Eof => return None,
            Read::TooLong => {
                loop {
                    // skip the rest of it
                    match r.next().await {
                        Read::TooLong => continue,
                        Read::Eof => return None,
                        Read::Line(_) => break,
                    }
                }
                w.write_all(too_long.as_bytes()).await.ok()?;
                continue;
            }
            Read::Line(range) => range,
        };
        let mut name = &r.buf[range];
        while let [rest @ .., b'\r' | b'\n'] = name {
            name = rest;
        }
        let reply: Vec<u8> = if name.is_empty() {
            b"A name cannot be empty. Name?\n".to_vec()
        } else if name.len() > MAX_NAME {
            too_long.clone().into_bytes()
        } else if let Some((u, rx)) = room.join(name) {
            return Some((u, rx, name.to_vec()));
        } else {
            [&b"The name "[..], name, b" is taken. Name?\n"].concat()
        };
        w.write_all(&reply).await.ok()?;
    }
}

/// The connection's handler, which is the user's reader task.
async fn handle(conn: TcpStream, peer: SocketAddr, room: Arc<Room>) {
    let _ = conn.set_nodelay(true);
    let (r, mut w) = conn.into_split();
    let mut reader = LineReader::new(r, room.o.max_line + 2);
    let (u, rx, name) = match ask_name(&mut reader, &mut w, &room).await {
        Some(joined) => joined,
        None => return, // gone before it had a name
    };
    let host = match peer {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let joined = [&b"## "[..], &name, b" joined from ", host.as_bytes(), b".\n"].concat();
    room.broadcast(joined.into(), None);
    let writer = tokio::spawn(writer(u.clone(), rx, w));
    let mut skipping = false; // inside an over-long line: drop up to its end
    loop {
        match reader.next().await {
            Read::Eof => break, // end of stream, reset, or shut down by the writer
            Read::TooLong => {
                if !skipping {
                    skipping = true;
                    let notice = format!("## line rejected: longer than {} bytes.\n", room.o.max_line);
                    room.offer(&u, &notice.into_bytes().into());
                }
            }
            Read::Line(range) => {
                let line = &reader.buf[range];
                let complete = line.last() == Some(&b'\n');
                if skipping {
                    skipping = !complete;
                    continue;
                }
                let mut msg = Vec::with_capacity(name.len() + 3 + line.len());
                msg.extend_from_slice(&name);
                msg.extend_from_slice(b"> ");
                msg.extend_from_slice(line);
                if !complete {
                    msg.push(b'\n'); // the last line of a closed stream
                }
                room.broadcast(msg.into(), Some(&u));
            }
        }
    }
    room.leave(&name);
    room.drop_user(&u); // the writer flushes and ends
    let _ = writer.await;
    let left = [&b"## "[..], &name, b" left the chat.\n"].concat();
    room.broadcast(left.into(), None);
}

fn main() {
    let args = Args::parse(
        "tokio_chat_server",
        &["host", "port", "workers", "max-line", "max-queue", "grace"],
        "usage: tokio_chat_server [-host ADDR (0.0.0.0)] [-port N (7000; 0 picks a free one)]\n\
         \x20                        [-workers W (TOKIO_WORKER_THREADS or the CPUs)]\n\
         \x20                        [-max-line BYTES (4096)] [-max-queue LINES (100000)]\n\
         \x20                        [-grace SECONDS (2)]",
    );
    let workers = args.workers();
    let o = Options {
        max_line: args.get("max-line", 4096),
        max_queue: args.get("max-queue", 100_000),
        grace: Duration::from_secs_f64(args.get("grace", 2.0)),
    };
    if o.max_line < 1 || o.max_queue < 1 {
        eprintln!("tokio_chat_server: bad arguments");
        std::process::exit(2);
    }
    let addr = format!("{}:{}", args.string("host", "0.0.0.0"), args.get::<u16>("port", 7000));
    let rt = multi_thread(workers);
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await.unwrap_or_else(|e| {
            eprintln!("tokio_chat_server: {addr}: {e}");
            std::process::exit(1);
        });
        let room = Arc::new(Room { users: RwLock::new(HashMap::new()), o });
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        println!(
            "tokio_chat_server: listening on {} with worker_threads={workers}",
            listener.local_addr().unwrap()
        );
        loop {
            tokio::select! {
                r = listener.accept() => match r {
                    Ok((conn, peer)) => {
                        tokio::spawn(handle(conn, peer, room.clone()));
                    }
                    Err(e) => {
                        eprintln!("tokio_chat_server: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        room.broadcast(Arc::from(&b"## the server is shutting down.\n"[..]), None);
        room.drop_all();
        drop(listener);
        // Like the C++ server's stop(1s): a second for the handlers (each
        // holds a reference to the room) to finish.
        let deadline = Instant::now() + Duration::from_secs(1);
        while Arc::strong_count(&room) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    rt.shutdown_timeout(Duration::from_millis(100));
}
