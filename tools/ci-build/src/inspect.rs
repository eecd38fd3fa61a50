use std::io::Write;

use ci_core::cli::GlobalOpts;
use ci_core::image;
use ci_core::object::{emit_json, expand_stdin};
use ci_core::Result;

/// Show images in full: the image object with its manifest and config
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ci-build inspect busybox:latest
  ci-build inspect 3f2a | jq .config.config.Env
  ci-build ls | ci-build inspect -")]
pub struct Args {
    /// Images (reference, id or id prefix; - reads image objects from stdin)
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let store = g.store()?;
    let names = expand_stdin(&a.images, "image")?;
    let out = &mut std::io::stdout().lock();
    for n in &names {
        let obj = image::resolve(&store, n)?.to_object(true);
        if g.json() {
            emit_json(out, &obj)?;
        } else {
            let text = serde_json::to_string_pretty(&obj).expect("serialisable");
            let _ = writeln!(out, "{text}");
        }
    }
    Ok(0)
}
