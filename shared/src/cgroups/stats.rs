//! What a container uses, read from its cgroup: the numbers behind
//! `ci-run stats` (docker's MEM USAGE / LIMIT, CPU %, PIDS, BLOCK I/O).
//!
//! | figure            | cgroup v1                                   | cgroup v2                      |
//! |-------------------|---------------------------------------------|--------------------------------|
//! | memory usage      | `memory.usage_in_bytes`                     | `memory.current`               |
//! | memory limit      | `memory.limit_in_bytes`                     | `memory.max`                   |
//! | page cache        | `memory.stat` `total_inactive_file`         | `memory.stat` `inactive_file`  |
//! | OOM kills         | `memory.oom_control` `oom_kill`             | `memory.events` `oom_kill`     |
//! | CPU time          | `cpuacct.usage` (ns), `cpuacct.stat` (ticks) | `cpu.stat` `usage_usec`...     |
//! | processes         | `pids.current`, `pids.max`                  | same                           |
//! | block I/O         | `blkio.throttle.io_service_bytes_recursive` | `io.stat` `rbytes`, `wbytes`   |
//!
//! A figure whose controller is not available is `None`, not zero.
//!
//! Block I/O on cgroup v1: recent kernels (6.x) count the v1
//! `blkio.throttle.*` bytes only for devices where blk-throttle is active,
//! that is where some cgroup has a `blkio.throttle.*_device` rule; elsewhere
//! the v1 figures stay 0 (checked on the CI machine: 8 MiB of O_DIRECT reads
//! counted 0, then 8 MiB once a no-op read_bps rule was set). v2's `io.stat`
//! always counts.

use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::error::{IoContext, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub memory: Option<MemoryStats>,
    pub cpu: Option<CpuStats>,
    pub pids: Option<PidsStats>,
    pub blkio: Option<BlkioStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryStats {
    /// Bytes charged to the cgroup, page cache included.
    pub usage: u64,
    /// The limit in bytes; `None` when unlimited.
    pub limit: Option<u64>,
    /// Page cache the kernel can drop at no cost. Docker shows
    /// `usage - inactive_file` as the container's memory use.
    pub inactive_file: u64,
    /// How many times the OOM killer killed a process of the cgroup.
    pub oom_kills: u64,
}

impl MemoryStats {
    /// What docker's `MEM USAGE` column shows.
    pub fn working_set(&self) -> u64 {
        self.usage.saturating_sub(self.inactive_file)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    /// CPU time used by the cgroup's processes, in nanoseconds.
    pub usage_ns: u64,
    pub user_ns: u64,
    pub system_ns: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PidsStats {
    pub current: u64,
    /// `None` when unlimited.
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlkioStats {
    pub read_bytes: u64,
    pub write_bytes: u64,
}

/// Read a file of a cgroup directory.
pub(super) fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    fs::read_to_string(&path).ctx("read", &path)
}

/// A file holding one number.
pub(super) fn read_u64(dir: &Path, file: &str) -> Result<u64> {
    let text = read(dir, file)?;
    text.trim().parse().map_err(|_| {
        crate::Error::Corrupt(format!("{}: expected a number, found {:?}", dir.join(file).display(), text.trim()))
    })
}

/// A limit file: a number, or `max` (v2, pids) / a huge number (v1 memory:
/// the page counter's maximum) for none.
pub(super) fn read_limit(dir: &Path, file: &str) -> Result<Option<u64>> {
    let text = read(dir, file)?;
    match text.trim() {
        "max" => Ok(None),
        n => match n.parse::<u64>() {
            // v1 prints PAGE_COUNTER_MAX * page size, a bit under 2^63.
            Ok(v) if v >= 1 << 62 => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(_) => Err(crate::Error::Corrupt(format!("{}: expected a limit, found {n:?}", dir.join(file).display()))),
        },
    }
}

/// A "flat keyed" file (`key value` per line: `memory.stat`, `cpu.stat`,
/// `memory.events`, `memory.oom_control`): the value of `key`, 0 if absent.
pub(super) fn keyed(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// v1 `blkio.*io_service_bytes*`: `8:0 Read 4096` lines, per device, plus
/// a `Total` line. Sums reads and writes over the devices.
pub(super) fn parse_blkio_v1(text: &str) -> BlkioStats {
    let mut s = BlkioStats::default();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() == 3 {
            let n: u64 = f[2].parse().unwrap_or(0);
            match f[1] {
                "Read" => s.read_bytes += n,
                "Write" => s.write_bytes += n,
                _ => {}
            }
        }
    }
    s
}

/// v2 `io.stat`: `8:0 rbytes=1 wbytes=2 rios=3 ...` per device.
pub(super) fn parse_io_stat(text: &str) -> BlkioStats {
    let mut s = BlkioStats::default();
    for field in text.split_whitespace() {
        if let Some((k, v)) = field.split_once('=') {
            let n: u64 = v.parse().unwrap_or(0);
            match k {
                "rbytes" => s.read_bytes += n,
                "wbytes" => s.write_bytes += n,
                _ => {}
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        let stat = "cache 8192\nrss 1000\ntotal_inactive_file 4096\ninactive_file 12\n";
        assert_eq!(keyed(stat, "total_inactive_file"), 4096);
        assert_eq!(keyed(stat, "inactive_file"), 12);
        assert_eq!(keyed(stat, "missing"), 0);
        let oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(keyed(oom, "oom_kill"), 2);
        let blk = "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 4608\n8:16 Read 1\n8:16 Write 1\nTotal 4610\n";
        assert_eq!(parse_blkio_v1(blk), BlkioStats { read_bytes: 4097, write_bytes: 513 });
        let io = "8:0 rbytes=100 wbytes=20 rios=1 wios=1 dbytes=0 dios=0\n253:0 rbytes=1 wbytes=2 rios=1 wios=1\n";
        assert_eq!(parse_io_stat(io), BlkioStats { read_bytes: 101, write_bytes: 22 });
        let m = MemoryStats { usage: 100, inactive_file: 30, ..Default::default() };
        assert_eq!(m.working_set(), 70);
    }

    #[test]
    fn limits() {
        let dir = tempfile::tempdir().unwrap();
        for (text, want) in [("max\n", None), ("9223372036854771712\n", None), ("20971520\n", Some(20971520))] {
            fs::write(dir.path().join("f"), text).unwrap();
            assert_eq!(read_limit(dir.path(), "f").unwrap(), want);
        }
        fs::write(dir.path().join("f"), "lots\n").unwrap();
        assert!(read_limit(dir.path(), "f").unwrap_err().to_string().contains("expected a limit"));
    }
}
