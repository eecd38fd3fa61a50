use std::io::Write;

use ci_core::cli::GlobalOpts;
use ci_core::image;
use ci_core::object::{emit_json, human_size};
use ci_core::Result;

/// Remove dangling images (untagged and unused), or with -a every image no container uses, and clear the build cache
///
/// The build cache (cached steps, RUN cache mounts, the context stat
/// cache) is cleared too; the layers only it held are then removed.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ci-build prune                                dangling images and the build cache
  ci-build prune -a                             every image no container uses, and the build cache")]
pub struct Args {
    /// Remove every image that no container uses, not only dangling ones
    #[arg(short, long)]
    all: bool,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let store = g.store()?;
    let cleared = ci_core::build::cache::clear(&store)?;
    let (removed, stats) = image::prune(&store, a.all)?;
    let out = &mut std::io::stdout().lock();
    if g.json() {
        for r in &removed {
            emit_json(out, r)?;
        }
        emit_json(out, &cleared)?;
    } else {
        for r in &removed {
            for t in &r.untagged {
                let _ = writeln!(out, "Untagged: {t}");
            }
            let _ = writeln!(out, "Deleted: {}", r.id);
        }
        let _ = writeln!(out, "Build cache: {} step(s), {} cache mount(s) cleared", cleared.steps, cleared.cache_mounts);
        let _ = writeln!(out, "Total reclaimed space: {}", human_size(stats.bytes_freed + cleared.bytes));
    }
    Ok(0)
}
