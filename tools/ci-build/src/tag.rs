use ci_core::cli::GlobalOpts;
use ci_core::error::Error;
use ci_core::image;
use ci_core::object::{emit_json, emit_table, expand_stdin};
use ci_core::reference::Reference;
use ci_core::Result;

/// Give an image more names
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ci-build tag busybox:latest localhost:5000/tools/bb:1
  ci-build import rootfs.tar | ci-build tag - app:1 app:latest")]
pub struct Args {
    /// The image (reference, id or id prefix; - reads one image object from stdin)
    #[arg(value_name = "SOURCE")]
    source: String,
    /// New names
    #[arg(required = true, value_name = "TARGET")]
    targets: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let targets = a.targets.iter().map(|t| Reference::parse(t)).collect::<Result<Vec<_>>>()?;
    if let Some(t) = targets.iter().find(|t| t.digest().is_some()) {
        return Err(Error::invalid(format!("cannot tag with a digest reference ({t}); give name:tag")));
    }
    let sources = expand_stdin(std::slice::from_ref(&a.source), "image")?;
    let store = g.store()?;
    let out = &mut std::io::stdout().lock();
    for s in &sources {
        let img = image::tag(&store, s, &targets)?;
        let obj = img.to_object(false);
        if g.json() {
            emit_json(out, &obj)?;
        } else {
            let rows: Vec<_> = obj.tags.iter().map(|t| crate::ls::Row::from_object(&obj, Some(t.clone()))).collect();
            emit_table(out, &rows)?;
        }
    }
    Ok(0)
}
