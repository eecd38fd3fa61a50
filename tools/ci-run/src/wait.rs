use ci_core::cli::GlobalOpts;
use ci_core::object::emit_json;
use ci_core::runtime::{control, state};
use ci_core::Result;

/// Wait until containers stop; print their exit statuses
///
/// Blocks until each container's main process exits, then prints its exit
/// status (one per line on a terminal; the container object, with
/// exit_code, when piped). A container that is not running answers at once
/// with its last status. With a restart policy, the next exit counts.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ci-run wait job                          0
  code=$(ci-run --format table wait job)   the status in a script")]
pub struct Args {
    /// Containers (id, id prefix, name, or - for container objects on stdin)
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let store = g.store()?;
    let mut failed = false;
    for (_, found) in crate::each::containers(&store, &a.containers)? {
        let waited = found.and_then(|mut c| control::wait(&store, &mut c).map(|code| (c, code)));
        match waited {
            Ok((c, code)) => {
                if g.json() {
                    let seen = state::observe(&c);
                    let mut o = state::object(&c, &seen);
                    o.exit_code = code;
                    emit_json(&mut std::io::stdout().lock(), &o)?;
                } else {
                    println!("{}", code.map(|c| c.to_string()).unwrap_or_else(|| "unknown".into()));
                }
            }
            Err(e) => {
                eprintln!("ci-run: error: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}
