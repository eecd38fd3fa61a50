use ci_core::cli::GlobalOpts;
use ci_core::image::import::{import, open_source, ImportOptions};
use ci_core::object::{emit_json, emit_table, ImageObject};
use ci_core::reference::Reference;
use ci_core::Result;

/// Make a one-layer image from a root filesystem tarball, like `docker import`
///
/// The tarball may be plain, gzip, zstd or xz (recognised by content). It
/// becomes the image's only layer, stored uncompressed. `--change` sets the
/// image config with Dockerfile instructions, applied in order.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ci-build import --tag bb:1 rootfs.tar.gz
  tar -C rootfs -c . | ci-build import - | ci-build tag - app:1
  ci-build import -m nightly -t app:nightly app-rootfs.tar.zst
  ci-build import -c 'CMD [\"/bin/sh\"]' -c 'ENV LANG=C.UTF-8' -c 'EXPOSE 8080' -t app:1 rootfs.tar")]
pub struct Args {
    /// Name the new image (repeatable)
    #[arg(short = 't', long = "tag", value_name = "REF")]
    tags: Vec<String>,
    /// Commit message recorded in the image's history
    #[arg(short, long)]
    message: Option<String>,
    /// Apply a Dockerfile instruction to the config (repeatable): CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME or WORKDIR
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    changes: Vec<String>,
    /// The tarball, or - for stdin
    #[arg(value_name = "FILE|-")]
    file: String,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let tags = a.tags.iter().map(|t| Reference::parse(t)).collect::<Result<Vec<_>>>()?;
    let store = g.store()?;
    let opts = ImportOptions { source: a.file.clone(), tags, message: a.message, changes: a.changes };
    let img = import(&store, open_source(&a.file)?, &opts)?;
    let obj: ImageObject = img.to_object(false);
    let out = &mut std::io::stdout().lock();
    if g.json() {
        emit_json(out, &obj)?;
    } else {
        emit_table(out, &[crate::ls::Row::from_object(&obj, obj.tags.first().cloned())])?;
    }
    Ok(0)
}
