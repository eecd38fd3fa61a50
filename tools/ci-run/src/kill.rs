use ci_core::cli::GlobalOpts;
use ci_core::runtime::{control, monitor};
use ci_core::Result;

/// Send a signal to the main process of running containers
///
/// SIGKILL (the default) waits until the container is gone; SIGKILL and
/// the container's stop signal count as a manual stop (its restart policy
/// does not start it again). Any other signal is only delivered: a PID 1
/// with no handler for it ignores it, as the kernel treats every init.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ci-run kill web                 SIGKILL
  ci-run kill -s USR1 web         a signal its process traps
  ci-run kill -s HUP web db")]
pub struct Args {
    /// The signal: a name (KILL, SIGUSR1, usr1) or a number
    #[arg(short, long, value_name = "SIGNAL", default_value = "KILL")]
    signal: String,
    /// Containers (id, id prefix, name, or - for container objects on stdin)
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let signal = monitor::parse_signal(&a.signal)?;
    crate::each::for_each(g, &a.containers, |store, c| control::kill(store, c, signal))
}
