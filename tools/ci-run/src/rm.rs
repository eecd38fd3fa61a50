use ci_core::cli::GlobalOpts;
use ci_core::runtime::control;
use ci_core::Result;

/// Remove containers
///
/// Removes the record, the writable layer (what the container wrote), the
/// log, and any run-time state or cgroup left behind. A running container
/// is refused unless -f, which kills it first (SIGKILL).
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ci-run rm web
  ci-run rm -f web                        running or not
  ci-run ps -a --filter status=exited | ci-run rm -   container objects on stdin")]
pub struct Args {
    /// Kill a running container first
    #[arg(short, long)]
    force: bool,
    /// Also remove the container's anonymous volumes (ci-run creates none yet: accepted for docker's sake)
    #[arg(short, long)]
    volumes: bool,
    /// Containers (id, id prefix, name, or - for container objects on stdin)
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let _ = a.volumes;
    crate::each::for_each(g, &a.containers, |store, c| control::remove(store, c, a.force))
}
