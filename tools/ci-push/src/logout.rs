use ci_core::cli::GlobalOpts;
use ci_core::distribution::transfer::{logout, registry_host};
use ci_core::object::emit_json;
use ci_core::Result;

/// Forget the credentials of a registry (in config.json and its credential helper)
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ci-push logout localhost:5000
  ci-push logout registry.example:5000 | jq .removed")]
pub struct Args {
    /// The registry: HOST[:PORT]
    #[arg(value_name = "REGISTRY")]
    registry: String,
}

pub fn run(_g: &GlobalOpts, a: Args) -> Result<i32> {
    let host = registry_host(&a.registry)?;
    let done = logout(&host)?;
    if !done.removed {
        eprintln!("ci-push: not logged in to {host}");
    }
    emit_json(&mut std::io::stdout().lock(), &done)?;
    Ok(0)
}
