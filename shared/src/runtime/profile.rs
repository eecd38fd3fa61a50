//! `CIPROFILE=1`: print on stderr how far into the run each step of the
//! start path happened (milliseconds since ci-run started), in the parent
//! and in the container's init, to see where start-up time goes.

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Option<Instant>> = OnceLock::new();

fn start() -> Option<Instant> {
    *START.get_or_init(|| std::env::var_os("CIPROFILE").map(|_| Instant::now()))
}

/// Start the clock (call first thing).
pub fn begin() {
    start();
}

/// Print one mark.
pub fn mark(what: &str) {
    if let Some(t) = start() {
        eprintln!("ci-run profile: {:8.3} ms  [{}] {what}", t.elapsed().as_secs_f64() * 1000.0, std::process::id());
    }
}
