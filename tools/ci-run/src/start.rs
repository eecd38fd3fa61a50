use ci_core::cli::GlobalOpts;
use ci_core::error::Error;
use ci_core::object::emit_json;
use ci_core::runtime::{self, control, logs, state};
use ci_core::Result;

/// Start stopped or created containers again, detached
///
/// The container's command runs again under a new monitor, on the same
/// writable layer: what it wrote before is still there (until `ci-run rm`).
/// A running container is left as it is. With -a, print its output and
/// exit with its status, as a foreground run would.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ci-run start web
  ci-run start -a job          wait for it, with its output, and exit with its status")]
pub struct Args {
    /// Print the container's output until it stops, then exit with its status
    #[arg(short, long)]
    attach: bool,
    /// Containers (id, id prefix, name, or - for container objects on stdin)
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    // Its monitor execs this binary: the read-only copy (CVE-2019-5736).
    runtime::exe::ensure_protected()?;
    if a.attach {
        return attach(g, &a.containers);
    }
    crate::each::for_each(g, &a.containers, |store, c| match control::start(store, c)? {
        Some(Err(f)) => Err(Error::Conflict(format!("container {} did not start: {}", c.record.name, f.message))),
        _ => Ok(()),
    })
}

/// `start -a`: start, then print the log from this run on, until it stops; its status.
fn attach(g: &GlobalOpts, args: &[String]) -> Result<i32> {
    let store = g.store()?;
    let mut found = crate::each::containers(&store, args)?;
    if found.len() != 1 {
        return Err(Error::invalid("start -a takes one container"));
    }
    let mut c = found.remove(0).1?;
    let q = logs::Query::since_now();
    match control::start(&store, &mut c)? {
        None => return Err(Error::Conflict(format!("container {} is already running", c.record.name))),
        Some(Err(f)) => {
            eprintln!("ci-run: error: {}", f.message);
            return Ok(f.code);
        }
        Some(Ok(obj)) => {
            if g.json() {
                emit_json(&mut std::io::stderr().lock(), &obj)?;
            }
        }
    }
    let seen = state::refresh(&store, &mut c)?;
    let owner = seen.run.filter(|r| r.monitor).and_then(|r| state::pidfd(r.owner_pid, r.owner_start_time, &r.boot_id));
    let mut sink = |r: &logs::Record| -> Result<()> {
        use std::io::Write;
        let res = if r.stream == "stderr" { std::io::stderr().write_all(r.log.as_bytes()) } else { std::io::stdout().write_all(r.log.as_bytes()) };
        res.map_err(|e| Error::io("write", "stdout", e))
    };
    if c.record.log.enabled() {
        logs::stream(&c.dir, &q, owner.as_ref().map(std::os::fd::AsFd::as_fd), &mut sink)?;
    }
    let code = control::wait(&store, &mut c)?;
    Ok(code.unwrap_or(125))
}
