use ci_core::cli::GlobalOpts;
use ci_core::distribution::manifest::Platform;
use ci_core::distribution::progress::Progress;
use ci_core::distribution::transfer::{pull_images, TransferOptions};
use ci_core::Result;

use crate::NetOpts;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// From an index (multi-platform image), take this platform's manifest: OS/ARCH[/VARIANT]
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    /// Pull every tag of the repository (SRC is then NAME without tag)
    #[arg(long)]
    all_tags: bool,
    #[command(flatten)]
    net: NetOpts,
    /// Registry reference, docker-archive:FILE[:REF], oci-archive:FILE[:REF], oci:DIR[:REF], or - (an archive on stdin)
    #[arg(value_name = "SRC")]
    src: String,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let platform = match &a.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let store = g.store()?;
    let opts = TransferOptions { client: a.net.client(), jobs: a.net.jobs, platform, all_tags: a.all_tags, ..Default::default() };
    let pulled = pull_images(&store, &a.src, &opts, &Progress::new("ci-pull"))?;
    crate::print(g, &pulled)?;
    Ok(0)
}
