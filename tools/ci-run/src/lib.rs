//! ci-run: containers: a process with its own root filesystem, namespaces and cgroup.
//!
//! Its verbs arrive with the containers issue; until then it answers
//! `--help` and `--version` and says what it will be.

use clap::Parser;
use ci_core::cli::GlobalOpts;

/// Run containers from images in the store.
///
/// This version has no verbs yet: containers come in a later release of ci.
#[derive(Debug, Parser)]
#[command(name = "ci-run", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
}

pub fn main() {
    let _cli = Cli::parse();
    eprintln!("ci-run: no verbs yet in this version; see `ci-run --help`");
    std::process::exit(2)
}
