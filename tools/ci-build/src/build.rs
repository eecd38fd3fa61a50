use std::collections::BTreeMap;
use std::path::PathBuf;

use ci_core::build::{self, BuildOptions, ContextSource, DockerfileSource};
use ci_core::cli::GlobalOpts;
use ci_core::error::{Error, IoContext};
use ci_core::object::{emit_json, ImageObject};
use ci_core::reference::Reference;
use ci_core::runtime::{self, Network};
use ci_core::Result;

/// Build an image from a Dockerfile and a context, like `docker build`
///
/// CONTEXT is a directory, or - to read a tar archive of one (plain or
/// compressed) from stdin; plain text on stdin is a Dockerfile with an
/// empty context. Each step is cached: an unchanged rebuild runs nothing.
/// RUN steps run in containers of the same engine as ci-run. stdout gets
/// the image object (JSON when piped, the id on a terminal); progress goes
/// to stderr.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ci-build -t web:1 .                              build ./Dockerfile with . as the context
  ci-build -t web . | ci-run -d -                  build, then run what was built
  ci-build -f build/Dockerfile.dev --target test .
  ci-build --build-arg VERSION=1.2 --label team=core -t app:1.2 .
  tar -C src -c . | ci-build -t app -             the context as a tar on stdin
  ci-build -f - . < Dockerfile                     the Dockerfile on stdin
  ci-build build -t x ls                           a context directory named like a verb
  SOURCE_DATE_EPOCH=0 ci-build -t app .            reproducible: same context, same digest")]
pub struct Args {
    /// Name the image (repeatable)
    #[arg(short = 't', long = "tag", value_name = "REF")]
    tags: Vec<String>,
    /// The Dockerfile (default CONTEXT/Dockerfile), or - for stdin
    #[arg(short = 'f', long = "file", value_name = "FILE|-")]
    file: Option<String>,
    /// Set a build argument declared with ARG (repeatable); NAME alone takes its value from the environment
    #[arg(long = "build-arg", value_name = "NAME[=VALUE]")]
    build_args: Vec<String>,
    /// Build up to this stage (by its AS name) instead of the last one
    #[arg(long, value_name = "STAGE")]
    target: Option<String>,
    /// Do not use the build cache (steps are still recorded in it)
    #[arg(long)]
    no_cache: bool,
    /// Add a label to the image (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Network of RUN steps. default: loopback only until ci-net provides bridges (for now the same as none: a network namespace of its own with only lo); none: loopback only; host: the host's network (its interfaces, routes and 127.0.0.1)
    #[arg(long, value_name = "MODE", default_value = "default", value_parser = ["default", "none", "host"])]
    network: String,
    /// Grant an entitlement the Dockerfile asks for: network.host (RUN --network=host), security.insecure (RUN --security=insecure)
    #[arg(long = "allow", value_name = "ENTITLEMENT", value_parser = ["network.host", "security.insecure"])]
    allow: Vec<String>,
    /// No progress output
    #[arg(short, long)]
    quiet: bool,
    /// Write the image id to this file
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// Progress output: auto (live on a terminal, plain lines otherwise), plain or tty
    #[arg(long, value_name = "MODE", default_value = "auto", value_parser = ["auto", "plain", "tty"])]
    progress: String,
    /// The context directory, or - for a tar archive on stdin
    #[arg(value_name = "CONTEXT|-")]
    pub context: Option<String>,
}

fn key_value(s: &str, flag: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(Error::invalid(format!("{flag} {s:?}: expected KEY=VALUE"))),
    }
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let context = a.context.clone().ok_or_else(|| {
        Error::invalid("a CONTEXT is required: ci-build [OPTIONS] CONTEXT|-").hint("`ci-build .` builds ./Dockerfile; see ci-build --help")
    })?;
    if context != "-" && !std::path::Path::new(&context).exists() {
        const VERBS: &[&str] = &["build", "import", "ls", "images", "inspect", "tag", "rm", "rmi", "history", "prune", "fsck"];
        let err = Error::invalid(format!("the build context {context:?} does not exist"));
        return Err(match ci_core::dockerfile::instruction::closest(&context, VERBS) {
            Some(v) => err.hint(format!("did you mean the verb `ci-build {v}`?")),
            None => err.hint("give the context directory (usually `.`), or `-` for a tar archive on stdin"),
        });
    }
    // RUN steps start containers: run from a read-only copy of this binary (CVE-2019-5736).
    runtime::exe::ensure_protected()?;
    let tags = a.tags.iter().map(|t| Reference::parse(t)).collect::<Result<Vec<_>>>()?;
    let mut build_args = BTreeMap::new();
    for b in &a.build_args {
        match b.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                build_args.insert(k.to_string(), v.to_string());
            }
            Some(_) => return Err(Error::invalid(format!("--build-arg {b:?}: expected NAME=VALUE or NAME"))),
            None => {
                if let Ok(v) = std::env::var(b) {
                    build_args.insert(b.clone(), v);
                }
            }
        }
    }
    let labels = a.labels.iter().map(|l| key_value(l, "--label")).collect::<Result<BTreeMap<_, _>>>()?;
    let opts = BuildOptions {
        context: if context == "-" { ContextSource::Stdin } else { ContextSource::Dir(PathBuf::from(&context)) },
        dockerfile: match a.file.as_deref() {
            None => DockerfileSource::Default,
            Some("-") => DockerfileSource::Stdin,
            Some(f) => DockerfileSource::Path(PathBuf::from(f)),
        },
        tags,
        build_args,
        target: a.target.clone(),
        no_cache: a.no_cache,
        labels,
        // No bridge networks yet (ci-net): `default` cannot reach outside, so it is `none`, as --help says.
        network: if a.network == "host" { Network::Host } else { Network::None },
        allow: a.allow.clone(),
        progress: build::progress::Mode::parse(if a.quiet { "quiet" } else { &a.progress })?,
    };
    let store = g.store()?;
    let built = build::build(&store, &opts)?;
    if let Some(f) = &a.iidfile {
        std::fs::write(f, built.image.id.to_string()).ctx("write --iidfile", f)?;
    }
    let obj: ImageObject = built.image.to_object(false);
    let out = &mut std::io::stdout().lock();
    if g.json() {
        emit_json(out, &obj)?;
    } else {
        std::io::Write::write_all(out, format!("{}\n", obj.id).as_bytes()).ctx("write", "stdout")?;
    }
    Ok(0)
}
