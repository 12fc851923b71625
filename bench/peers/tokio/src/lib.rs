//! What the three Tokio peers share: a small argument parser (Go's flag
//! style, `-name value`; `--name value` works too) and the runtime they run
//! on, with `worker_threads` set from `--workers W` or, without it, from
//! Tokio's own `TOKIO_WORKER_THREADS`, or the number of CPUs.

use std::collections::HashMap;
use std::process::exit;
use std::str::FromStr;

/// `-name value` pairs from the command line. Unknown names are an error
/// (exit 2), so a typo cannot silently run the wrong case.
pub struct Args {
    prog: &'static str,
    values: HashMap<String, String>,
}

impl Args {
    /// Parses argv; `known` lists the accepted names, without dashes.
    /// `usage` is printed for -help.
    pub fn parse(prog: &'static str, known: &[&str], usage: &str) -> Args {
        let mut values = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let name = arg.trim_start_matches('-').to_string();
            if name == "help" || name == "h" {
                println!("{usage}");
                exit(0);
            }
            if !arg.starts_with('-') || !known.contains(&name.as_str()) {
                eprintln!("{prog}: unknown argument {arg} (try -help)");
                exit(2);
            }
            match it.next() {
                Some(v) => values.insert(name, v),
                None => {
                    eprintln!("{prog}: {arg} needs a value");
                    exit(2);
                }
            };
        }
        Args { prog, values }
    }

    /// The value of `-name`, or `default` when it was not given.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        match self.values.get(name) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                eprintln!("{}: bad value for -{name}: {v}", self.prog);
                exit(2);
            }),
        }
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.values.get(name).cloned().unwrap_or_else(|| default.to_string())
    }

    /// The worker count: -workers, else TOKIO_WORKER_THREADS, else the CPUs.
    pub fn workers(&self) -> usize {
        let env = std::env::var("TOKIO_WORKER_THREADS").ok().and_then(|v| v.parse().ok());
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let w = self.get("workers", env.unwrap_or(cpus));
        if w < 1 {
            eprintln!("{}: -workers must be >= 1", self.prog);
            exit(2);
        }
        w
    }
}

/// A multi-threaded runtime with `workers` worker threads, I/O and timers on:
/// what `#[tokio::main(worker_threads = W)]` builds.
pub fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A current-thread runtime (one thread runs every task), I/O and timers on.
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}
