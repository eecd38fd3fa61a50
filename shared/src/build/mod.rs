//! The image builder: a Dockerfile and a context become an image, the way
//! `docker build` makes it.
//!
//! | module | concept |
//! |---|---|
//! | [`context`] | the build context (a directory or a tar on stdin), `.dockerignore`, COPY sources |
//! | [`checksum`] | content checksums of context files, with a stat cache |
//! | [`cache`] | the build cache: step keys, entries, cache mounts |
//! | [`stage`] | stages and their steps: FROM, metadata, the cache deciding what runs |
//! | [`rootfs`] | the build state mounted as an overlay, paths resolved inside it |
//! | [`copy`], [`add`] | COPY and ADD |
//! | [`incremental`] | a COPY that re-copies only the files that changed |
//! | [`run`] | RUN, in a container of the engine `ci-run` uses |
//! | [`progress`] | what stderr shows |
//!
//! A build, top to bottom ([`build`]): open the context, parse the
//! Dockerfile, build the target stage (and, on demand, the stages it
//! uses), write the image config, commit the image and name it.

pub mod add;
pub mod cache;
pub mod checksum;
pub mod context;
pub mod copy;
pub mod incremental;
pub mod progress;
pub mod rootfs;
pub mod run;
pub mod stage;

use std::collections::BTreeMap;

pub use context::{ContextSource, DockerfileSource};

use crate::error::Result;
use crate::image::{self, Image};
use crate::reference::Reference;
use crate::runtime::Network;
use crate::store::{LockKind, Store};

/// What `ci-build [OPTIONS] CONTEXT` asks for.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub context: ContextSource,
    pub dockerfile: DockerfileSource,
    pub tags: Vec<Reference>,
    /// `--build-arg NAME=value` (a bare NAME takes ci-build's own environment's value).
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// `--label`: added to the final image's labels.
    pub labels: BTreeMap<String, String>,
    /// The network of RUN steps without `RUN --network`: `--network host`, or
    /// none (loopback only) for `default` until ci-net provides bridges.
    pub network: Network,
    /// Entitlements granted with `--allow`: `network.host`, `security.insecure`.
    pub allow: Vec<String>,
    pub progress: progress::Mode,
}

/// What a build made.
pub struct Built {
    pub image: Image,
    pub steps_run: usize,
    pub steps_cached: usize,
}

/// Build an image. Progress goes to stderr; the image is committed and
/// named only when every step succeeded.
pub fn build(store: &Store, opts: &BuildOptions) -> Result<Built> {
    run::remove_dead_step_containers(store)?;
    rootfs::private_mounts()?;
    // Blobs written by this build are not garbage until the image names them.
    let _gc = store.lock_shared(LockKind::Gc)?;
    let ctx = context::Context::open(store, &opts.context, &opts.dockerfile)?;
    let df = crate::dockerfile::parse(&ctx.dockerfile, &ctx.dockerfile_name)?;
    let progress = progress::Progress::new(opts.progress);
    for w in &df.warnings {
        progress.note(&format!("warning: {w}"));
    }
    let mut b = stage::Builder::new(store, ctx, df, opts, progress)?;
    let target = b.target()?;
    let state = b.stage(target)?;
    let config = b.config_json(&state, &opts.labels)?;
    let unused: Vec<&String> = opts
        .build_args
        .keys()
        .filter(|k| !b.consumed.contains(*k) && !stage::PROXY_ARGS.contains(&k.as_str()))
        .collect();
    if !unused.is_empty() {
        b.progress.note(&format!(
            "warning: build argument(s) {} were not used: no ARG line declares them",
            unused.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    b.progress.begin("exporting to image");
    let img = image::commit_json(store, &config, &state.layers, &opts.tags)?;
    b.progress.done();
    b.progress.note(&format!(
        "built {}{} ({} step(s) run, {} cached)",
        img.id.short(),
        if opts.tags.is_empty() { String::new() } else { format!(" as {}", opts.tags.iter().map(Reference::familiar).collect::<Vec<_>>().join(", ")) },
        b.steps_run,
        b.steps_cached
    ));
    if let Err(e) = b.ctx.save() {
        b.progress.note(&format!("warning: could not save the context's stat cache: {e}"));
    }
    Ok(Built { image: img, steps_run: b.steps_run, steps_cached: b.steps_cached })
}
