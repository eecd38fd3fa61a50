//! ci-build: images. Build them from Dockerfiles, import them from root
//! filesystem tarballs, and manage them in the store. Each verb is one
//! file; each reads flags, calls the core, prints objects. The plain form
//! `ci-build [OPTIONS] CONTEXT` is the build verb (`ci-build build` spells
//! it out, for a context directory named like a verb).

mod build;
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
/// `ci-build [OPTIONS] CONTEXT` builds an image from a Dockerfile, as
/// `docker build` does; the verbs below import and manage images.
///
/// Images live in an OCI image layout under ROOT/images, so skopeo, umoci
/// and podman can read the store as it is. Every verb prints one JSON
/// object per image on stdout when piped (a table on a terminal), and
/// reads images from stdin where an image argument is `-`.
#[derive(Debug, Parser)]
#[command(name = "ci-build", version, about, long_about, after_help = EXAMPLES, override_usage = "ci-build [OPTIONS] CONTEXT|-      (build; see ci-build build --help)\n       ci-build [OPTIONS] <COMMAND>")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub verb: Verb,
}

const EXAMPLES: &str = "Examples:
  ci-build -t web:1 .                            build ./Dockerfile (see ci-build build --help)
  ci-build -t web . | ci-run -d -                build, then run it
  ci-build import --tag bb:1 rootfs.tar.gz      make an image from a rootfs tarball
  ci-build import - < rootfs.tar | ci-build tag - app:1
  ci-build ls                                    list images
  ci-build inspect bb:1                          manifest and config as JSON
  ci-build ls -q --filter dangling=true | xargs -r ci-build rm";

#[derive(Debug, Subcommand)]
pub enum Verb {
    Build(build::Args),
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
        Verb::Build(a) => build::run(g, a),
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

/// Parse the command line. Without a verb it is the build form
/// (`ci-build [OPTIONS] CONTEXT`): what does not parse as a verb is parsed
/// again as `ci-build build ...`. (clap's args_conflicts_with_subcommands
/// would refuse `ci-build --root DIR ls`, a global flag before a verb.)
pub fn parse_from(args: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
    use clap::error::ErrorKind;
    match Cli::try_parse_from(&args) {
        Ok(c) => Ok(c),
        Err(e) if args.len() > 1 && matches!(e.kind(), ErrorKind::InvalidSubcommand | ErrorKind::UnknownArgument | ErrorKind::MissingSubcommand) => {
            let mut with_verb = args;
            with_verb.insert(1, "build".into());
            Cli::try_parse_from(&with_verb)
        }
        Err(e) => Err(e),
    }
}

pub fn main() {
    let cli = parse_from(std::env::args_os().collect()).unwrap_or_else(|e| e.exit());
    ci_core::cli::exit_with("ci-build", 1, run(cli))
}
