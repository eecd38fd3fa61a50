//! Distribution: moving images between the store, registries and archives
//! (`ci-push`, `ci-pull`).
//!
//! - [`transport`]: where an image goes or comes from, as the user names it.
//! - [`client`], [`auth`], [`credentials`], [`tls`]: talking to a registry
//!   (the OCI distribution spec over HTTP; challenges, tokens; docker's
//!   config.json and credential helpers; certificates and plain HTTP).
//! - [`manifest`]: the documents registries serve, checked before use.
//! - [`pull`], [`push`]: the two directions, over any source or destination.
//! - [`registry`]: a registry as a source and as a destination.
//! - [`archive`]: `docker save` tarballs, OCI archives and OCI directories.
//! - [`ingest`]: the staging area that keeps failed pulls out of the store.
//! - [`blob_info`]: compressed forms of layers and where blobs live.
//! - [`progress`]: bars on a terminal, lines in a pipe.
//! - [`transfer`]: the verbs of ci-push and ci-pull, over all of the above.

pub mod archive;
pub mod auth;
pub mod blob_info;
pub mod client;
pub mod credentials;
pub mod ingest;
pub mod manifest;
pub mod progress;
pub mod pull;
pub mod push;
pub mod registry;
pub mod tls;
pub mod transfer;
pub mod transport;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use std::io::{self, Read};

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};

/// Blobs moved at once by default: enough to fill a link while one blob
/// waits on the network, few enough for two cores to compress.
pub const DEFAULT_JOBS: usize = 3;

/// Run `f` on every item with at most `jobs` threads; the first error
/// stops the rest from starting and is returned.
pub fn for_each<T: Sync>(items: &[T], jobs: usize, f: impl Fn(usize, &T) -> Result<()> + Sync) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len()) {
            s.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                if let Err(e) = f(i, item) {
                    stop.store(true, Ordering::Relaxed);
                    first_error.lock().expect("error slot").get_or_insert(e);
                    break;
                }
            });
        }
    });
    match first_error.into_inner().expect("error slot") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A reader over a stored blob that fails at its end if the bytes are not
/// the blob's digest, so a damaged store never reaches a registry.
pub struct Verifying<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
}

impl<R: Read> Read for Verifying<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
            if n == 0 && !buf.is_empty() {
                let actual = self.hasher.take().expect("present").finish();
                if actual != self.expected {
                    return Err(io::Error::other(
                        Error::Corrupt(format!("blob {} in the store is corrupt: it hashes to {actual}", self.expected))
                            .hint("`ci-build fsck` lists damaged images; remove and rebuild or pull it"),
                    ));
                }
            }
        }
        Ok(n)
    }
}

impl<R: Read> Verifying<R> {
    pub fn new(inner: R, expected: &Digest) -> Verifying<R> {
        Verifying { inner, hasher: Some(Hasher::new(expected.algorithm())), expected: expected.clone() }
    }
}

/// An I/O error from a stream: if one of our own errors travelled inside it
/// (a verifying reader deep in a chain), return that one.
pub fn from_io(e: std::io::Error, op: &'static str, what: &str) -> Error {
    if e.get_ref().is_some_and(|i| i.is::<Error>()) {
        if let Some(inner) = e.into_inner() {
            if let Ok(ours) = inner.downcast::<Error>() {
                return *ours;
            }
        }
        return Error::invalid(format!("{op} {what}: failed"));
    }
    Error::io(op, what, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_each_runs_all_and_reports_an_error() {
        let sum = AtomicUsize::new(0);
        for_each(&[1, 2, 3, 4, 5], 3, |_, x| {
            sum.fetch_add(*x, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
        assert_eq!(sum.load(Ordering::Relaxed), 15);
        let e = for_each(&[1, 2, 3], 2, |_, x| if *x == 2 { Err(crate::Error::invalid("two")) } else { Ok(()) });
        assert_eq!(e.unwrap_err().to_string(), "two");
    }
}
