//! ci-push and ci-pull: moving images between the store, registries and archives.
//!
//! Their verbs arrive with the distribution issue; until then both answer
//! `--help` and `--version` and say what they will be.

use clap::Parser;
use ci_core::cli::GlobalOpts;

/// Push images from the store to a registry or an archive.
///
/// This version has no verbs yet: registries come in a later release of ci.
#[derive(Debug, Parser)]
#[command(name = "ci-push", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
}

/// Pull images from a registry or an archive into the store.
///
/// This version has no verbs yet: registries come in a later release of ci.
#[derive(Debug, Parser)]
#[command(name = "ci-pull", version, about, long_about)]
pub struct PullCli {
    #[command(flatten)]
    pub global: GlobalOpts,
}

pub fn main() {
    let _cli = Cli::parse();
    eprintln!("ci-push: no verbs yet in this version; see `ci-push --help`");
    std::process::exit(2)
}

pub fn pull_main() {
    let _cli = PullCli::parse();
    eprintln!("ci-pull: no verbs yet in this version; see `ci-pull --help`");
    std::process::exit(2)
}
