//! The container's init: what the cloned child does, in order, between
//! `clone` and `execve`. It runs inside the new namespaces, as a copy of
//! ci-run (single-threaded, so ordinary Rust is safe here). Read top to
//! bottom it is the recipe of a container:
//!
//!  1. signals back to defaults; die with the parent (PDEATHSIG)
//!  2. mounts private; overlay root; the spec's mounts; /dev nodes;
//!     loopback up; masked and read-only paths
//!  3. wait for the parent (cgroup joined), then the cgroup namespace
//!  4. pivot_root; hostname; read-only root if asked
//!  5. terminal (or stdin from /dev/null), new session
//!  6. the user, from the container's /etc/passwd and /etc/group
//!  7. working directory (created if missing, resolved inside the root)
//!  8. every fd but 0-2 close-on-exec; capabilities; user switch;
//!     PDEATHSIG again (a change of credentials clears it)
//!  9. no_new_privs; seccomp; execve — PID 1 becomes the user's command.
//!
//! Any failure is sent to the parent as text with the exit status to use
//! (125 for setup, 126 not executable, 127 not found), then the child exits.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::capabilities::{self, CapSet};
use super::channel::{Channel, FromChild, ToChild};
use super::mounts::{self, Rootfs};
use super::process::Parent;
use super::{namespaces, pivot_root, pty, sys, user};
use crate::error::{Error, IoContext};
use crate::explain;

/// What the child needs; it is a copy of the parent's memory, so this is
/// simply borrowed across the clone.
pub struct Plan<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Rootfs,
    pub group_add: &'a [String],
    /// Without `-i`, stdin is /dev/null.
    pub stdin_null: bool,
    /// The compiled seccomp filter, if any.
    pub seccomp: Option<&'a [libc::sock_filter]>,
    /// What to mount at /sys/fs/cgroup (read-only), once in the cgroup namespace.
    pub cgroup_mounts: Option<crate::cgroups::CgroupMounts>,
    /// Clone the init with `CLONE_PARENT`: it becomes the child of this
    /// process's parent (the monitor), not of this process (see [`super::starter`]).
    pub clone_parent: bool,
}

/// A failed step: the message for the user and ci-run's exit status.
pub(crate) struct Fail(pub(crate) String, pub(crate) i32);

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail(e.to_string(), 125)
    }
}

/// Never returns: execs the user's command or exits after reporting why not.
pub fn run(plan: &Plan, chan: Channel, parent: Parent) -> ! {
    let Fail(message, code) = match setup_and_exec(plan, &chan, &parent) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    let _ = chan.send(&FromChild::Failed { message, code }, None);
    // SAFETY: leave without running the parent's atexit handlers or destructors.
    unsafe { libc::_exit(code) }
}

pub(crate) enum Never {}

fn setup_and_exec(plan: &Plan, chan: &Channel, parent: &Parent) -> std::result::Result<Never, Fail> {
    let spec = plan.spec;
    let process = spec.process().as_ref().ok_or_else(|| Error::invalid("config.json has no process"))?;
    let linux = spec.linux().clone().unwrap_or_default();
    let nss = linux.namespaces().clone().unwrap_or_default();

    // 1. A clean process: default signal dispositions, nothing blocked
    //    (ci-run ignores SIGPIPE and blocks the signals it forwards), and
    //    killed if the parent (ci-run, or the monitor) dies.
    reset_signals();
    parent.die_with()?;
    // SAFETY: umask with an integer argument.
    unsafe { libc::umask(0) };

    super::profile::mark("init: cloned");
    // 2. The filesystem.
    if namespaces::wants(&nss, LinuxNamespaceType::Mount) {
        mounts::make_private()?;
    }
    plan.rootfs.mount()?;
    let rootfs_path = &plan.rootfs.target;
    let root = nix::fcntl::open(rootfs_path, nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
        .ctx("open", rootfs_path)?;
    for m in spec.mounts().as_deref().unwrap_or_default() {
        mounts::mount_entry(root.as_fd(), rootfs_path, m)?;
    }
    mounts::populate_dev(root.as_fd(), linux.devices().as_deref().unwrap_or_default())?;
    if namespaces::wants(&nss, LinuxNamespaceType::Network) {
        namespaces::loopback_up()?;
    }
    let null = mounts::open_null()?;
    mounts::mask_paths(root.as_fd(), null.as_fd(), linux.masked_paths().as_deref().unwrap_or_default())?;
    mounts::readonly_paths(root.as_fd(), linux.readonly_paths().as_deref().unwrap_or_default())?;
    drop(null);
    drop(root);

    super::profile::mark("init: mounts done");
    // 3. The parent has put us in our cgroup: now the cgroup namespace.
    match chan.recv::<ToChild>()? {
        Some((ToChild::Go, _)) => {}
        None => return Err(Fail("ci-run went away before the container started".into(), 125)),
    }
    super::profile::mark("init: parent said go (cgroup joined)");
    if namespaces::wants(&nss, LinuxNamespaceType::Cgroup) {
        namespaces::unshare_cgroup()?;
        if let Some(cm) = &plan.cgroup_mounts {
            let root = nix::fcntl::open(rootfs_path, nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
                .ctx("open", rootfs_path)?;
            mounts::mount_cgroups(root.as_fd(), cm)?;
        }
    }

    super::profile::mark("init: cgroup namespace and mounts");
    // 4. The switch of root, and the hostname.
    pivot_root::pivot_into(rootfs_path)?;
    super::profile::mark("init: pivot_root");
    if let Some(h) = spec.hostname() {
        if namespaces::wants(&nss, LinuxNamespaceType::Uts) {
            namespaces::set_hostname(h)?;
        }
    }
    if spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false) {
        mounts::root_readonly()?;
    }

    // 5. The terminal, or stdin from /dev/null; a session of our own.
    if process.terminal().unwrap_or(false) {
        let master = pty::setup_in_container()?;
        chan.send(&FromChild::Pty, Some(master.as_raw_fd()))?;
    } else {
        nix::unistd::setsid().map_err(|e| Error::io("setsid", "(container init)", e.into()))?;
        if plan.stdin_null {
            let n = nix::fcntl::open("/dev/null", nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty()).ctx("open", "/dev/null")?;
            nix::unistd::dup2_stdin(&n).ctx("dup2 onto stdin", "/dev/null")?;
        }
    }

    // 6. The user, from the container's own files.
    let root = nix::fcntl::open("/", nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty()).ctx("open", "/")?;
    let user_spec = process.user().username().clone().unwrap_or_default();
    let who = user::resolve(root.as_fd(), &user_spec, plan.group_add)?;
    explain!(
        format!("run as uid {} gid {} groups {:?} (user {:?} looked up in the container's /etc/passwd)", who.uid, who.gid, who.additional_gids, user_spec);
        format!("setpriv --reuid {} --regid {} --groups {}", who.uid, who.gid, who.additional_gids.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
    );
    chan.send(&FromChild::User(who.clone()), None)?;

    let mut env = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", who.home));
    }

    // 7. The working directory, resolved inside the root (a symlink to a
    //    host path or /proc/self/fd/N is refused: CVE-2024-21626).
    let cwd = process.cwd();
    explain!(format!("change to the working directory {}", cwd.display()); format!("mkdir -p {0} && cd {0}", cwd.display()));
    let dir = mounts::target(root.as_fd(), cwd, true).map_err(|e| e.context(format!("working directory {}", cwd.display())))?;
    nix::unistd::fchdir(&dir).ctx("chdir", cwd)?;
    drop(dir);
    drop(root);

    super::profile::mark("init: pivoted, user and cwd resolved");
    // 8. No descriptor of ci-run survives the exec (the channel is already
    //    close-on-exec); then privileges.
    sys::cloexec_from(3).ctx("close_range", "(descriptors above 2)")?;
    seccomp_before_capabilities(process, plan.seccomp)?;
    become_user(process, &who)?;
    // The user switch cleared the parent-death signal: again.
    parent.die_with()?;

    // 9. Lock the door: no new privileges, the syscall filter, exec.
    let args = process.args().clone().unwrap_or_default();
    lock_and_exec(process, &args, &env, plan.seccomp, chan, "it becomes PID 1 of the container")
}

/// Without no_new_privs, installing a seccomp filter needs CAP_SYS_ADMIN:
/// then it goes in now, before capabilities are dropped (as runc does);
/// with no_new_privs it goes in last ([`lock_and_exec`]), so that as few
/// calls as possible run after it. Docker's profile allows the calls made
/// in between. (Shared with `exec`.)
pub(crate) fn seccomp_before_capabilities(process: &oci_spec::runtime::Process, seccomp: Option<&[libc::sock_filter]>) -> std::result::Result<(), Fail> {
    if !process.no_new_privileges().unwrap_or(false) {
        install_seccomp(seccomp)?;
    }
    Ok(())
}

/// Step 8 (shared with `exec`): the spec's capabilities (bounding set, and
/// effective/permitted for root; none for another user), the groups, the
/// user switch, no ambient capabilities.
pub(crate) fn become_user(process: &oci_spec::runtime::Process, who: &user::ExecUser) -> std::result::Result<(), Fail> {
    let caps = process.capabilities().clone().unwrap_or_default();
    let bounding = CapSet::from_oci(caps.bounding().as_ref())?;
    let effective = CapSet::from_oci(caps.effective().as_ref())?;
    explain!(format!("drop capabilities: keep only {}", bounding.names().join(" ")); format!("capsh --drop=… --caps=\"{}+ep\"", bounding.names().join(",")));
    capabilities::drop_bounding(bounding).ctx("drop capabilities from the bounding set", "(container init)")?;
    let gids: Vec<nix::unistd::Gid> = who.additional_gids.iter().map(|g| nix::unistd::Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&gids).ctx("setgroups", "(container init)")?;
    let gid = nix::unistd::Gid::from_raw(who.gid);
    nix::unistd::setresgid(gid, gid, gid).ctx("setresgid", format!("gid {}", who.gid))?;
    let uid = nix::unistd::Uid::from_raw(who.uid);
    nix::unistd::setresuid(uid, uid, uid).ctx("setresuid", format!("uid {}", who.uid))?;
    // Root keeps the container's set; any other user gets none (as after a real login).
    let keep = if who.uid == 0 { effective } else { CapSet(0) };
    capabilities::set(keep, keep, CapSet(0)).ctx("capset", "(container init)")?;
    capabilities::clear_ambient().ctx("clear ambient capabilities", "(container init)")?;
    Ok(())
}

/// Step 9 (shared with `exec`): find the program in the container's PATH
/// as the final user, set no_new_privs, install the seccomp filter, tell
/// the parent, execve. Returns only on failure.
pub(crate) fn lock_and_exec(
    process: &oci_spec::runtime::Process,
    args: &[String],
    env: &[String],
    seccomp: Option<&[libc::sock_filter]>,
    chan: &Channel,
    becomes: &str,
) -> std::result::Result<Never, Fail> {
    let cmd = args.first().ok_or_else(|| Error::invalid("no command"))?;
    let path_env = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(super::spec::DEFAULT_PATH).to_string();
    let exe = find_executable(cmd, &path_env)?;
    // SAFETY: umask/prctl with integer arguments.
    unsafe { libc::umask(0o022) };
    if process.no_new_privileges().unwrap_or(false) {
        explain!("set no_new_privs: setuid binaries and file capabilities cannot raise privileges"; "setpriv --no-new-privs");
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
            return Err(Error::io("prctl", "PR_SET_NO_NEW_PRIVS", std::io::Error::last_os_error()).into());
        }
        install_seccomp(seccomp)?;
    }
    explain!(format!("execve {} — {becomes}", super::spec::display_command(args)); format!("exec {}", super::spec::display_command(args)));
    super::profile::mark("init: execve");
    chan.send(&FromChild::Exec { path: exe.to_string_lossy().into_owned() }, None)?;
    let argv: Vec<CString> = args.iter().map(|a| CString::new(a.as_bytes())).collect::<std::result::Result<_, _>>().map_err(|_| Error::invalid("an argument contains a NUL byte"))?;
    let envp: Vec<CString> = env.iter().map(|a| CString::new(a.as_bytes())).collect::<std::result::Result<_, _>>().map_err(|_| Error::invalid("an environment variable contains a NUL byte"))?;
    let err = nix::unistd::execve(&exe, &argv, &envp).unwrap_err();
    Err(exec_failure(cmd, err as i32))
}

fn install_seccomp(prog: Option<&[libc::sock_filter]>) -> std::result::Result<(), Fail> {
    if let Some(prog) = prog {
        explain!(format!("install the seccomp filter ({} BPF instructions; refused calls fail with EPERM)", prog.len()); "");
        sys::seccomp_set_filter(prog).ctx("install seccomp filter", "(container init)")?;
    }
    Ok(())
}

fn exec_failure(cmd: &str, errno: i32) -> Fail {
    let e = std::io::Error::from_raw_os_error(errno);
    match errno {
        libc::ENOENT => Fail(format!("{cmd:?}: no such file or directory (or its interpreter is missing)"), 127),
        libc::EACCES | libc::EPERM => Fail(format!("{cmd:?}: permission denied"), 126),
        libc::ENOEXEC => Fail(format!("{cmd:?}: exec format error (not a program for this machine)"), 126),
        _ => Fail(format!("exec {cmd:?}: {e}"), 126),
    }
}

/// docker's (Go's exec.LookPath) rules: a name with a slash is used as is;
/// otherwise the first executable regular file in $PATH.
fn find_executable(cmd: &str, path_env: &str) -> std::result::Result<CString, Fail> {
    let check = |p: &Path| -> std::result::Result<(), i32> {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => Err(libc::EISDIR),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => Err(libc::EACCES),
            Ok(_) => nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).map_err(|e| e as i32),
            Err(e) => Err(e.raw_os_error().unwrap_or(libc::ENOENT)),
        }
    };
    let cs = |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| Fail("command contains a NUL byte".into(), 127));
    if cmd.contains('/') {
        return match check(Path::new(cmd)) {
            Ok(()) => cs(Path::new(cmd)),
            Err(libc::ENOENT) | Err(libc::ENOTDIR) => Err(Fail(format!("{cmd:?}: no such file or directory"), 127)),
            Err(libc::EISDIR) => Err(Fail(format!("{cmd:?}: is a directory"), 126)),
            Err(e) => Err(exec_failure(cmd, e)),
        };
    }
    let mut denied = None;
    for dir in path_env.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = Path::new(dir).join(cmd);
        match check(&p) {
            Ok(()) => return cs(&p),
            Err(libc::EACCES) => denied = denied.or(Some(p)),
            Err(_) => {}
        }
    }
    match denied {
        Some(p) => Err(Fail(format!("{:?}: permission denied", p.display().to_string()), 126)),
        None => Err(Fail(format!("{cmd:?}: executable file not found in $PATH"), 127)),
    }
}

pub(crate) fn reset_signals() {
    // SAFETY: plain signal-state syscalls on our own (single-threaded) process.
    unsafe {
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}
