use std::io::{BufRead, IsTerminal, Write};

use ci_core::cli::GlobalOpts;
use ci_core::error::Error;
use ci_core::object::emit_json;
use ci_core::runtime::{control, state};
use ci_core::Result;

/// Remove every container that is not running
///
/// Created and exited containers go, with their writable layers and logs;
/// running and restarting ones stay. On a terminal it asks first, unless -f.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ci-run prune -f
  ci-run prune -f --filter label=job=nightly")]
pub struct Args {
    /// Do not ask
    #[arg(short, long)]
    force: bool,
    /// Only containers with this label (label=KEY or label=KEY=VALUE)
    #[arg(long = "filter", value_name = "label=KEY[=VALUE]")]
    filter: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let mut labels = Vec::new();
    for f in &a.filter {
        match f.split_once('=') {
            Some(("label", v)) => labels.push(match v.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (v.to_string(), None),
            }),
            _ => return Err(Error::invalid(format!("--filter {f:?}: only label=KEY[=VALUE] is supported"))),
        }
    }
    if !a.force && std::io::stdin().is_terminal() {
        eprint!("This removes every container that is not running. Are you sure? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).map_err(|e| Error::io("read", "stdin", e))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let store = g.store()?;
    let keep = |c: &ci_core::runtime::Container| {
        !labels.iter().all(|(k, v)| match v {
            Some(v) => c.record.labels.get(k) == Some(v),
            None => c.record.labels.contains_key(k),
        })
    };
    let removed = control::prune(&store, keep)?;
    let mut out = std::io::stdout().lock();
    for c in &removed {
        if g.json() {
            emit_json(&mut out, &state::object(c, &state::observe(c)))?;
        } else {
            writeln!(out, "{}", c.record.id).map_err(|e| Error::io("write", "stdout", e))?;
        }
    }
    Ok(0)
}
