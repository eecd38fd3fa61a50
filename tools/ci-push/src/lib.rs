//! ci-push and ci-pull: moving images between the store, registries and
//! archives. Each verb is one file: flags → one core call → objects out.

mod login;
mod logout;
mod pull;
mod push;

use clap::{Parser, Subcommand};
use ci_core::cli::GlobalOpts;
use ci_core::distribution::client::ClientOptions;
use ci_core::distribution::DEFAULT_JOBS;
use ci_core::object::{emit_json, write_table, TransferObject};
use ci_core::{Error, Result};

/// Push an image from the store to a registry or into an archive.
///
/// SRC is an image in the store (a name, an id, or - for the image objects
/// on stdin). DEST is a registry reference (default: SRC's own name, as
/// `docker push` does) or a transport: docker-archive:FILE[:REF] (the
/// `docker save` format, for `docker load`), oci-archive:FILE[:REF] or
/// oci:DIR[:REF]. Layers the store keeps uncompressed are compressed on the
/// way (gzip, or zstd); a second push of the same image sends nothing the
/// registry has. Credentials come from docker's config.json (see `login`).
#[derive(Debug, Parser)]
#[command(
    name = "ci-push",
    version,
    about,
    long_about,
    after_help = PUSH_EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub verb: Option<Verb>,
    #[command(flatten)]
    pub push: push::Args,
}

const PUSH_EXAMPLES: &str = "Examples:
  ci-push localhost:5000/app:1                    push to the registry the name points at
  ci-push app:1 127.0.0.1:5000/team/app:1         push under another name
  ci-push --all-tags localhost:5000/app           every local tag of the repository
  ci-push app:1 docker-archive:app.tar            for `docker load < app.tar`
  ci-push app:1 oci:layout:1                      an OCI layout directory (skopeo, umoci)
  ci-build import rootfs.tar | ci-push - 127.0.0.1:5000/app:1
  echo \"$PW\" | ci-push login -u me --password-stdin 127.0.0.1:5000";

#[derive(Debug, Subcommand)]
pub enum Verb {
    Login(login::Args),
    Logout(logout::Args),
}

/// Pull an image from a registry or an archive into the store.
///
/// SRC is a registry reference (busybox, host:5000/ns/app:1, app@sha256:…),
/// docker-archive:FILE[:REF] (a `docker save` tarball), oci-archive:FILE[:REF],
/// oci:DIR[:REF], or - for a `docker save` or OCI archive on stdin. The
/// manifest and blobs are stored exactly as served, each verified against its
/// digest while it streams; blobs already in the store are not fetched again,
/// and a failed pull leaves the store as it was.
#[derive(Debug, Parser)]
#[command(name = "ci-pull", version, about, long_about, after_help = PULL_EXAMPLES)]
pub struct PullCli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(flatten)]
    pub pull: pull::Args,
}

const PULL_EXAMPLES: &str = "Examples:
  ci-pull 127.0.0.1:5000/app:1                    pull (the host's platform from an index)
  ci-pull --platform linux/arm64 host:5000/app:1  another platform
  ci-pull host:5000/app@sha256:4f1c…              exactly this manifest
  ci-pull --all-tags host:5000/app                every tag of the repository
  docker save app:1 | ci-pull -                   what `docker load` does
  ci-pull oci:layout:1 | ci-run -                 pulled objects feed the next tool";

/// How to reach registries (both directions).
#[derive(Debug, Clone, clap::Args)]
pub struct NetOpts {
    /// Allow plain HTTP and unverified TLS certificates for this registry
    #[arg(long)]
    pub insecure: bool,
    /// Use the certificates in DIR (ca.crt, client.cert/client.key) instead of /etc/docker/certs.d/HOST:PORT
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<std::path::PathBuf>,
    /// Blobs transferred at once
    #[arg(long, short = 'j', value_name = "N", default_value_t = DEFAULT_JOBS, value_parser = clap::value_parser!(usize))]
    pub jobs: usize,
}

impl NetOpts {
    pub fn client(&self) -> ClientOptions {
        ClientOptions { insecure: self.insecure, cert_dir: self.cert_dir.clone() }
    }
}

/// Print what was moved: JSON lines, or a table on a terminal.
pub fn print(g: &GlobalOpts, objects: &[TransferObject]) -> Result<()> {
    let out = &mut std::io::stdout().lock();
    if g.json() {
        for o in objects {
            emit_json(out, o)?;
        }
        return Ok(());
    }
    let rows = objects
        .iter()
        .map(|o| vec![o.reference.clone(), o.digest.to_string(), o.id.short().to_string(), o.uploaded.map(|u| u.to_string()).unwrap_or_default()])
        .collect();
    write_table(out, &["REFERENCE", "DIGEST", "IMAGE ID", "UPLOADED"], rows).map_err(|e| Error::io("write", "stdout", e))
}

pub fn run(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match cli.verb {
        Some(Verb::Login(a)) => login::run(g, a),
        Some(Verb::Logout(a)) => logout::run(g, a),
        None => push::run(g, cli.push),
    }
}

pub fn main() {
    let cli = Cli::parse();
    ci_core::cli::exit_with("ci-push", 1, run(cli))
}

pub fn pull_main() {
    let cli = PullCli::parse();
    ci_core::cli::exit_with("ci-pull", 1, pull::run(&cli.global, cli.pull))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clis_are_well_formed() {
        Cli::command().debug_assert();
        PullCli::command().debug_assert();
        let c = Cli::try_parse_from(["ci-push", "login", "-u", "me", "--password-stdin", "127.0.0.1:5000"]).unwrap();
        assert!(matches!(c.verb, Some(Verb::Login(_))));
        let c = Cli::try_parse_from(["ci-push", "--compression", "zstd", "app:1", "oci:x"]).unwrap();
        assert!(c.verb.is_none());
        assert!(Cli::try_parse_from(["ci-push"]).is_err());
    }
}
