//! The cgroup v2 files: one hierarchy, controllers switched on per subtree.
//!
//! A controller is usable in a cgroup only when its parent lists it in
//! `cgroup.subtree_control`, so every ancestor from the root down gets
//! `echo +memory +pids ... > cgroup.subtree_control`. (v2's "no internal
//! processes" rule: those ancestors must hold no process themselves.)
//!
//! | limit          | file(s)                                                  |
//! |----------------|----------------------------------------------------------|
//! | `--memory`     | `memory.max`, `memory.swap.max` (swap alone: total - memory) |
//! | `--cpus`       | `cpu.max` = `QUOTA 100000`                               |
//! | `--cpu-shares` | `cpu.weight` (1..10000, from shares 2..262144 as runc maps it) |
//! | `--pids-limit` | `pids.max`                                               |
//! | devices        | no file: an eBPF program attached to the directory ([`super::bpf`]) |
//! | pause / kill   | `cgroup.freeze` 1 / 0, `cgroup.kill` 1                   |

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use super::bpf::{self, Program};
use super::devices::{DeviceAccess, DeviceRule};
use super::limits::{Limits, Swap, CFS_PERIOD_US};
use super::stats::{self, CpuStats, MemoryStats};
use super::{poll_until, write};
use crate::error::{Error, IoContext, Result};
use crate::explain;

/// Make `controllers` available to the children of `parent`.
pub fn enable_controllers(parent: &Path, controllers: &[&str]) -> Result<()> {
    if controllers.is_empty() {
        return Ok(());
    }
    let enabled = stats::read(parent, "cgroup.subtree_control")?;
    let missing: Vec<String> = controllers
        .iter()
        .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    write(parent, "cgroup.subtree_control", &missing.join(" "))
}

pub fn set_memory(dir: &Path, limits: &Limits) -> Result<()> {
    let Some(memory) = limits.memory else { return Ok(()) };
    write(dir, "memory.max", &memory.to_string())?;
    let swap = match limits.swap() {
        Swap::Unset => return Ok(()),
        Swap::Unlimited => "max".to_string(),
        Swap::Total(t) => t.saturating_sub(memory).to_string(),
    };
    if !dir.join("memory.swap.max").exists() {
        if limits.memory_swap.is_some_and(|s| s != 0) {
            return Err(Error::Unsupported(format!(
                "--memory-swap: this kernel does not account swap ({} is missing)",
                dir.join("memory.swap.max").display()
            ))
            .hint("build the kernel with CONFIG_SWAP and CONFIG_MEMCG, or leave out --memory-swap"));
        }
        return Ok(());
    }
    write(dir, "memory.swap.max", &swap)
}

pub fn set_cpu(dir: &Path, limits: &Limits) -> Result<()> {
    if let Some(quota) = limits.cfs_quota_us() {
        write(dir, "cpu.max", &format!("{quota} {CFS_PERIOD_US}"))?;
    }
    if let Some(shares) = limits.shares() {
        write(dir, "cpu.weight", &shares_to_weight(shares).to_string())?;
    }
    Ok(())
}

/// v1 shares (2..262144, default 1024) to v2 weight (1..10000, default
/// 100), the linear map runc and crun use.
pub fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// Load the eBPF program for `rules` and attach it to the cgroup `dir`.
pub fn attach_device_filter(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    let access = DeviceAccess::from_rules(rules);
    let insns = bpf::device_program(&access);
    if explain::enabled() {
        let listed: Vec<String> = rules.iter().map(|r| format!("{} {r}", if r.allow { "allow" } else { "deny" })).collect();
        explain!(
            "cgroup v2 has no devices files: load a BPF_PROG_TYPE_CGROUP_DEVICE program ({} instructions) for: {}\n{}",
            insns.len(),
            listed.join(", "),
            bpf::disassemble(&insns).trim_end()
        );
    }
    let prog = Program::load(&insns)?;
    let fd = File::open(dir).ctx("open cgroup directory", dir)?;
    prog.attach(fd.as_fd()).map_err(|e| {
        let errno = e.raw_os_error();
        let err = Error::io("bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE) to", dir, e);
        match errno {
            Some(libc::EPERM) => err.hint("an ancestor cgroup has a device program attached without BPF_F_ALLOW_MULTI"),
            Some(libc::EINVAL) => err.hint("this kernel lacks CONFIG_CGROUP_BPF, or the directory is not a cgroup2 cgroup"),
            _ => err,
        }
    })?;
    if explain::enabled() {
        if let Ok((id, tag)) = prog.id_and_tag() {
            explain!(format!("attached device program id {id} (tag {tag})"); format!(
                "bpftool cgroup attach {} device id {id} multi",
                dir.display()
            ));
        }
    }
    // The attachment keeps the program alive; our fd can go.
    Ok(())
}

/// `cgroup.freeze` 1, then wait for `frozen 1` in `cgroup.events`.
pub fn freeze(dir: &Path) -> Result<()> {
    write(dir, "cgroup.freeze", "1")?;
    let done = poll_until(Duration::from_secs(2), || {
        Ok(stats::keyed(&stats::read(dir, "cgroup.events")?, "frozen") == 1)
    })?;
    if done {
        Ok(())
    } else {
        Err(Error::Conflict(format!("{} does not say frozen after 2 s", dir.join("cgroup.events").display()))
            .hint("a process is stuck in the kernel (state D in ps); thaw with: echo 0 > cgroup.freeze"))
    }
}

pub fn thaw(dir: &Path) -> Result<()> {
    write(dir, "cgroup.freeze", "0")
}

pub fn memory_stats(dir: &Path) -> Result<MemoryStats> {
    let stat = stats::read(dir, "memory.stat")?;
    let events = stats::read(dir, "memory.events")?;
    Ok(MemoryStats {
        usage: stats::read_u64(dir, "memory.current")?,
        limit: stats::read_limit(dir, "memory.max")?,
        inactive_file: stats::keyed(&stat, "inactive_file"),
        oom_kills: stats::keyed(&events, "oom_kill"),
    })
}

/// `cpu.stat` (microseconds), present in every v2 cgroup.
pub fn cpu_stats(dir: &Path) -> Result<CpuStats> {
    let stat = stats::read(dir, "cpu.stat")?;
    Ok(CpuStats {
        usage_ns: stats::keyed(&stat, "usage_usec") * 1000,
        user_ns: stats::keyed(&stat, "user_usec") * 1000,
        system_ns: stats::keyed(&stat, "system_usec") * 1000,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn enables_only_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cgroup.subtree_control");
        std::fs::write(&file, "cpu pids\n").unwrap();
        super::enable_controllers(dir.path(), &["cpu", "io", "memory", "pids"]).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "+io +memory");
        // Nothing missing: nothing written.
        std::fs::write(&file, "cpu io memory pids\n").unwrap();
        super::enable_controllers(dir.path(), &["cpu", "memory"]).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "cpu io memory pids\n");
    }

    #[test]
    fn weights() {
        assert_eq!(super::shares_to_weight(2), 1);
        assert_eq!(super::shares_to_weight(1024), 39);
        assert_eq!(super::shares_to_weight(262_144), 10_000);
    }
}
