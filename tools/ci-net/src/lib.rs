//! ci-net: networks: bridges, veth pairs and addresses for containers.
//!
//! Its verbs arrive with the networks issue; until then it answers
//! `--help` and `--version` and says what it will be.

use clap::Parser;
use ci_core::cli::GlobalOpts;

/// Manage networks: bridges that connect containers to each other and the host.
///
/// This version has no verbs yet: networks come in a later release of ci.
#[derive(Debug, Parser)]
#[command(name = "ci-net", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
}

pub fn main() {
    let _cli = Cli::parse();
    eprintln!("ci-net: no verbs yet in this version; see `ci-net --help`");
    std::process::exit(2)
}
