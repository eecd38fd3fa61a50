//! ci-build: images. Build them from Dockerfiles (with the builder issue),
//! import them from root filesystem tarballs, and manage them in the store.
//! Each verb is one file; each reads flags, calls the core, prints objects.

mod fsck;
mod history;
mod import;
mod inspect;
mod ls;
mod prune;
mod rm;
mod tag;

use clap::{Parser, Subcommand};
use ci_core::cli::GlobalOpts;
use ci_core::Result;

/// Build, import and manage container images.
///
/// Images live in an OCI image layout under ROOT/images, so skopeo, umoci
/// and podman can read the store as it is. Every verb prints one JSON
/// object per image on stdout when piped (a table on a terminal), and
/// reads images from stdin where an image argument is `-`.
#[derive(Debug, Parser)]
#[command(name = "ci-build", version, about, long_about, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub verb: Verb,
}

const EXAMPLES: &str = "Examples:
  ci-build import --tag bb:1 rootfs.tar.gz      make an image from a rootfs tarball
  ci-build import - < rootfs.tar | ci-build tag - app:1
  ci-build ls                                    list images
  ci-build inspect bb:1                          manifest and config as JSON
  ci-build ls -q --filter dangling=true | xargs -r ci-build rm";

#[derive(Debug, Subcommand)]
pub enum Verb {
    Import(import::Args),
    #[command(alias = "images")]
    Ls(ls::Args),
    Inspect(inspect::Args),
    Tag(tag::Args),
    #[command(alias = "rmi")]
    Rm(rm::Args),
    History(history::Args),
    Prune(prune::Args),
    Fsck(fsck::Args),
}

pub fn run(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match cli.verb {
        Verb::Import(a) => import::run(g, a),
        Verb::Ls(a) => ls::run(g, a),
        Verb::Inspect(a) => inspect::run(g, a),
        Verb::Tag(a) => tag::run(g, a),
        Verb::Rm(a) => rm::run(g, a),
        Verb::History(a) => history::run(g, a),
        Verb::Prune(a) => prune::run(g, a),
        Verb::Fsck(a) => fsck::run(g, a),
    }
}

pub fn main() {
    let cli = Cli::parse();
    ci_core::cli::exit_with("ci-build", 1, run(cli))
}
