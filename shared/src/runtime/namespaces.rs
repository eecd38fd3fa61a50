//! Namespaces: what the container sees of the machine. Each kind gets a
//! private copy: mount (its own mount table), PID (its command is PID 1 and
//! sees only its descendants), UTS (its own hostname), IPC (its own SysV
//! and POSIX queues), network (only a loopback interface, unless
//! `--network host`) and cgroup (its cgroup looks like the root).
//!
//! All but the cgroup namespace are created at once by `clone(2)`; the
//! cgroup namespace comes later, with `unshare(2)`, once the parent has put
//! the child into its cgroup (a cgroup namespace is rooted where the
//! process is when it is created).

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use crate::error::{Error, Result};
use crate::explain;

/// clone(2) flags for every namespace in the spec except cgroup.
pub fn clone_flags(nss: &[LinuxNamespace]) -> Result<i32> {
    let mut flags = 0;
    for ns in nss {
        if ns.path().is_some() {
            return Err(Error::Unsupported("joining an existing namespace (namespace path) is not supported by ci-run".into()));
        }
        flags |= match ns.typ() {
            LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
            LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
            LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
            LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
            LinuxNamespaceType::Network => libc::CLONE_NEWNET,
            LinuxNamespaceType::Cgroup => 0,
            LinuxNamespaceType::User => return Err(Error::Unsupported("user namespaces are not supported by ci-run yet".into())),
            LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
        };
    }
    Ok(flags)
}

pub fn wants(nss: &[LinuxNamespace], t: LinuxNamespaceType) -> bool {
    nss.iter().any(|n| n.typ() == t)
}

/// Describe the clone for --explain, as the `unshare(1)` command that does the same.
pub fn explain_clone(flags: i32) {
    if !explain::enabled() {
        return;
    }
    let names = [
        (libc::CLONE_NEWNS, "mount", "--mount"),
        (libc::CLONE_NEWPID, "pid", "--pid --fork"),
        (libc::CLONE_NEWUTS, "uts", "--uts"),
        (libc::CLONE_NEWIPC, "ipc", "--ipc"),
        (libc::CLONE_NEWNET, "network", "--net"),
    ];
    let (what, opts): (Vec<&str>, Vec<&str>) = names.iter().filter(|(f, _, _)| flags & f != 0).map(|(_, n, o)| (*n, *o)).unzip();
    explain!(
        format!("clone a child into new namespaces: {} (the child becomes PID 1 of its PID namespace)", what.join(", "));
        format!("unshare {} …", opts.join(" "))
    );
}

/// The cgroup namespace, after the parent has moved us into our cgroup.
pub fn unshare_cgroup() -> Result<()> {
    explain!("enter a new cgroup namespace (the container's cgroup becomes its /)"; "unshare --cgroup");
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
        .map_err(|e| Error::io("unshare", "cgroup namespace", e.into()))
}

/// Bring up `lo` in a new network namespace (it starts down).
pub fn loopback_up() -> Result<()> {
    explain!("bring up the loopback interface of the new network namespace"; "ip link set lo up");
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Error::io("socket", "lo", e.into()))?;
    // SAFETY: ifreq is plain data; we fill the name and read/write flags.
    unsafe {
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        use std::os::fd::AsRawFd;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(Error::io("get flags of", "lo", std::io::Error::last_os_error()));
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(Error::io("bring up", "lo", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

pub fn set_hostname(name: &str) -> Result<()> {
    explain!(format!("set the hostname to {name}"); format!("hostname {name}"));
    nix::unistd::sethostname(name).map_err(|e| Error::io("sethostname", name, e.into()))
}
