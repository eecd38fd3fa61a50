use std::collections::HashMap;
use std::io::Write;

use ci_core::cli::GlobalOpts;
use ci_core::error::Error;
use ci_core::object::{emit_json, write_table, ContainerStats, Tabular};
use ci_core::runtime::{container, names, state, stats, Container, Status};
use ci_core::Result;

/// Show what containers use: CPU, memory, network, block I/O, processes
///
/// Read from each container's cgroup (v1 or v2) and network namespace. On
/// a terminal the table is redrawn every second until Ctrl-C; piped, one
/// JSON line per container per second. --no-stream prints one reading
/// (CPU % over half a second) and exits.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ci-run stats                      every running container, live
  ci-run stats --no-stream web      one reading
  ci-run stats --no-stream | jq 'select(.memory_usage > 100000000)' | ci-run stop -")]
pub struct Args {
    /// One reading, then exit
    #[arg(long = "no-stream")]
    no_stream: bool,
    /// Include containers that are not running (their figures are 0)
    #[arg(short, long)]
    all: bool,
    /// Containers (default: every running one; - for container objects on stdin)
    #[arg(value_name = "CONTAINER")]
    containers: Vec<String>,
}

fn targets(store: &ci_core::store::Store, a: &Args) -> Result<Vec<(Container, Option<i32>)>> {
    let list: Vec<Container> = if a.containers.is_empty() {
        container::list(store)?
    } else {
        let mut v = Vec::new();
        for (_, c) in crate::each::containers(store, &a.containers)? {
            v.push(c?);
        }
        v
    };
    let mut out = Vec::new();
    for mut c in list {
        let Ok(seen) = state::refresh(store, &mut c) else { continue };
        let running = seen.status == Status::Running;
        if running || a.all || !a.containers.is_empty() {
            out.push((c, seen.pid));
        }
    }
    out.sort_by(|x, y| x.0.record.name.cmp(&y.0.record.name));
    Ok(out)
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let store = g.store()?;
    let names_given = !a.containers.is_empty();
    if names_given {
        // Fail early on a name that does not exist.
        for n in ci_core::object::expand_stdin(&a.containers, "container")? {
            names::resolve(&store, &n)?;
        }
    }
    let mut prev: HashMap<String, stats::Sample> = HashMap::new();
    let mut first = true;
    loop {
        let mut rows = Vec::new();
        let list = targets(&store, &a)?;
        if first {
            // A first reading, so that CPU % covers an interval.
            for (c, pid) in &list {
                if let Some(pid) = pid {
                    if let Ok(s) = stats::sample(c, *pid) {
                        prev.insert(c.record.id.clone(), s);
                    }
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
            first = false;
        }
        let mut next = HashMap::new();
        for (c, pid) in &list {
            let row = match pid {
                Some(pid) => match stats::sample(c, *pid) {
                    Ok(s) => {
                        let r = stats::object(c, prev.get(&c.record.id), &s);
                        next.insert(c.record.id.clone(), s);
                        r
                    }
                    Err(_) => idle(c),
                },
                None => idle(c),
            };
            rows.push(row);
        }
        prev = next;
        let mut out = std::io::stdout().lock();
        if g.json() {
            for r in &rows {
                emit_json(&mut out, r)?;
            }
        } else {
            if !a.no_stream {
                // Clear the screen and go home, as docker's live table does.
                write!(out, "\x1b[2J\x1b[H").map_err(|e| Error::io("write", "stdout", e))?;
            }
            write_table(&mut out, ContainerStats::headers(), rows.iter().map(Tabular::row).collect()).map_err(|e| Error::io("write", "stdout", e))?;
        }
        out.flush().map_err(|e| Error::io("write", "stdout", e))?;
        if a.no_stream {
            return Ok(0);
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// The row of a container that is not running.
fn idle(c: &Container) -> ContainerStats {
    ContainerStats {
        kind: "container".into(),
        id: c.record.id.clone(),
        name: c.record.name.clone(),
        cpu_percent: 0.0,
        memory_usage: 0,
        memory_limit: 0,
        memory_percent: 0.0,
        net_rx: 0,
        net_tx: 0,
        block_read: 0,
        block_write: 0,
        pids: 0,
    }
}
