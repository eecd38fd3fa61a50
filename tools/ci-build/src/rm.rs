use std::io::Write;

use ci_core::cli::GlobalOpts;
use ci_core::image;
use ci_core::object::{emit_json, expand_stdin};
use ci_core::error::ExitClass;
use ci_core::Result;

/// Remove images (untag a name; delete an image and the blobs only it used)
///
/// Given a name, the name goes; the image goes with its last name. Given an
/// id, the image goes with all its names (several names need -f). An image
/// that a container uses is refused; -f untags it and keeps it for the container.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ci-build rm app:1                             remove one name
  ci-build rm -f 3f2a                           remove the image with all its names
  ci-build ls -q --filter dangling=true | xargs -r ci-build rm")]
pub struct Args {
    /// Remove even if several names or containers refer to it
    #[arg(short, long)]
    force: bool,
    /// Images (reference, id or id prefix; - reads image objects from stdin)
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let store = g.store()?;
    let names = expand_stdin(&a.images, "image")?;
    let out = &mut std::io::stdout().lock();
    // The exit status of the worst failure: 1 if any removal failed, 2 if
    // every failure was a usage error (a malformed name, an ambiguous prefix).
    let mut status = 0;
    for n in &names {
        match image::remove(&store, n, a.force) {
            Ok(r) if g.json() => emit_json(out, &r)?,
            Ok(r) => {
                for t in &r.untagged {
                    let _ = writeln!(out, "Untagged: {t}");
                }
                if r.deleted {
                    let _ = writeln!(out, "Deleted: {}", r.id);
                }
            }
            // Like docker: go on with the others, report each failure, fail at the end.
            Err(e) => {
                eprintln!("ci-build: error: {e}");
                status = match (e.exit_class(), status) {
                    (ExitClass::Usage, 0 | 2) => 2,
                    _ => 1,
                };
            }
        }
    }
    Ok(status)
}
