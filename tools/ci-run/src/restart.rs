use ci_core::cli::GlobalOpts;
use ci_core::error::Error;
use ci_core::runtime::{self, control, monitor, state, Status};
use ci_core::Result;

/// Stop, then start containers
///
/// A running container is stopped as `ci-run stop` does (stop signal,
/// SIGKILL after the timeout), then started again under a new monitor; a
/// stopped one is simply started. Its writable layer is kept.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ci-run restart web
  ci-run restart -t 0 web     no grace period")]
pub struct Args {
    /// Seconds to wait for the stop before SIGKILL
    #[arg(short = 't', long = "time", visible_alias = "timeout", value_name = "SECONDS", default_value_t = monitor::DEFAULT_STOP_TIMEOUT)]
    time: u64,
    /// Containers (id, id prefix, name, or - for container objects on stdin)
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    runtime::exe::ensure_protected()?;
    crate::each::for_each(g, &a.containers, |store, c| {
        if matches!(state::refresh(store, c)?.status, Status::Running | Status::Restarting) {
            control::stop(store, c, a.time, None)?;
        }
        match control::start(store, c)? {
            Some(Err(f)) => Err(Error::Conflict(format!("container {} did not start: {}", c.record.name, f.message))),
            _ => Ok(()),
        }
    })
}
