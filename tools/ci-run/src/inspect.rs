use std::io::Write;

use ci_core::cli::GlobalOpts;
use ci_core::error::Error;
use ci_core::runtime::state;
use ci_core::Result;

/// Show everything about containers
///
/// One JSON object per container: its state (status, pids of its process
/// and monitor, exit code, error, times), restart policy and count, config
/// (command, environment, user, working directory, labels), resource
/// limits, mounts, network settings, log, and where it lives (dir: the
/// record and writable layer; state_dir: run-time state under /run).
/// Pretty-printed on a terminal, one line each when piped.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ci-run inspect web
  ci-run inspect web | jq .state.status")]
pub struct Args {
    /// Containers (id, id prefix, name, or - for container objects on stdin)
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let store = g.store()?;
    let mut failed = false;
    for (_, found) in crate::each::containers(&store, &a.containers)? {
        let shown = found.and_then(|mut c| {
            let seen = state::refresh(&store, &mut c)?;
            Ok(state::inspect(&c, &seen))
        });
        match shown {
            Ok(v) => {
                let mut text = if g.json() { serde_json::to_vec(&v) } else { serde_json::to_vec_pretty(&v) }.expect("JSON values serialise");
                text.push(b'\n');
                std::io::stdout().lock().write_all(&text).map_err(|e| Error::io("write", "stdout", e))?;
            }
            Err(e) => {
                eprintln!("ci-run: error: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}
