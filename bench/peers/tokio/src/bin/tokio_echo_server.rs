//! tokio_echo_server — the plain Tokio echo server green's echo benchmark
//! (bench/echo_bench.sh, driven by bench/echo_load) compares against, the
//! twin of bench/peers/go/echo_server.go: a task per connection spawned on
//! the multi-threaded runtime, TCP_NODELAY on, read into a 16 KiB buffer and
//! write_all back. `-workers W` sets worker_threads.
//!
//!     tokio_echo_server -port 6001 -workers 2
//!
//! What it measures, with echo_load: the runtime's cost per small request on
//! a connection (a wake from epoll, a task poll, a read and a write system
//! call), at 100 and 1,000 connections.

use green_tokio_peers::{multi_thread, Args};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn serve(mut conn: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return, // closed or reset
            Ok(n) => n,
        };
        if conn.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

fn main() {
    let args = Args::parse(
        "tokio_echo_server",
        &["port", "host", "workers"],
        "usage: tokio_echo_server [-port N (6001; 0 picks a free one)] [-host ADDR (127.0.0.1)]\n\
         \x20                        [-workers W (TOKIO_WORKER_THREADS or the CPUs)]",
    );
    let workers = args.workers();
    let addr = format!("{}:{}", args.string("host", "127.0.0.1"), args.get::<u16>("port", 6001));
    multi_thread(workers).block_on(async move {
        let listener = TcpListener::bind(&addr).await.unwrap_or_else(|e| {
            eprintln!("tokio_echo_server: {addr}: {e}");
            std::process::exit(1);
        });
        println!(
            "tokio_echo_server: listening on {} with worker_threads={workers}",
            listener.local_addr().unwrap()
        );
        loop {
            match listener.accept().await {
                Ok((conn, _)) => {
                    let _ = conn.set_nodelay(true);
                    tokio::spawn(serve(conn));
                }
                // Out of file descriptors and the like: say so, wait, go on.
                Err(e) => {
                    eprintln!("tokio_echo_server: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    });
}
