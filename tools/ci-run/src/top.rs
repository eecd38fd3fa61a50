use ci_core::cli::GlobalOpts;
use ci_core::error::Error;
use ci_core::object::{emit_json, emit_table, expand_one};
use ci_core::runtime::{names, state, top, Status};
use ci_core::Result;

/// Show the processes of a container
///
/// Lists the processes in the container's cgroup with the columns of
/// `ps -ef` (host pids, host user names), read from the host's /proc by
/// ci-run itself: nothing of the container is executed.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ci-run top web")]
pub struct Args {
    /// The container (id, id prefix, name, or - for a container object on stdin)
    #[arg(value_name = "CONTAINER")]
    container: String,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let store = g.store()?;
    let name = expand_one(&a.container, "container", "top")?;
    let mut c = names::resolve(&store, &name)?;
    let seen = state::refresh(&store, &mut c)?;
    if seen.status != Status::Running {
        return Err(Error::Conflict(format!("container {} is not running: it is {}", c.record.name, seen.status.as_str())));
    }
    let procs = top::processes(&c)?;
    let mut out = std::io::stdout().lock();
    if g.json() {
        for p in &procs {
            emit_json(&mut out, p)?;
        }
    } else {
        emit_table(&mut out, &procs)?;
    }
    Ok(0)
}
