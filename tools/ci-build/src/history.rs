use ci_core::cli::GlobalOpts;
use ci_core::image::{self, HistoryEntry};
use ci_core::object::{ago, emit_json_lines, emit_table, expand_one, human_size, Tabular};
use ci_core::Result;

/// Show how an image was made, one step per line, newest first
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ci-build history app:1
  ci-build history --no-trunc --format json app:1
  ci-build import rootfs.tar | ci-build history -")]
pub struct Args {
    /// Do not shorten the CREATED BY column
    #[arg(long)]
    no_trunc: bool,
    /// The image (reference, id or id prefix; - reads one image object from stdin)
    #[arg(value_name = "IMAGE")]
    image: String,
}

struct Row<'a>(&'a HistoryEntry, bool);

impl Tabular for Row<'_> {
    fn headers() -> &'static [&'static str] {
        &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    }
    fn row(&self) -> Vec<String> {
        let h = self.0;
        let mut by = h.created_by.clone();
        if !self.1 && by.chars().count() > 45 {
            by = by.chars().take(44).collect::<String>() + "…";
        }
        vec![
            h.image.short().to_string(),
            h.created.as_deref().map(ago).unwrap_or_else(|| "N/A".into()),
            by,
            human_size(h.size),
            h.comment.clone().unwrap_or_default(),
        ]
    }
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let store = g.store()?;
    let img = image::resolve(&store, &expand_one(&a.image, "image", "history")?)?;
    let entries = image::history(&img)?;
    let out = &mut std::io::stdout().lock();
    if g.json() {
        emit_json_lines(out, &entries)?;
    } else {
        emit_table(out, &entries.iter().map(|e| Row(e, a.no_trunc)).collect::<Vec<_>>())?;
    }
    Ok(0)
}
