//! Named crash points, for the durability tests only (tests/hardening_kill.rs).
//!
//! A random `kill -9` rarely lands in the microseconds between two steps
//! that matter (a blob linked but not yet named in the index; an index
//! written but not yet renamed). With `CITEST_CRASH_AT=<point>[:<n>]` in
//! the environment of a debug build, the process kills itself with SIGKILL
//! — no destructor, no flush, exactly what `kill -9` does — the `n`-th time
//! (default: the first) it reaches `point`. Release builds compile every
//! point to nothing.
//!
//! | point | where |
//! |---|---|
//! | `blob-linked` | a blob has its name, its directory is not yet fsynced ([`crate::store::BlobWriter::commit`]) |
//! | `write-atomic-renaming` | a metadata file is written and fsynced under its temporary name, not yet renamed ([`crate::fsutil::write_atomic`]) |
//! | `index-saved` | `index.json` names the new image; what follows it (GC, loading the image) has not run |
//! | `extract-entry` | after each entry of a tar being extracted (a layer into the layer cache, a build step) |
//! | `layer-unpacked` | an unpacked layer is complete in ROOT/tmp, not yet renamed into ROOT/layers |
//! | `pull-committed` | a pull's blobs are in the store, the image is not yet in the index |

/// Die here if `CITEST_CRASH_AT` names this point (debug builds).
#[inline]
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    armed::check(name);
    #[cfg(not(debug_assertions))]
    let _ = name;
}

#[cfg(debug_assertions)]
mod armed {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);

    pub fn check(name: &str) {
        let target = TARGET.get_or_init(|| {
            let v = std::env::var("CITEST_CRASH_AT").ok()?;
            let (p, n) = match v.rsplit_once(':') {
                Some((p, n)) => (p.to_string(), n.parse().ok()?),
                None => (v, 1),
            };
            Some((p, n))
        });
        if let Some((p, n)) = target {
            if p == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n {
                // SAFETY: raising a signal has no memory-safety preconditions.
                unsafe { libc::raise(libc::SIGKILL) };
            }
        }
    }
}
