//! The core of the ci tools. Every tool is a thin binary over this crate;
//! each module is one concept of images and containers, named after it.
//!
//! - [`store`]: the on-disk store (an OCI image layout plus runtime state),
//!   with its crash-safety and locking contract.
//! - [`digest`], [`reference`]: naming content and images.
//! - [`image`]: images in the store and the verbs that manage them.
//! - [`dockerfile`], [`dockerignore`]: the Dockerfile language and build-context filtering.
//! - [`object`]: the JSON objects the tools print and read (the contract).
//! - [`cli`], [`explain`]: what every tool's command line shares.

pub mod build;
pub mod cgroups;
pub mod cli;
pub mod compression;
#[doc(hidden)]
pub mod crash;
pub mod distribution;
pub mod digest;
pub mod dockerfile;
pub mod dockerignore;
pub mod error;
pub mod explain;
pub mod fsutil;
pub mod glob;
pub mod image;
pub mod layer;
pub mod lock;
pub mod object;
pub mod reference;
pub mod runtime;
pub mod store;
pub mod tarball;
#[doc(hidden)]
pub mod testsupport;

pub use error::{Error, Result};
