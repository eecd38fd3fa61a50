use ci_core::cli::GlobalOpts;
use ci_core::error::Error;
use ci_core::glob;
use ci_core::image::{self, Image};
use ci_core::object::{ago, emit_json_lines, emit_table, human_size, ImageObject, Tabular};
use ci_core::Result;

/// List images
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ci-build ls                                   all images (a table on a terminal)
  ci-build ls 'busy*'                           images whose repository matches
  ci-build ls --digests --no-trunc
  ci-build ls -q --filter dangling=true | xargs -r ci-build rm
  ci-build ls --format json | jq -r .id")]
pub struct Args {
    /// Only images whose name matches (a pattern such as `busy*` or `app:1.*`)
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pattern: Option<String>,
    /// Print only image ids
    #[arg(short, long)]
    quiet: bool,
    /// Show manifest digests
    #[arg(long)]
    digests: bool,
    /// Print full ids
    #[arg(long)]
    no_trunc: bool,
    /// Filter: dangling=true|false, reference=PATTERN (repeatable; all must hold)
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    filters: Vec<String>,
}

/// One line of the table: one per name, as docker shows it.
pub struct Row {
    repository: String,
    tag: String,
    digest: String,
    id: String,
    created: String,
    size: String,
}

impl Row {
    pub fn from_object(o: &ImageObject, name: Option<String>) -> Row {
        let (repository, tag) = match name.as_deref().and_then(|n| n.rsplit_once(':').filter(|(r, _)| !r.ends_with('/'))) {
            Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
            _ => ("<none>".into(), "<none>".into()),
        };
        Row {
            repository,
            tag,
            digest: o.digest.to_string(),
            id: o.id.short().to_string(),
            created: o.created.as_deref().map(ago).unwrap_or_else(|| "N/A".into()),
            size: human_size(o.size),
        }
    }
}

impl Tabular for Row {
    fn headers() -> &'static [&'static str] {
        &["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    }
    fn row(&self) -> Vec<String> {
        vec![self.repository.clone(), self.tag.clone(), self.id.clone(), self.created.clone(), self.size.clone()]
    }
}

struct DigestRow(Row);
impl Tabular for DigestRow {
    fn headers() -> &'static [&'static str] {
        &["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"]
    }
    fn row(&self) -> Vec<String> {
        let r = &self.0;
        vec![r.repository.clone(), r.tag.clone(), r.digest.clone(), r.id.clone(), r.created.clone(), r.size.clone()]
    }
}

enum Filter {
    Dangling(bool),
    Reference(String),
}

fn parse_filter(f: &str) -> Result<Filter> {
    match f.split_once('=') {
        Some(("dangling", v)) => match v {
            "true" | "1" => Ok(Filter::Dangling(true)),
            "false" | "0" => Ok(Filter::Dangling(false)),
            _ => Err(Error::invalid(format!("--filter {f:?}: dangling takes true or false"))),
        },
        Some(("reference", v)) => Ok(Filter::Reference(v.to_string())),
        _ => Err(Error::invalid(format!(
            "--filter {f:?}: unknown filter; ci-build ls knows dangling=true|false and reference=PATTERN"
        ))),
    }
}

/// Does one of the image's short names match a reference pattern?
/// `busy*` matches `busybox:latest` by repository; `busybox:1*` by name and tag.
fn name_matches(pattern: &str, name: &str) -> Result<bool> {
    let bad = |_| Error::invalid(format!("invalid pattern {pattern:?}"));
    let repo = name.rsplit_once(':').map(|(r, _)| r).unwrap_or(name);
    Ok(glob::matches(pattern, name).map_err(bad)? || glob::matches(pattern, repo).map_err(bad)?)
}

fn keep(img: &Image, filters: &[Filter]) -> Result<bool> {
    for f in filters {
        let ok = match f {
            Filter::Dangling(d) => img.refs.is_empty() == *d,
            Filter::Reference(p) => {
                let mut any = false;
                for t in img.tags() {
                    any |= name_matches(p, &t)?;
                }
                any
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let mut filters = a.filters.iter().map(|f| parse_filter(f)).collect::<Result<Vec<_>>>()?;
    if let Some(p) = &a.pattern {
        filters.push(Filter::Reference(p.clone()));
    }
    let store = g.store()?;
    let mut images = Vec::new();
    for img in image::list(&store)? {
        if keep(&img, &filters)? {
            images.push(img);
        }
    }
    images.sort_by_key(|i| std::cmp::Reverse(i.created()));
    let out = &mut std::io::stdout().lock();
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for img in &images {
            let id = if a.no_trunc { img.id.to_string() } else { img.id.short().to_string() };
            if seen.insert(id.clone()) {
                use std::io::Write;
                let _ = writeln!(out, "{id}");
            }
        }
        return Ok(0);
    }
    if g.json() {
        let objs: Vec<ImageObject> = images.iter().map(|i| i.to_object(false)).collect();
        emit_json_lines(out, &objs)?;
        return Ok(0);
    }
    let mut rows = Vec::new();
    for img in &images {
        let o = img.to_object(false);
        let names = if o.tags.is_empty() { vec![None] } else { o.tags.iter().cloned().map(Some).collect() };
        for n in names {
            let mut r = Row::from_object(&o, n);
            if a.no_trunc {
                r.id = o.id.to_string();
            }
            rows.push(r);
        }
    }
    if a.digests {
        emit_table(out, &rows.into_iter().map(DigestRow).collect::<Vec<_>>())?;
    } else {
        emit_table(out, &rows)?;
    }
    Ok(0)
}

