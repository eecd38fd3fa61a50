use ci_core::cli::GlobalOpts;
use ci_core::compression::Compression;
use ci_core::distribution::progress::Progress;
use ci_core::distribution::transfer::{push_images, TransferOptions};
use ci_core::Result;

use crate::NetOpts;

/// How to compress layers the store keeps uncompressed.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Comp {
    Gzip,
    Zstd,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Push every local tag of SRC's repository (SRC is then NAME without tag)
    #[arg(long)]
    all_tags: bool,
    /// Compression of layers that the store keeps uncompressed (layers pulled compressed go as they are)
    #[arg(long, value_enum, default_value = "gzip")]
    compression: Comp,
    #[command(flatten)]
    net: NetOpts,
    /// The image in the store (name, id, or - for image objects on stdin)
    #[arg(value_name = "SRC", required = true)]
    src: Option<String>,
    /// Registry reference, docker-archive:FILE[:REF], oci-archive:FILE[:REF] or oci:DIR[:REF] (default: SRC's name)
    #[arg(value_name = "DEST")]
    dest: Option<String>,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let store = g.store()?;
    let opts = TransferOptions {
        client: a.net.client(),
        jobs: a.net.jobs,
        compression: match a.compression {
            Comp::Gzip => Compression::Gzip,
            Comp::Zstd => Compression::Zstd,
        },
        all_tags: a.all_tags,
        ..Default::default()
    };
    let src = a.src.expect("clap requires SRC");
    let pushed = push_images(&store, &src, a.dest.as_deref(), &opts, &Progress::new("ci-push"))?;
    crate::print(g, &pushed)?;
    Ok(0)
}
