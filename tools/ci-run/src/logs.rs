use std::io::Write;

use ci_core::cli::GlobalOpts;
use ci_core::error::Error;
use ci_core::runtime::{logs, names, state};
use ci_core::Result;

/// Print what a detached container wrote
///
/// A container run with -d (or started with `ci-run start`) has its
/// output kept by its monitor in ROOT/containers/ID/json.log, one JSON
/// record per line. This prints it as it was written, stdout lines on
/// stdout and stderr lines on stderr. `--format json` prints the records.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ci-run logs web                   everything it printed
  ci-run logs -f --tail 10 web      the last 10 lines, then new ones until it stops for good
  ci-run logs --since 5m -t web     the last five minutes, with timestamps")]
pub struct Args {
    /// Keep printing new output until the container stops for good (across restarts)
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines ("all": everything)
    #[arg(short = 'n', long, value_name = "N", default_value = "all")]
    tail: String,
    /// Only output since a time: RFC 3339, a Unix time, or a duration ago (10m, 1h30m)
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only output before a time (same forms as --since)
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Prefix each line with the time it was written
    #[arg(short, long)]
    timestamps: bool,
    /// The container (id, id prefix, name, or - for a container object on stdin)
    #[arg(value_name = "CONTAINER")]
    container: String,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let store = g.store()?;
    let name = ci_core::object::expand_one(&a.container, "container", "logs")?;
    let mut c = names::resolve(&store, &name)?;
    let q = logs::Query::from_flags(a.since.as_deref(), a.until.as_deref(), &a.tail)?;
    if !logs::exists(&c.dir) {
        if c.record.log.enabled() {
            return Err(Error::invalid(format!("container {} has no log: it has only run in the foreground, where its output went to ci-run's own stdout", c.record.name))
                .hint("containers run with -d, or started with `ci-run start`, keep a log"));
        }
        return Err(Error::invalid(format!("container {} was run with --log-driver none: nothing was kept", c.record.name)));
    }
    // Follow only while a monitor is there to write more.
    let owner = if a.follow {
        let seen = state::refresh(&store, &mut c)?;
        seen.run.filter(|r| r.monitor && seen.owner_alive).and_then(|r| state::pidfd(r.owner_pid, r.owner_start_time, &r.boot_id))
    } else {
        None
    };
    let json = g.format == ci_core::cli::Format::Json;
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let mut sink = |r: &logs::Record| -> Result<()> {
        let w: &mut dyn Write = if r.stream == "stderr" && !json { &mut err } else { &mut out };
        let res = if json {
            let mut line = serde_json::to_vec(r).expect("records serialise");
            line.push(b'\n');
            w.write_all(&line)
        } else if a.timestamps {
            write!(w, "{} {}", r.time, r.log)
        } else {
            w.write_all(r.log.as_bytes())
        };
        res.and_then(|()| w.flush()).map_err(|e| Error::io("write", "stdout", e))
    };
    match logs::stream(&c.dir, &q, owner.as_ref().map(std::os::fd::AsFd::as_fd), &mut sink) {
        // `ci-run logs web | head`: the reader left; not our failure.
        Err(e) if matches!(e.root(), Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe) => Ok(0),
        r => r.map(|()| 0),
    }
}

