//! `ci-run top`: the processes of a container, as `ps -ef` on the host
//! would show them (UID PID PPID C STIME TTY TIME CMD).
//!
//! The list comes from the container's cgroup (`cgroup.procs`), and every
//! figure from the host's `/proc/PID/{stat,status,cmdline}`, read by
//! ci-run itself. docker runs the host's `ps` instead; podman once ran a
//! helper inside the container's namespaces that trusted the container's
//! files (CVE-2022-1227). Here nothing is executed, and user names come
//! from the host's /etc/passwd, parsed (never NSS).

use super::container::Container;
use super::state;
use crate::error::Result;
use crate::object::ProcessObject;

fn clock_ticks() -> u64 {
    // SAFETY: sysconf with a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

fn boot_time() -> i64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("btime "))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// uid -> name from the host's /etc/passwd.
fn host_users() -> Vec<(u32, String)> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.get(2)?.parse().ok()?, f.first()?.to_string()))
        })
        .collect()
}

/// The container's processes, by pid.
pub fn processes(c: &Container) -> Result<Vec<ProcessObject>> {
    let Some(cg) = crate::cgroups::Cgroup::open(&state::cgroup_name(c))? else { return Ok(vec![]) };
    let ticks = clock_ticks();
    let btime = boot_time();
    let users = host_users();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let local = local_offset(now);
    let mut out = Vec::new();
    for pid in cg.procs()? {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let comm = head.split_once('(').map(|(_, c)| c).unwrap_or("").to_string();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        // Fields after the command: state(0) ppid(1) … tty_nr(4) … utime(11) stime(12) … starttime(19).
        let ppid = num(1) as i32;
        let tty_nr = num(4);
        let cpu_ticks = num(11) + num(12);
        let start = btime + (num(19) / ticks) as i64;
        let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("Uid:"))?.split_whitespace().nth(1)?.parse::<u32>().ok())
            .unwrap_or(0);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let cmd = if args.is_empty() { format!("[{comm}]") } else { args.join(" ") };
        let elapsed = (now - start).max(1) as u64;
        let secs = cpu_ticks / ticks;
        let started = time::OffsetDateTime::from_unix_timestamp(start).unwrap_or(time::OffsetDateTime::UNIX_EPOCH).to_offset(local);
        let today = time::OffsetDateTime::now_utc().to_offset(local).date() == started.date();
        out.push(ProcessObject {
            kind: "process".into(),
            container: c.record.id.clone(),
            pid,
            ppid,
            uid,
            user: users.iter().find(|(u, _)| *u == uid).map(|(_, n)| n.clone()).unwrap_or_else(|| uid.to_string()),
            cpu: (secs * 100 / elapsed) as u32,
            stime: if today { format!("{:02}:{:02}", started.hour(), started.minute()) } else { format!("{}{:02}", &started.month().to_string()[..3], started.day()) },
            tty: tty_name(tty_nr),
            time: format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
            cmd,
        });
    }
    Ok(out)
}

/// The local time zone's offset (libc's localtime_r; the time crate's own
/// needs a feature this workspace does not enable).
fn local_offset(now: i64) -> time::UtcOffset {
    // SAFETY: localtime_r fills a local tm.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let t: libc::time_t = now;
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return time::UtcOffset::UTC;
    }
    time::UtcOffset::from_whole_seconds(tm.tm_gmtoff as i32).unwrap_or(time::UtcOffset::UTC)
}

/// ps's TTY column from /proc/PID/stat's tty_nr.
fn tty_name(nr: u64) -> String {
    let major = (nr >> 8) & 0xfff;
    let minor = (nr & 0xff) | ((nr >> 12) & 0xfff00);
    match (nr, major) {
        (0, _) => "?".into(),
        (_, 136..=143) => format!("pts/{}", (major - 136) * 256 + minor),
        (_, 4) => format!("tty{minor}"),
        _ => format!("{major}:{minor}"),
    }
}
