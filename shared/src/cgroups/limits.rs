//! What a container may use: the `docker run` flags that become cgroup
//! files, with docker's meaning of each, and the mapping to and from the
//! OCI runtime spec's `linux.resources` (the container's `config.json`).

use oci_spec::runtime::{LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxPids, LinuxResources};

use super::devices::{default_devices, Access, DeviceKind, DeviceRule};
use crate::error::{Error, Result};

/// The CFS period docker uses for `--cpus`: 100 ms.
pub const CFS_PERIOD_US: u64 = 100_000;

/// Resource limits of a container. `Limits::default()` is what `docker run`
/// gives without flags: no resource limit, docker's device allow list.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `--memory`: bytes of RAM.
    pub memory: Option<u64>,
    /// `--memory-swap`: RAM + swap in bytes, docker's meaning. `None` (or 0)
    /// with `memory` set: as much swap as RAM (total = 2 × memory), docker's
    /// default. `-1`: unlimited swap.
    pub memory_swap: Option<i64>,
    /// `--cpus`: how many CPUs' worth of time per period (1.5 = 150 ms every 100 ms).
    pub cpus: Option<f64>,
    /// `--cpu-shares`: relative weight under contention (default 1024; 0 = unset).
    pub cpu_shares: Option<u64>,
    /// `--pids-limit`: most processes (threads included) at once; 0 or
    /// negative = unlimited.
    pub pids: Option<i64>,
    /// Device rules, applied in order after "deny all" (see [`super::devices`]).
    /// Empty denies every device; `[DeviceRule::allow_all()]` is `--privileged`.
    pub devices: Vec<DeviceRule>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory: None, memory_swap: None, cpus: None, cpu_shares: None, pids: None, devices: default_devices() }
    }
}

/// The swap limit to write, resolved from docker's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Swap {
    /// Leave the file alone.
    Unset,
    Unlimited,
    /// RAM + swap, bytes (v1 `memory.memsw.limit_in_bytes`; v2 takes the
    /// swap part alone: total - memory).
    Total(u64),
}

impl Limits {
    /// Check values that no kernel accepts, with docker's messages. Values
    /// the kernel may or may not take (a very large pids limit) are left to
    /// it: its refusal names the file and the value.
    pub fn validate(&self) -> Result<()> {
        if self.memory == Some(0) {
            return Err(Error::invalid("--memory 0: give a size in bytes (or leave it out for no limit)"));
        }
        if let Some(swap) = self.memory_swap.filter(|s| *s > 0) {
            let Some(memory) = self.memory else {
                return Err(Error::invalid("--memory-swap needs --memory: the swap limit is memory + swap"));
            };
            if (swap as u64) < memory {
                return Err(Error::invalid(format!(
                    "--memory-swap {swap} is smaller than --memory {memory}: it is the total of memory and swap"
                )));
            }
        }
        if self.memory_swap.is_some_and(|s| s < -1) {
            return Err(Error::invalid("--memory-swap: give bytes, or -1 for unlimited swap"));
        }
        if let Some(cpus) = self.cpus {
            let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            if !cpus.is_finite() || cpus < 0.01 || cpus > n as f64 {
                return Err(Error::invalid(format!(
                    "--cpus {cpus}: range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available"
                )));
            }
        }
        if let Some(s) = self.cpu_shares.filter(|s| *s != 0) {
            if !(2..=262_144).contains(&s) {
                return Err(Error::invalid(format!("--cpu-shares {s}: give a weight from 2 to 262144 (default 1024)")));
            }
        }
        Ok(())
    }

    pub(super) fn swap(&self) -> Swap {
        match (self.memory, self.memory_swap) {
            (_, Some(-1)) => Swap::Unlimited,
            (_, Some(s)) if s > 0 => Swap::Total(s as u64),
            (Some(m), _) => Swap::Total(m.saturating_mul(2)),
            (None, _) => Swap::Unset,
        }
    }

    /// `--cpus` as a CFS quota per [`CFS_PERIOD_US`], in microseconds.
    pub(super) fn cfs_quota_us(&self) -> Option<u64> {
        self.cpus.map(|c| (c * CFS_PERIOD_US as f64).round() as u64)
    }

    pub(super) fn shares(&self) -> Option<u64> {
        self.cpu_shares.filter(|s| *s != 0)
    }

    /// Whether any device rule must be enforced (an allow-all list needs nothing).
    pub(super) fn restricts_devices(&self) -> bool {
        self.devices.last() != Some(&DeviceRule::allow_all()) || self.devices.iter().any(|r| !r.allow)
    }

    /// The OCI runtime spec's `linux.resources` for these limits.
    pub fn to_oci(&self) -> LinuxResources {
        let mut r = LinuxResources::default();
        if self.memory.is_some() || self.memory_swap.is_some() {
            let mut m = LinuxMemory::default();
            m.set_limit(self.memory.map(|v| v as i64));
            m.set_swap(match self.swap() {
                Swap::Unset => None,
                Swap::Unlimited => Some(-1),
                Swap::Total(t) => Some(t as i64),
            });
            r.set_memory(Some(m));
        }
        if self.cpus.is_some() || self.shares().is_some() {
            let mut c = LinuxCpu::default();
            if let Some(q) = self.cfs_quota_us() {
                c.set_quota(Some(q as i64));
                c.set_period(Some(CFS_PERIOD_US));
            }
            c.set_shares(self.shares());
            r.set_cpu(Some(c));
        }
        if let Some(p) = self.pids {
            let mut pids = LinuxPids::default();
            pids.set_limit(if p > 0 { p } else { -1 });
            r.set_pids(Some(pids));
        }
        let mut deny_all = LinuxDeviceCgroup::default(); // allow: false, all devices
        deny_all.set_access(Some("rwm".to_string()));
        let mut devices = vec![deny_all];
        devices.extend(self.devices.iter().map(|d| {
            let mut o = LinuxDeviceCgroup::default();
            o.set_allow(d.allow);
            o.set_typ(Some(match d.kind {
                DeviceKind::All => LinuxDeviceType::A,
                DeviceKind::Char => LinuxDeviceType::C,
                DeviceKind::Block => LinuxDeviceType::B,
            }));
            o.set_major(d.major.map(i64::from));
            o.set_minor(d.minor.map(i64::from));
            o.set_access(Some(d.access.to_string()));
            o
        }));
        r.set_devices(Some(devices));
        r
    }

    /// Limits from an OCI `linux.resources` (fields we do not support are
    /// refused, not ignored, so a config never promises more than it gets).
    pub fn from_oci(r: &LinuxResources) -> Result<Limits> {
        let unsupported = |what: &str| Err(Error::Unsupported(format!("linux.resources.{what} is not supported by ci")));
        if r.block_io().is_some() {
            return unsupported("blockIO");
        }
        if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
            return unsupported("hugepageLimits");
        }
        if r.network().is_some() || r.rdma().is_some() || r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return unsupported("network/rdma/unified");
        }
        let mut l = Limits { devices: Vec::new(), ..Limits::default() };
        if let Some(m) = r.memory() {
            l.memory = m.limit().filter(|v| *v > 0).map(|v| v as u64);
            l.memory_swap = m.swap();
        }
        if let Some(c) = r.cpu() {
            l.cpu_shares = c.shares();
            if let Some(q) = c.quota().filter(|q| *q > 0) {
                let period = c.period().unwrap_or(CFS_PERIOD_US);
                l.cpus = Some(q as f64 / period as f64);
            }
        }
        l.pids = r.pids().as_ref().map(|p| p.limit());
        for d in r.devices().iter().flatten() {
            let kind = match d.typ().unwrap_or(LinuxDeviceType::A) {
                LinuxDeviceType::A => DeviceKind::All,
                LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
                LinuxDeviceType::B => DeviceKind::Block,
                LinuxDeviceType::P => return unsupported("devices[].type p (a FIFO is not a device)"),
            };
            let num = |n: Option<i64>| -> Result<Option<u32>> {
                match n {
                    None | Some(-1) => Ok(None),
                    Some(v) => u32::try_from(v).map(Some).map_err(|_| Error::invalid(format!("device number {v} out of range"))),
                }
            };
            let access = match d.access().as_deref() {
                None | Some("") => Access::ALL,
                Some(a) => Access::parse(a)?,
            };
            let rule = DeviceRule { kind, major: num(d.major())?, minor: num(d.minor())?, access, allow: d.allow() };
            // The leading "deny all" is implied by our rules.
            if !(l.devices.is_empty() && rule.kind == DeviceKind::All && !rule.allow) {
                l.devices.push(DeviceRule::parse(&rule.to_string(), rule.allow)?);
            }
        }
        Ok(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_swap_rules() {
        let l = |memory, memory_swap| Limits { memory, memory_swap, ..Limits::default() };
        assert_eq!(l(Some(100), None).swap(), Swap::Total(200));
        assert_eq!(l(Some(100), Some(0)).swap(), Swap::Total(200));
        assert_eq!(l(Some(100), Some(150)).swap(), Swap::Total(150));
        assert_eq!(l(Some(100), Some(-1)).swap(), Swap::Unlimited);
        assert_eq!(l(None, None).swap(), Swap::Unset);
        assert!(l(Some(100), Some(50)).validate().unwrap_err().to_string().contains("smaller than --memory"));
        assert!(l(None, Some(50)).validate().unwrap_err().to_string().contains("needs --memory"));
        assert!(l(Some(0), None).validate().is_err());
    }

    #[test]
    fn cpus() {
        let l = Limits { cpus: Some(0.5), ..Limits::default() };
        assert_eq!(l.cfs_quota_us(), Some(50_000));
        l.validate().unwrap();
        for bad in [0.0, 0.001, f64::NAN, 1e6] {
            let e = Limits { cpus: Some(bad), ..Limits::default() }.validate().unwrap_err().to_string();
            assert!(e.contains("range of CPUs is from 0.01"), "{e}");
        }
        assert!(Limits { cpu_shares: Some(1), ..Limits::default() }.validate().is_err());
        assert!(Limits { cpu_shares: Some(0), ..Limits::default() }.validate().is_ok());
    }

    #[test]
    fn oci_round_trip() {
        let l = Limits {
            memory: Some(64 << 20),
            memory_swap: Some(-1),
            cpus: Some(1.5),
            cpu_shares: Some(512),
            pids: Some(100),
            devices: default_devices(),
        };
        let oci = l.to_oci();
        let json = serde_json::to_value(&oci).unwrap();
        assert_eq!(json["memory"]["limit"], 64 << 20);
        assert_eq!(json["cpu"]["quota"], 150_000);
        assert_eq!(json["devices"][0], serde_json::json!({"allow": false, "access": "rwm"}));
        assert_eq!(json["devices"][3], serde_json::json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}));
        assert_eq!(Limits::from_oci(&oci).unwrap(), l);
        assert!(l.restricts_devices());
        assert!(!Limits { devices: vec![DeviceRule::allow_all()], ..l }.restricts_devices());
    }
}
