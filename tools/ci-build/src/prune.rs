use std::io::Write;

use ci_core::cli::GlobalOpts;
use ci_core::image;
use ci_core::object::{emit_json, human_size};
use ci_core::Result;

/// Remove dangling images (untagged and unused), or with -a every image no container uses
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ci-build prune                                dangling images only
  ci-build prune -a                             every image no container uses")]
pub struct Args {
    /// Remove every image that no container uses, not only dangling ones
    #[arg(short, long)]
    all: bool,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let store = g.store()?;
    let (removed, stats) = image::prune(&store, a.all)?;
    let out = &mut std::io::stdout().lock();
    if g.json() {
        for r in &removed {
            emit_json(out, r)?;
        }
    } else {
        for r in &removed {
            for t in &r.untagged {
                let _ = writeln!(out, "Untagged: {t}");
            }
            let _ = writeln!(out, "Deleted: {}", r.id);
        }
        let _ = writeln!(out, "Total reclaimed space: {}", human_size(stats.bytes_freed));
    }
    Ok(0)
}
