use ci_core::cli::GlobalOpts;
use ci_core::error::Error;
use ci_core::image;
use ci_core::Result;

/// Check the store: every named image loads and every blob hashes to its name
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ci-build fsck && echo store is healthy")]
pub struct Args {}

pub fn run(g: &GlobalOpts, _a: Args) -> Result<i32> {
    let store = g.store()?;
    let problems = image::fsck(&store)?;
    if problems.is_empty() {
        return Ok(0);
    }
    for p in &problems {
        eprintln!("ci-build: fsck: {p}");
    }
    Err(Error::Corrupt(format!("{} problem(s) in the store at {}", problems.len(), store.root().display())))
}
