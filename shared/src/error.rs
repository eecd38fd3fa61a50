//! One error type for the core. Every variant says what failed and on what
//! (a path, a reference, a field), so that a tool can print it on one line
//! and a learner can act on it. Tools add their own name in front
//! (`ci-build: error: ...`) and choose the exit status from [`Error::exit_class`].

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on a file failed: the operation and the path are part of the message.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The user gave something we cannot accept (a flag value, a reference,
    /// a file's content). The message says which and where.
    #[error("{0}")]
    Invalid(String),

    /// Something named does not exist.
    #[error("no such {kind}: {name}")]
    NotFound { kind: &'static str, name: String },

    /// A short id prefix matched several objects.
    #[error("{kind} id prefix {prefix:?} is ambiguous; it matches: {}", candidates.join(", "))]
    Ambiguous {
        kind: &'static str,
        prefix: String,
        candidates: Vec<String>,
    },

    /// The operation would break something that is in use or already exists.
    #[error("{0}")]
    Conflict(String),

    /// Stored data failed a check (digest, size, format): the store or an input is corrupt.
    #[error("{0}")]
    Corrupt(String),

    /// A kernel feature or privilege we need is missing.
    #[error("{0}")]
    Unsupported(String),

    /// Any error with a hint on how to get out of it appended.
    #[error("{source}\n  hint: {hint}")]
    Hint {
        #[source]
        source: Box<Error>,
        hint: String,
    },

    /// An error that happened while doing something named (adds context to a chain).
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
}

/// What kind of failure, for the tools' exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitClass {
    /// The user asked for something malformed (exit 2 in most tools).
    Usage,
    /// A well-formed request failed (exit 1).
    Failure,
}

impl Error {
    pub fn io(op: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { op, path: path.as_ref().to_path_buf(), source }
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    pub fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Error::NotFound { kind, name: name.into() }
    }

    /// Append a hint (what the user can do about it).
    pub fn hint(self, hint: impl Into<String>) -> Self {
        Error::Hint { source: Box::new(self), hint: hint.into() }
    }

    /// Say what we were doing when this happened.
    pub fn context(self, context: impl Into<String>) -> Self {
        Error::Context { context: context.into(), source: Box::new(self) }
    }

    /// The innermost error, skipping hints and context.
    pub fn root(&self) -> &Error {
        match self {
            Error::Hint { source, .. } | Error::Context { source, .. } => source.root(),
            e => e,
        }
    }

    pub fn exit_class(&self) -> ExitClass {
        match self.root() {
            Error::Invalid(_) | Error::Ambiguous { .. } => ExitClass::Usage,
            _ => ExitClass::Failure,
        }
    }

    /// The raw OS error number, when the root cause is a system call.
    pub fn errno(&self) -> Option<i32> {
        match self.root() {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Attach an operation and a path to `std::io::Result`s: `fs::read(p).ctx("read", p)?`.
pub trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, std::io::Error::from(e)))
    }
}

/// Add context to any of our results: `load(x).context("loading image")?`.
pub trait ResultExt<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
    fn hint(self, hint: impl FnOnce() -> String) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| e.context(context()))
    }
    fn hint(self, hint: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| e.hint(hint()))
    }
}
