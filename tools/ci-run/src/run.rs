use std::collections::BTreeMap;
use std::path::PathBuf;

use ci_core::cli::GlobalOpts;
use ci_core::error::Error;
use ci_core::object::expand_stdin;
use ci_core::runtime::{self, spec::DeviceRequest, Network, Outcome, RunOptions};
use ci_core::Result;

/// Run a command in a new container
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ci-run run bb:1 echo hello
  ci-run run --rm -it bb:1 sh
  ci-run run -d --restart on-failure:3 bb:1 sh -c 'date; exit 1'")]
pub struct Args {
    /// Name the container (unique in the store; default: a random adjective_name)
    #[arg(long)]
    name: Option<String>,
    /// Remove the container and its writable layer when it exits
    #[arg(long)]
    rm: bool,
    /// Run in the background under a monitor; print its id (the container object when piped)
    #[arg(short = 'd', long)]
    detach: bool,
    /// Restart policy of a -d container: no, on-failure[:MAX], always, unless-stopped
    #[arg(long, value_name = "POLICY", default_value = "no")]
    restart: String,
    /// Where a -d container's output goes: json-file (default) or none
    #[arg(long = "log-driver", value_name = "DRIVER")]
    log_driver: Option<String>,
    /// Log option: max-size=SIZE (default 20m), max-file=N (default 5)
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    log_opt: Vec<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to pass ci-run's own value)
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines, # comments)
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container (created if missing)
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// User to run as: name, uid, name:group or uid:gid (names from the container's /etc/passwd)
    #[arg(short = 'u', long = "user", value_name = "USER[:GROUP]")]
    user: Option<String>,
    /// Add a supplementary group (name from the container's /etc/group, or gid)
    #[arg(long = "group-add", value_name = "GROUP")]
    group_add: Vec<String>,
    /// Hostname of the container (default: the first 12 digits of its id)
    #[arg(short = 'h', long = "hostname")]
    hostname: Option<String>,
    /// Replace the image's ENTRYPOINT (and drop its CMD); "" clears it
    #[arg(long, value_name = "CMD")]
    entrypoint: Option<String>,
    /// Keep stdin open and connected to the container
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Give the container a terminal (a pty; with -i, your keys go to it)
    #[arg(short = 't', long)]
    tty: bool,
    /// Mount the container's root filesystem read-only
    #[arg(long = "read-only")]
    read_only: bool,
    /// Network: none (its own namespace, loopback only) or host (--net is the same flag)
    #[arg(long, alias = "net", value_name = "none|host", default_value = "none", value_parser = ["none", "host"])]
    network: String,
    /// Set a label on the container (KEY=VALUE)
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Add a capability (e.g. NET_ADMIN, or ALL)
    #[arg(long = "cap-add", value_name = "CAP")]
    cap_add: Vec<String>,
    /// Drop a capability (e.g. MKNOD, or ALL)
    #[arg(long = "cap-drop", value_name = "CAP")]
    cap_drop: Vec<String>,
    /// Every capability, no seccomp filter, no masked paths, all devices
    #[arg(long)]
    privileged: bool,
    /// seccomp=unconfined, or no-new-privileges[=true|false]
    #[arg(long = "security-opt", value_name = "OPT")]
    security_opt: Vec<String>,
    /// Memory limit (e.g. 64m, 1g); the container is killed (exit 137) past it
    #[arg(short = 'm', long, value_name = "BYTES")]
    memory: Option<String>,
    /// Memory plus swap (e.g. 128m; -1: unlimited swap; default: twice --memory)
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// CPU limit, in CPUs (e.g. 0.5)
    #[arg(long, value_name = "N")]
    cpus: Option<f64>,
    /// Relative CPU weight when CPUs are contended (default 1024; cpu.shares, or cpu.weight on cgroup v2)
    #[arg(short = 'c', long = "cpu-shares", value_name = "N")]
    cpu_shares: Option<u64>,
    /// Maximum number of processes in the container (-1: unlimited)
    #[arg(long = "pids-limit", value_name = "N", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Give the container a host device: HOST[:CONTAINER[:rwm]]
    #[arg(long, value_name = "DEVICE")]
    device: Vec<String>,
    /// Signal that stops the container (default: the image's STOPSIGNAL, else SIGTERM)
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    stop_signal: Option<String>,
    /// Use this root filesystem directory (read-only, under a private writable layer) instead of an image
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// The image (reference, id, or - for an image object on stdin), then the
    /// command and its arguments (default: the image's ENTRYPOINT and CMD).
    /// Everything after the image belongs to the command.
    #[arg(value_name = "IMAGE [COMMAND [ARG...]]", trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// docker's RAMInBytes: a number with an optional b/k/m/g/t/p suffix (powers of 1024).
fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').filter(|r| !r.is_empty() && r.ends_with(|c: char| c.is_ascii_alphabetic())).unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('b') => (&t[..t.len() - 1], 1),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| Error::invalid(format!("invalid size {s:?}: use a number with an optional k, m, g suffix (e.g. 64m)")))?;
    if n < 0.0 {
        return Err(Error::invalid(format!("invalid size {s:?}: negative")));
    }
    Ok((n * mult as f64) as i64)
}

impl Args {
    fn options(&self) -> Result<RunOptions> {
        let mut o = RunOptions::new();
        o.name = self.name.clone();
        o.env = self.env.clone();
        o.env_files = self.env_file.clone();
        o.workdir = self.workdir.clone();
        o.user = self.user.clone();
        o.group_add = self.group_add.clone();
        o.hostname = self.hostname.clone();
        o.entrypoint = self.entrypoint.clone();
        o.interactive = self.interactive;
        o.tty = self.tty;
        o.read_only = self.read_only;
        o.network = if self.network == "host" { Network::Host } else { Network::None };
        o.labels = self
            .label
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                None if !l.is_empty() => Ok((l.clone(), String::new())),
                _ => Err(Error::invalid(format!("--label {l:?}: expected KEY=VALUE"))),
            })
            .collect::<Result<BTreeMap<_, _>>>()?;
        o.cap_add = self.cap_add.clone();
        o.cap_drop = self.cap_drop.clone();
        o.privileged = self.privileged;
        for s in &self.security_opt {
            match s.as_str() {
                "seccomp=unconfined" | "seccomp:unconfined" => o.seccomp = false,
                "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true" => o.no_new_privileges = true,
                "no-new-privileges=false" | "no-new-privileges:false" => o.no_new_privileges = false,
                other => {
                    return Err(Error::invalid(format!("--security-opt {other:?} is not supported"))
                        .hint("supported: seccomp=unconfined, no-new-privileges[=true|false]"))
                }
            }
        }
        o.remove = self.rm;
        o.memory = self.memory.as_deref().map(parse_bytes).transpose()?;
        o.memory_swap = match self.memory_swap.as_deref() {
            None => None,
            Some("-1") => Some(-1),
            Some(v) => Some(parse_bytes(v).map_err(|e| e.context("--memory-swap"))?),
        };
        o.cpu_shares = self.cpu_shares;
        o.cpus = self.cpus;
        if let Some(c) = o.cpus {
            if c <= 0.0 {
                return Err(Error::invalid(format!("--cpus {c}: must be more than 0")));
            }
        }
        o.pids_limit = self.pids_limit;
        o.devices = self.device.iter().map(|d| DeviceRequest::parse(d)).collect::<Result<_>>()?;
        o.stop_signal = self.stop_signal.clone();
        if let Some(s) = &o.stop_signal {
            runtime::monitor::parse_signal(s).map_err(|e| e.context("--stop-signal"))?;
        }
        o.restart = runtime::restart::RestartPolicy::parse(&self.restart)?;
        if !o.restart.is_no() && !self.detach {
            return Err(Error::invalid(format!("--restart {}: a restart policy needs -d (its monitor applies it)", self.restart)));
        }
        if !o.restart.is_no() && self.rm {
            return Err(Error::invalid("conflicting options: --restart and --rm (a container removed when it exits cannot be restarted)"));
        }
        o.log = runtime::logs::LogConfig::parse(self.log_driver.as_deref(), &self.log_opt)?;
        Ok(o)
    }
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    runtime::profile::begin();
    // Containers start from a read-only copy of this binary (CVE-2019-5736).
    runtime::exe::ensure_protected()?;
    runtime::profile::mark("running from the read-only copy");
    // With --rootfs there is no image: every word is the command.
    let (image, command) = match (&a.rootfs, a.args.split_first()) {
        (Some(_), _) => (None, a.args.clone()),
        (None, Some((i, rest))) => (Some(i.clone()), rest.to_vec()),
        (None, None) => (None, vec![]),
    };
    let mut opts = a.options()?;
    opts.command = command;
    let store = g.store()?;
    // From resolving the image until its container's record names it, keep
    // `ci-build rm`/`prune` (which collect garbage under this lock,
    // exclusively) from removing the image's blobs or unpacked layers.
    let gc = store.lock_shared(ci_core::store::LockKind::Gc)?;
    let (image, image_name, layers) = match &a.rootfs {
        Some(dir) => {
            let dir = std::fs::canonicalize(dir).map_err(|e| Error::io("resolve --rootfs", dir, e))?;
            if !dir.is_dir() {
                return Err(Error::invalid(format!("--rootfs {}: not a directory", dir.display())));
            }
            (None, dir.display().to_string(), vec![dir])
        }
        None => {
            let name = image.ok_or_else(|| Error::invalid("an IMAGE is required").hint("ci-run [OPTIONS] IMAGE [COMMAND [ARG...]]; see ci-run --help"))?;
            let mut names = expand_stdin(&[name], "image")?;
            if names.len() > 1 {
                return Err(Error::invalid(format!(
                    "stdin held {} image objects; ci-run runs one container from one image",
                    names.len()
                ))
                .hint("to run one container per image: ci-build ls | while read -r img; do echo \"$img\" | ci-run --rm - true; done"));
            }
            let name = names.remove(0);
            let img = ci_core::image::resolve(&store, &name)?;
            let layers = unpacked_layers(&store, &img)?;
            (Some(img), name, layers)
        }
    };
    runtime::profile::mark("image and layers ready");
    let (c, spec) = runtime::create(&store, image.as_ref(), &image_name, layers, &opts)?;
    drop(gc);
    if a.detach {
        return match runtime::monitor::spawn(&store, &c)? {
            Ok(obj) => {
                if g.json() {
                    ci_core::object::emit_json(&mut std::io::stdout().lock(), &obj)?;
                } else {
                    println!("{}", obj.id);
                }
                Ok(0)
            }
            Err(f) => {
                eprintln!("ci-run: error: {}", f.message);
                Ok(f.code)
            }
        };
    }
    match runtime::start_and_wait(&store, c, spec, &opts)? {
        Outcome::Exited { code, .. } => Ok(code),
        Outcome::NotStarted(f) => {
            eprintln!("ci-run: error: {}", f.message);
            Ok(f.code)
        }
    }
}

/// The image's layers, unpacked once each into the store's layer cache.
fn unpacked_layers(store: &ci_core::store::Store, img: &ci_core::image::Image) -> Result<Vec<PathBuf>> {
    ci_core::layer::ensure_image_unpacked(store, img)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1gb").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("x").is_err());
    }
}
