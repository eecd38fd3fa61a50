use ci_core::cli::GlobalOpts;
use ci_core::runtime::{control, monitor};
use ci_core::Result;

/// Stop running containers
///
/// Sends the container's stop signal (--stop-signal, the image's
/// STOPSIGNAL, else SIGTERM) to its main process and SIGKILL if it is still
/// there after the timeout. A stopped container is not restarted by its
/// restart policy. Stopping a container that is not running is an error.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ci-run stop web             TERM (or the stop signal), KILL after 10 s
  ci-run stop -t 1 web db     give them one second
  ci-run ps | ci-run stop -   every running container (objects on stdin)")]
pub struct Args {
    /// Seconds to wait before SIGKILL
    #[arg(short = 't', long = "time", visible_alias = "timeout", value_name = "SECONDS", default_value_t = monitor::DEFAULT_STOP_TIMEOUT)]
    time: u64,
    /// Signal to send instead of the container's stop signal
    #[arg(short, long, value_name = "SIGNAL")]
    signal: Option<String>,
    /// Containers (id, id prefix, name, or - for container objects on stdin)
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let signal = a.signal.as_deref().map(monitor::parse_signal).transpose()?;
    crate::each::for_each(g, &a.containers, |store, c| control::stop(store, c, a.time, signal).map(drop))
}
