use ci_core::cli::GlobalOpts;
use ci_core::error::Error;
use ci_core::object::{emit_json, write_table, ContainerObject, Tabular};
use ci_core::runtime::{container, state};
use ci_core::Result;

/// List containers (running ones; -a for all)
///
/// The columns docker shows: CONTAINER ID, IMAGE, COMMAND, CREATED, STATUS
/// ("Up 3 minutes", "Exited (0) 2 seconds ago", "Restarting (1) …",
/// "Created"), PORTS, NAMES — newest first. Piped, one container object per
/// line (state, status, exit_code, pid, …), which the other verbs read
/// back with `-`. A container whose monitor died, or whose state was lost
/// in a reboot, is never shown as running (see ci-containers(7)).
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Filters (repeat --filter to combine; the same key twice means either):
  status=created|running|restarting|exited   name=SUBSTRING   id=PREFIX
  label=KEY or label=KEY=VALUE               ancestor=IMAGE (name or id prefix)

Examples:
  ci-run ps                          running containers, as docker shows them
  ci-run ps -a --filter status=exited
  ci-run ps -a --filter status=exited | ci-run rm -   objects on stdin
  ci-run ps --format json | jq .status")]
pub struct Args {
    /// Show all containers (default: only running ones)
    #[arg(short, long)]
    all: bool,
    /// Print only container ids
    #[arg(short, long)]
    quiet: bool,
    /// Keep only containers matching KEY=VALUE (see below)
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    filter: Vec<String>,
    /// Full ids and commands
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Only the N most recently created containers (all states)
    #[arg(short = 'n', long, value_name = "N")]
    last: Option<usize>,
    /// Only the most recently created container (all states)
    #[arg(short, long)]
    latest: bool,
}

struct Filter {
    key: String,
    value: String,
}

fn parse_filters(f: &[String]) -> Result<Vec<Filter>> {
    f.iter()
        .map(|s| {
            let (k, v) = s.split_once('=').ok_or_else(|| Error::invalid(format!("--filter {s:?}: expected KEY=VALUE")))?;
            match k {
                "status" if !["created", "running", "restarting", "exited", "paused", "removing", "dead"].contains(&v) => {
                    Err(Error::invalid(format!("--filter status={v}: use created, running, restarting or exited")))
                }
                "status" | "name" | "id" | "label" | "ancestor" => Ok(Filter { key: k.into(), value: v.into() }),
                _ => Err(Error::invalid(format!("--filter {k}: unknown filter")).hint("filters: status, name, id, label, ancestor")),
            }
        })
        .collect()
}

fn matches(o: &ContainerObject, c: &container::Container, f: &Filter) -> bool {
    match f.key.as_str() {
        "status" => o.state == f.value,
        "name" => o.name.contains(&f.value),
        "id" => o.id.starts_with(&f.value),
        "label" => match f.value.split_once('=') {
            Some((k, v)) => o.labels.get(k).is_some_and(|x| x == v),
            None => o.labels.contains_key(&f.value),
        },
        "ancestor" => {
            let v = f.value.as_str();
            o.image == v
                || o.image.strip_suffix(":latest") == Some(v)
                || (!c.record.image.is_empty() && (c.record.image == v || c.record.image.trim_start_matches("sha256:").starts_with(v.trim_start_matches("sha256:"))))
        }
        _ => true,
    }
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let filters = parse_filters(&a.filter)?;
    let store = g.store()?;
    let mut rows: Vec<ContainerObject> = Vec::new();
    let mut all = container::list(&store)?;
    // Newest first, as docker lists them.
    all.sort_by(|x, y| y.record.created.cmp(&x.record.created));
    let limit = if a.latest { Some(1) } else { a.last };
    if let Some(n) = limit {
        all.truncate(n);
    }
    let show_all = a.all || limit.is_some() || filters.iter().any(|f| f.key == "status");
    for mut c in all {
        // A record removed meanwhile (its --rm) is simply not listed.
        let Ok(seen) = state::refresh(&store, &mut c) else { continue };
        let o = state::object(&c, &seen);
        if !show_all && o.state != "running" {
            continue;
        }
        // Same key: any value may match; different keys: all must.
        let keys: std::collections::BTreeSet<&str> = filters.iter().map(|f| f.key.as_str()).collect();
        if !keys.iter().all(|k| filters.iter().filter(|f| f.key == *k).any(|f| matches(&o, &c, f))) {
            continue;
        }
        rows.push(o);
    }
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for r in &rows {
            let id = if a.no_trunc { r.id.as_str() } else { &r.id[..12] };
            println!("{id}");
        }
    } else if g.json() {
        for r in &rows {
            emit_json(&mut out, r)?;
        }
    } else {
        let table = rows.iter().map(|r| r.ps_row(a.no_trunc)).collect();
        write_table(&mut out, ContainerObject::headers(), table).map_err(|e| Error::io("write", "stdout", e))?;
    }
    Ok(0)
}
