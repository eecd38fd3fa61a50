//! ci-vol: named volumes, the data that outlives containers.
//!
//! Its verbs arrive with the volumes issue; until then it answers
//! `--help` and `--version` and says what it will be.

use clap::Parser;
use ci_core::cli::GlobalOpts;

/// Manage volumes: named directories that outlive containers.
///
/// This version has no verbs yet: volumes come in a later release of ci.
#[derive(Debug, Parser)]
#[command(name = "ci-vol", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
}

pub fn main() {
    let _cli = Cli::parse();
    eprintln!("ci-vol: no verbs yet in this version; see `ci-vol --help`");
    std::process::exit(2)
}
