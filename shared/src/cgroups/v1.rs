//! The cgroup v1 files: one hierarchy per controller (or controller group),
//! each with its own file names and quirks.
//!
//! | limit          | file(s)                                                     |
//! |----------------|-------------------------------------------------------------|
//! | `--memory`     | `memory.limit_in_bytes`, `memory.memsw.limit_in_bytes` (RAM+swap; only with swap accounting) |
//! | `--cpus`       | `cpu.cfs_period_us` = 100000, `cpu.cfs_quota_us` = cpus × 100000 |
//! | `--cpu-shares` | `cpu.shares`                                                |
//! | `--pids-limit` | `pids.max`                                                  |
//! | devices        | `devices.deny` `a`, then `devices.allow` per rule           |
//! | pause / kill   | `freezer.state` FROZEN / THAWED                             |
//!
//! The cpuset quirk: a new v1 cpuset cgroup starts with empty
//! `cpuset.cpus` and `cpuset.mems`, and no process can join it until they
//! are filled in (the kernel says ENOSPC), so they are copied from the parent.

use std::path::Path;
use std::time::Duration;

use super::devices::DeviceRule;
use super::limits::{Limits, Swap, CFS_PERIOD_US};
use super::stats::{self, BlkioStats, CpuStats, MemoryStats};
use super::{poll_until, write};
use crate::error::{Error, Result};

/// Fill an empty `cpuset.cpus` / `cpuset.mems` of `child` from `parent`.
pub fn inherit_cpuset(parent: &Path, child: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if stats::read(child, file)?.trim().is_empty() {
            let value = stats::read(parent, file)?;
            write(child, file, value.trim())?;
        }
    }
    Ok(())
}

pub fn set_memory(dir: &Path, limits: &Limits) -> Result<()> {
    let Some(memory) = limits.memory else { return Ok(()) };
    let memsw = match limits.swap() {
        Swap::Unset => None,
        Swap::Unlimited => Some("-1".to_string()),
        Swap::Total(t) => Some(t.to_string()),
    };
    let has_memsw = dir.join("memory.memsw.limit_in_bytes").exists();
    if !has_memsw && limits.memory_swap.is_some_and(|s| s != 0) {
        return Err(Error::Unsupported(format!(
            "--memory-swap: this kernel does not account swap ({} is missing)",
            dir.join("memory.memsw.limit_in_bytes").display()
        ))
        .hint("boot with swapaccount=1, or leave out --memory-swap"));
    }
    let memory = memory.to_string();
    match (memsw.filter(|_| has_memsw), write(dir, "memory.limit_in_bytes", &memory)) {
        (None, res) => res,
        (Some(memsw), Ok(())) => write(dir, "memory.memsw.limit_in_bytes", &memsw),
        // The kernel keeps limit <= memsw at every step: when the new limit is
        // above the current memsw, raise memsw first.
        (Some(memsw), Err(e)) if e.errno() == Some(libc::EINVAL) => {
            write(dir, "memory.memsw.limit_in_bytes", &memsw)?;
            write(dir, "memory.limit_in_bytes", &memory)
        }
        (Some(_), Err(e)) => Err(e),
    }
}

pub fn set_cpu(dir: &Path, limits: &Limits) -> Result<()> {
    if let Some(quota) = limits.cfs_quota_us() {
        write(dir, "cpu.cfs_period_us", &CFS_PERIOD_US.to_string())?;
        write(dir, "cpu.cfs_quota_us", &quota.to_string())?;
    }
    if let Some(shares) = limits.shares() {
        write(dir, "cpu.shares", &shares.to_string())?;
    }
    Ok(())
}

/// Deny everything, then apply the rules in order, as the kernel reads them.
pub fn set_devices(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    write(dir, "devices.deny", "a")?;
    for r in rules {
        write(dir, if r.allow { "devices.allow" } else { "devices.deny" }, &r.v1_line())?;
    }
    Ok(())
}

/// Freeze and wait for FROZEN (FREEZING means some task has not stopped
/// yet; writing FROZEN again retries those).
pub fn freeze(dir: &Path) -> Result<()> {
    write(dir, "freezer.state", "FROZEN")?;
    let done = poll_until(Duration::from_secs(2), || {
        let state = stats::read(dir, "freezer.state")?;
        if state.trim() == "FROZEN" {
            return Ok(true);
        }
        super::write_quiet(dir, "freezer.state", "FROZEN")?;
        Ok(false)
    })?;
    if done {
        Ok(())
    } else {
        Err(Error::Conflict(format!("{} is still FREEZING after 2 s", dir.join("freezer.state").display()))
            .hint("a process is stuck in the kernel (state D in ps); thaw with: echo THAWED > freezer.state"))
    }
}

pub fn thaw(dir: &Path) -> Result<()> {
    write(dir, "freezer.state", "THAWED")
}

pub fn memory_stats(dir: &Path) -> Result<MemoryStats> {
    let stat = stats::read(dir, "memory.stat")?;
    let oom = stats::read(dir, "memory.oom_control")?;
    Ok(MemoryStats {
        usage: stats::read_u64(dir, "memory.usage_in_bytes")?,
        limit: stats::read_limit(dir, "memory.limit_in_bytes")?,
        inactive_file: stats::keyed(&stat, "total_inactive_file"),
        oom_kills: stats::keyed(&oom, "oom_kill"),
    })
}

/// From the cpuacct hierarchy: `cpuacct.usage` is nanoseconds,
/// `cpuacct.stat` is clock ticks (USER_HZ).
pub fn cpu_stats(dir: &Path) -> Result<CpuStats> {
    let stat = stats::read(dir, "cpuacct.stat")?;
    // SAFETY: sysconf has no preconditions.
    let hz = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as u64,
        _ => 100,
    };
    let ns = |ticks: u64| ticks.saturating_mul(1_000_000_000 / hz);
    Ok(CpuStats {
        usage_ns: stats::read_u64(dir, "cpuacct.usage")?,
        user_ns: ns(stats::keyed(&stat, "user")),
        system_ns: ns(stats::keyed(&stat, "system")),
    })
}

/// Bytes read and written, from the first blkio file this kernel has: the
/// throttle counters (every I/O scheduler), else the CFQ/BFQ ones.
pub fn blkio_stats(dir: &Path) -> Result<BlkioStats> {
    for file in [
        "blkio.throttle.io_service_bytes_recursive",
        "blkio.throttle.io_service_bytes",
        "blkio.io_service_bytes_recursive",
        "blkio.bfq.io_service_bytes_recursive",
    ] {
        if dir.join(file).exists() {
            return Ok(stats::parse_blkio_v1(&stats::read(dir, file)?));
        }
    }
    Err(Error::Unsupported(format!("{} has no blkio.*io_service_bytes file", dir.display())))
}
