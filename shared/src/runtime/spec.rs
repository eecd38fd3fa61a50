//! The container's OCI runtime-spec `config.json`, built from the image's
//! config and the flags of `ci-run`, the way dockerd builds the spec it
//! hands to runc: the command (Entrypoint/Cmd rules), environment,
//! working directory, user, hostname, the mounts a container expects,
//! namespaces, capabilities, masked and read-only paths, seccomp, and the
//! resources for the cgroup. The container's init then follows this spec.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDevice, LinuxDeviceBuilder, LinuxDeviceType, LinuxNamespaceBuilder,
    LinuxNamespaceType, Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use super::capabilities::CapSet;
use super::seccomp;
use crate::error::{Error, IoContext, Result};

/// docker's PATH when neither the image nor the user sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Masked paths: docker's list (moby `oci/defaults.go`, v28).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// Read-only paths: docker's list.
pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Which network namespace the container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Its own network namespace with only loopback (docker's `--network none`).
    #[default]
    None,
    /// The host's network namespace.
    Host,
}

/// A `--device HOST[:CONTAINER[:PERMS]]` request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceRequest {
    pub host: PathBuf,
    pub container: PathBuf,
    pub permissions: String,
}

impl DeviceRequest {
    pub fn parse(s: &str) -> Result<DeviceRequest> {
        let parts: Vec<&str> = s.split(':').collect();
        let bad = || Error::invalid(format!("--device {s:?}: expected HOST[:CONTAINER[:PERMISSIONS]], e.g. /dev/fuse or /dev/sdb:/dev/xvdc:r"));
        let (host, container, perms) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            [h, p] if !p.starts_with('/') => (*h, *h, *p),
            [h, c] => (*h, *c, "rwm"),
            [h, c, p] => (*h, *c, *p),
            _ => return Err(bad()),
        };
        if !host.starts_with('/') || !container.starts_with('/') || perms.is_empty() || !perms.chars().all(|c| "rwm".contains(c)) {
            return Err(bad());
        }
        Ok(DeviceRequest { host: host.into(), container: container.into(), permissions: perms.into() })
    }
}

/// Everything the user asked for on the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub name: Option<String>,
    /// `-e KEY=VALUE` or `-e KEY` (taken from ci-run's own environment).
    pub env: Vec<String>,
    pub env_files: Vec<PathBuf>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub group_add: Vec<String>,
    pub hostname: Option<String>,
    /// `--entrypoint X`; `Some("")` clears the image's entrypoint.
    pub entrypoint: Option<String>,
    /// The COMMAND and ARGs after the image.
    pub command: Vec<String>,
    pub interactive: bool,
    pub tty: bool,
    pub read_only: bool,
    pub network: Network,
    pub labels: BTreeMap<String, String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    /// `--security-opt seccomp=unconfined` turns this off.
    pub seccomp: bool,
    pub no_new_privileges: bool,
    pub remove: bool,
    pub memory: Option<i64>,
    /// `--memory-swap`: memory plus swap in bytes, -1 for unlimited swap.
    pub memory_swap: Option<i64>,
    pub cpus: Option<f64>,
    /// `--cpu-shares`: the relative weight (v1 shares; mapped to v2 weight).
    pub cpu_shares: Option<u64>,
    pub pids_limit: Option<i64>,
    pub devices: Vec<DeviceRequest>,
    pub stop_signal: Option<String>,
    /// `--restart` (applied by the monitor of a `-d` container).
    pub restart: super::restart::RestartPolicy,
    /// `--log-driver`/`--log-opt` (used when detached).
    pub log: super::logs::LogConfig,
}

impl RunOptions {
    /// docker's defaults: seccomp on; plus no_new_privs, which this project turns on by default.
    pub fn new() -> RunOptions {
        RunOptions { seccomp: true, no_new_privileges: true, ..Default::default() }
    }
}

/// docker's Entrypoint/Cmd rules (moby `daemon/commit.go: merge`):
/// - `--entrypoint X` replaces the image's entrypoint *and* drops its Cmd;
/// - `--entrypoint ""` clears the entrypoint and keeps the Cmd;
/// - a COMMAND on the command line replaces the image's Cmd;
/// - the process is Entrypoint followed by Cmd.
pub fn command_line(image_entrypoint: &[String], image_cmd: &[String], entrypoint_flag: Option<&str>, args: &[String]) -> Result<Vec<String>> {
    let entrypoint: Vec<String> = match entrypoint_flag {
        Some("") => vec![],
        Some(e) => vec![e.to_string()],
        None => image_entrypoint.to_vec(),
    };
    let cmd: Vec<String> = if !args.is_empty() {
        args.to_vec()
    } else if matches!(entrypoint_flag, Some(e) if !e.is_empty()) {
        vec![]
    } else {
        image_cmd.to_vec()
    };
    let all: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if all.is_empty() {
        return Err(Error::invalid("no command specified: the image has no Entrypoint or Cmd, and none was given")
            .hint("give one after the image: ci-run IMAGE COMMAND [ARG...]"));
    }
    Ok(all)
}

/// Set `KEY=VALUE` in `env`, replacing an earlier value in place (docker's ReplaceOrAppendEnvValues).
fn set_env(env: &mut Vec<String>, kv: String) {
    let key = kv.split('=').next().unwrap_or("").to_string();
    match env.iter_mut().find(|e| e.split('=').next() == Some(key.as_str())) {
        Some(slot) => *slot = kv,
        None => env.push(kv),
    }
}

/// `-e` values and `--env-file` lines as `KEY=VALUE` (a bare `KEY` takes
/// ci-run's own value, and is dropped when ci-run has none, as docker does).
pub fn user_env(opts: &RunOptions) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut add = |item: &str, origin: &dyn Fn() -> String| -> Result<()> {
        let key = item.split('=').next().unwrap_or("");
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(Error::invalid(format!("{}: invalid environment variable {item:?}", origin())));
        }
        if item.contains('=') {
            out.push(item.to_string());
        } else if let Ok(v) = std::env::var(item) {
            out.push(format!("{item}={v}"));
        }
        Ok(())
    };
    for f in &opts.env_files {
        let text = std::fs::read_to_string(f).ctx("read env file", f)?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            add(line, &|| format!("{}:{}", f.display(), n + 1))?;
        }
    }
    for e in &opts.env {
        add(e, &|| "-e".to_string())?;
    }
    Ok(out)
}

/// Per-container inputs that are not flags: where it lives and its identity.
pub struct Identity<'a> {
    pub id: &'a str,
    pub hostname: &'a str,
    /// ROOT/containers/<id>: holds hostname, hosts, resolv.conf and the rootfs mountpoint.
    pub dir: &'a Path,
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .expect("mount fields set")
}

/// Build the spec. `env_user` is [`user_env`]'s result (read once by the caller).
pub fn build(image: &ImageConfiguration, opts: &RunOptions, env_user: &[String], who: &Identity) -> Result<Spec> {
    let cfg = image.config().clone().unwrap_or_default();
    let args = command_line(
        cfg.entrypoint().as_deref().unwrap_or_default(),
        cfg.cmd().as_deref().unwrap_or_default(),
        opts.entrypoint.as_deref(),
        &opts.command,
    )?;

    let mut env = vec![format!("PATH={DEFAULT_PATH}"), format!("HOSTNAME={}", who.hostname)];
    if opts.tty {
        env.push("TERM=xterm".into());
    }
    for e in cfg.env().as_deref().unwrap_or_default().iter().chain(env_user) {
        set_env(&mut env, e.clone());
    }

    let cwd = opts.workdir.clone().or_else(|| cfg.working_dir().clone().filter(|w| !w.is_empty())).unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(Error::invalid(format!("the working directory {cwd:?} is invalid: it must be an absolute path")));
    }
    let user = opts.user.clone().or_else(|| cfg.user().clone()).unwrap_or_default();
    super::user::validate(&user)?;
    for g in &opts.group_add {
        super::user::validate(&format!("0:{g}"))?;
    }

    let caps = if opts.privileged { CapSet::all() } else { CapSet::adjusted(&opts.cap_add, &opts.cap_drop)? };
    let oci_caps = caps.to_oci();
    let process = ProcessBuilder::default()
        .terminal(opts.tty)
        .user(UserBuilder::default().uid(0u32).gid(0u32).username(user).build().expect("user fields"))
        .args(args)
        .env(env)
        .cwd(cwd)
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(oci_caps.clone())
                .effective(oci_caps.clone())
                .permitted(oci_caps)
                .inheritable(oci_spec::runtime::Capabilities::new())
                .ambient(oci_spec::runtime::Capabilities::new())
                .build()
                .expect("capability fields"),
        )
        .no_new_privileges(opts.no_new_privileges)
        .build()
        .expect("process fields set");

    let d = |name: &str| who.dir.join(name).to_string_lossy().into_owned();
    let sys_opts: &[&str] = if opts.privileged { &["nosuid", "noexec", "nodev"] } else { &["nosuid", "noexec", "nodev", "ro"] };
    let mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        mount("/dev/pts", "devpts", "devpts", &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        mount("/sys", "sysfs", "sysfs", sys_opts),
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
        mount("/etc/resolv.conf", "bind", &d("resolv.conf"), &["rbind", "rprivate"]),
        mount("/etc/hostname", "bind", &d("hostname"), &["rbind", "rprivate"]),
        mount("/etc/hosts", "bind", &d("hosts"), &["rbind", "rprivate"]),
    ];

    let mut namespaces = vec![LinuxNamespaceType::Pid, LinuxNamespaceType::Ipc, LinuxNamespaceType::Uts, LinuxNamespaceType::Mount, LinuxNamespaceType::Cgroup];
    if opts.network == Network::None {
        namespaces.push(LinuxNamespaceType::Network);
    }
    let namespaces = namespaces.into_iter().map(|t| LinuxNamespaceBuilder::default().typ(t).build().expect("namespace")).collect::<Vec<_>>();

    // Set both lists even when empty: LinuxBuilder's default carries
    // oci-spec's own lists, which --privileged (as docker's) must not have.
    let (masked, readonly): (&[&str], &[&str]) = if opts.privileged { (&[], &[]) } else { (MASKED_PATHS, READONLY_PATHS) };
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(masked.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .readonly_paths(readonly.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    if opts.seccomp && !opts.privileged {
        linux = linux.seccomp(seccomp::docker_default(caps));
    }
    let devices = opts.devices.iter().map(device_from_host).collect::<Result<Vec<_>>>()?;
    // The cgroup: limits, and the devices it may open (docker's list plus --device).
    let mut rules = if opts.privileged { vec![crate::cgroups::DeviceRule::allow_all()] } else { crate::cgroups::default_devices() };
    for (req, d) in opts.devices.iter().zip(&devices) {
        let kind = if d.typ() == LinuxDeviceType::B { crate::cgroups::DeviceKind::Block } else { crate::cgroups::DeviceKind::Char };
        rules.push(crate::cgroups::DeviceRule::allow(kind, Some(d.major() as u32), Some(d.minor() as u32), &req.permissions)?);
    }
    let limits = crate::cgroups::Limits {
        memory: opts.memory.map(|m| m as u64),
        memory_swap: opts.memory_swap,
        cpus: opts.cpus,
        cpu_shares: opts.cpu_shares,
        pids: opts.pids_limit,
        devices: rules,
    };
    limits.validate()?;
    linux = linux.resources(limits.to_oci()).cgroups_path(PathBuf::from(format!("ci/{}", who.id)));
    if !devices.is_empty() {
        linux = linux.devices(devices);
    }
    let linux = linux.build().expect("linux fields set");

    let mut annotations = std::collections::HashMap::new();
    for (k, v) in &opts.labels {
        annotations.insert(k.clone(), v.clone());
    }
    let mut spec = SpecBuilder::default()
        .version("1.2.0")
        .root(RootBuilder::default().path(who.dir.join("rootfs")).readonly(opts.read_only).build().expect("root"))
        .process(process)
        .hostname(who.hostname)
        .mounts(mounts)
        .linux(linux)
        .build()
        .expect("spec fields set");
    if !annotations.is_empty() {
        spec.set_annotations(Some(annotations));
    }
    Ok(spec)
}

/// A `--device` as the spec's device entry: type and numbers from the host node.
fn device_from_host(req: &DeviceRequest) -> Result<LinuxDevice> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let md = std::fs::metadata(&req.host).ctx("stat device", &req.host)?;
    let ft = md.file_type();
    let typ = if ft.is_char_device() {
        LinuxDeviceType::C
    } else if ft.is_block_device() {
        LinuxDeviceType::B
    } else {
        return Err(Error::invalid(format!("--device {}: not a device node", req.host.display())));
    };
    let rdev = md.rdev();
    Ok(LinuxDeviceBuilder::default()
        .path(req.container.clone())
        .typ(typ)
        .major(nix::sys::stat::major(rdev) as i64)
        .minor(nix::sys::stat::minor(rdev) as i64)
        .file_mode(md.mode() & 0o777)
        .uid(0u32)
        .gid(0u32)
        .build()
        .expect("device fields"))
}

/// The processes' arguments as one shell-like line (for `ps` and messages).
pub fn display_command(args: &[String]) -> String {
    args.iter()
        .map(|a| if a.is_empty() || a.contains(char::is_whitespace) || a.contains(['"', '\'']) { format!("{a:?}") } else { a.clone() })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    /// docker's documented Entrypoint/Cmd table (dockerfile reference,
    /// "Understand how CMD and ENTRYPOINT interact"), plus the run-time overrides.
    #[test]
    fn entrypoint_cmd_matrix() {
        let sh_ep = v(&["/bin/sh", "-c", "exec_entry p1_entry"]);
        let ep = v(&["exec_entry", "p1_entry"]);
        let sh_cmd = v(&["/bin/sh", "-c", "exec_cmd p1_cmd"]);
        let cmd = v(&["exec_cmd", "p1_cmd"]);
        let p1 = v(&["p1_cmd", "p2_cmd"]);
        // No ENTRYPOINT
        assert!(command_line(&[], &[], None, &[]).is_err());
        assert_eq!(command_line(&[], &cmd, None, &[]).unwrap(), cmd);
        assert_eq!(command_line(&[], &p1, None, &[]).unwrap(), p1);
        assert_eq!(command_line(&[], &sh_cmd, None, &[]).unwrap(), sh_cmd);
        // ENTRYPOINT exec_entry p1_entry (shell form)
        for c in [&vec![], &cmd, &p1, &sh_cmd] {
            let mut want = sh_ep.clone();
            want.extend(c.iter().cloned());
            assert_eq!(command_line(&sh_ep, c, None, &[]).unwrap(), want);
        }
        // ENTRYPOINT ["exec_entry", "p1_entry"]
        assert_eq!(command_line(&ep, &[], None, &[]).unwrap(), ep);
        assert_eq!(command_line(&ep, &cmd, None, &[]).unwrap(), v(&["exec_entry", "p1_entry", "exec_cmd", "p1_cmd"]));
        assert_eq!(command_line(&ep, &p1, None, &[]).unwrap(), v(&["exec_entry", "p1_entry", "p1_cmd", "p2_cmd"]));
        assert_eq!(command_line(&ep, &sh_cmd, None, &[]).unwrap(), v(&["exec_entry", "p1_entry", "/bin/sh", "-c", "exec_cmd p1_cmd"]));
        // Run-time overrides.
        assert_eq!(command_line(&ep, &cmd, None, &v(&["x", "y"])).unwrap(), v(&["exec_entry", "p1_entry", "x", "y"]));
        assert_eq!(command_line(&ep, &cmd, Some("/bin/echo"), &[]).unwrap(), v(&["/bin/echo"]));
        assert_eq!(command_line(&ep, &cmd, Some("/bin/echo"), &v(&["hi"])).unwrap(), v(&["/bin/echo", "hi"]));
        assert_eq!(command_line(&ep, &cmd, Some(""), &[]).unwrap(), cmd);
        assert_eq!(command_line(&ep, &cmd, Some(""), &v(&["ls"])).unwrap(), v(&["ls"]));
    }

    #[test]
    fn env_order_and_override() {
        let mut env = vec!["PATH=/a".to_string(), "HOSTNAME=h".into()];
        set_env(&mut env, "PATH=/b".into());
        set_env(&mut env, "X=1".into());
        set_env(&mut env, "X=2".into());
        assert_eq!(env, v(&["PATH=/b", "HOSTNAME=h", "X=2"]));
    }

    #[test]
    fn device_requests() {
        assert_eq!(DeviceRequest::parse("/dev/fuse").unwrap().container, PathBuf::from("/dev/fuse"));
        assert_eq!(DeviceRequest::parse("/dev/sdb:/dev/xvdc:r").unwrap().permissions, "r");
        assert_eq!(DeviceRequest::parse("/dev/sdb:rw").unwrap().container, PathBuf::from("/dev/sdb"));
        assert!(DeviceRequest::parse("sdb").is_err());
        assert!(DeviceRequest::parse("/dev/sdb:/x:q").is_err());
    }
}
