//! `ci-run stats`: what a container uses, from its cgroup (memory, CPU,
//! processes, block I/O: see [`crate::cgroups::stats`] for the files on v1
//! and v2) and its network namespace (`/proc/PID/net/dev`). Everything is
//! read by ci-run in its own context; nothing of the container is run.
//!
//! CPU % is docker's: the CPU time the cgroup used between two samples
//! over the wall-clock time between them, times 100 (so 200% is two CPUs
//! busy). Memory is docker's "usage": charged bytes minus inactive page
//! cache; without a limit, the machine's memory is shown as the limit.

use std::time::Instant;

use super::container::Container;
use super::state;
use crate::error::Result;
use crate::object::ContainerStats;

/// One reading of a container's counters.
#[derive(Debug, Clone)]
pub struct Sample {
    at: Instant,
    stats: crate::cgroups::Stats,
    net: (u64, u64),
}

/// Read a running container's counters (`pid`: its PID 1).
pub fn sample(c: &Container, pid: i32) -> Result<Sample> {
    let at = Instant::now();
    let stats = match crate::cgroups::Cgroup::open(&state::cgroup_name(c))? {
        Some(cg) => cg.stats()?,
        None => crate::cgroups::Stats::default(),
    };
    Ok(Sample { at, stats, net: net_bytes(c, pid) })
}

/// Received and sent bytes on the container's own interfaces (not `lo`);
/// 0 with `--network host`, whose counters are the host's, as docker shows.
fn net_bytes(c: &Container, pid: i32) -> (u64, u64) {
    let own_netns = std::fs::read(c.dir.join("config.json"))
        .ok()
        .and_then(|d| serde_json::from_slice::<oci_spec::runtime::Spec>(&d).ok())
        .and_then(|s| s.linux().as_ref().and_then(|l| l.namespaces().clone()))
        .is_some_and(|n| n.iter().any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network));
    if !own_netns {
        return (0, 0);
    }
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) else { return (0, 0) };
    parse_net_dev(&text)
}

fn parse_net_dev(text: &str) -> (u64, u64) {
    let mut rx = 0;
    let mut tx = 0;
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else { continue };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if f.len() >= 9 {
            rx += f[0];
            tx += f[8];
        }
    }
    (rx, tx)
}

/// The machine's memory (the limit shown for a container without one).
fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// The figures between two samples (`prev` None: CPU % is 0).
pub fn object(c: &Container, prev: Option<&Sample>, cur: &Sample) -> ContainerStats {
    let cpu_percent = match (prev.and_then(|p| p.stats.cpu.as_ref().map(|x| (p.at, x.usage_ns))), cur.stats.cpu.as_ref()) {
        (Some((t0, u0)), Some(now)) => {
            let wall = cur.at.duration_since(t0).as_nanos() as f64;
            if wall > 0.0 {
                now.usage_ns.saturating_sub(u0) as f64 / wall * 100.0
            } else {
                0.0
            }
        }
        _ => 0.0,
    };
    let (usage, limit) = match &cur.stats.memory {
        Some(m) => (m.working_set(), m.limit.unwrap_or_else(host_memory)),
        None => (0, host_memory()),
    };
    let blk = cur.stats.blkio.clone().unwrap_or_default();
    ContainerStats {
        kind: "container".into(),
        id: c.record.id.clone(),
        name: c.record.name.clone(),
        cpu_percent: (cpu_percent * 100.0).round() / 100.0,
        memory_usage: usage,
        memory_limit: limit,
        memory_percent: if limit > 0 { ((usage as f64 / limit as f64 * 100.0) * 100.0).round() / 100.0 } else { 0.0 },
        net_rx: cur.net.0,
        net_tx: cur.net.1,
        block_read: blk.read_bytes,
        block_write: blk.write_bytes,
        pids: cur.stats.pids.as_ref().map(|p| p.current).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn net_dev_skips_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:    100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  eth0:   2000      10    0    0    0     0          0         0      300       3    0    0    0     0       0          0\n";
        assert_eq!(super::parse_net_dev(text), (2000, 300));
    }
}
