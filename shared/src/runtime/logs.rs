//! The json-file log driver: what a detached container prints, kept on disk
//! by its monitor, in docker's format — one JSON object per line:
//!
//! ```text
//! {"log":"hello\n","stream":"stdout","time":"2026-11-23T10:00:00.123456789Z"}
//! ```
//!
//! `log` is one line of output with its newline (a line longer than 16 KiB
//! is cut into pieces without one, as docker does), `stream` says which of
//! the container's descriptors it came from, `time` is when the monitor
//! read it (RFC 3339, nanoseconds). With `-t` everything comes through the
//! terminal and is `stdout`.
//!
//! Files: `ROOT/containers/<id>/json.log`, then `json.log.1` … up to
//! `max-file - 1` older ones. When a record would take the current file past
//! `max-size` the files are shifted (`json.log` becomes `json.log.1`…) and a
//! new one is started. Defaults: 20 MiB per file, 5 files (docker's `local`
//! driver defaults: json-file has none, and an unbounded log fills disks).
//!
//! A full disk: a record that cannot be written whole is cut back off the
//! file (`ftruncate` to the size before it), so the file stays a sequence of
//! complete lines; the record is dropped and counted, and the container
//! goes on running (the monitor keeps draining its pipes, so it never blocks
//! on a full pipe either).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, IoContext, Result};

pub const LOG_FILE: &str = "json.log";
/// docker's buffer: a longer line is written as several records.
pub const MAX_LINE: usize = 16 * 1024;

/// `--log-driver` and `--log-opt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// `json-file`, or `none` (output discarded).
    pub driver: String,
    /// Bytes per file before rotation.
    pub max_size: u64,
    /// Files kept, the current one included (at least 1).
    pub max_file: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { driver: "json-file".into(), max_size: 20 << 20, max_file: 5 }
    }
}

impl LogConfig {
    /// `--log-driver DRIVER` and `--log-opt max-size=10m --log-opt max-file=3`.
    pub fn parse(driver: Option<&str>, opts: &[String]) -> Result<LogConfig> {
        let mut c = LogConfig::default();
        match driver {
            None | Some("json-file") => {}
            Some("none") => c.driver = "none".into(),
            Some(d) => return Err(Error::invalid(format!("--log-driver {d:?} is not supported")).hint("use json-file (the default) or none")),
        }
        for o in opts {
            let (k, v) = o.split_once('=').ok_or_else(|| Error::invalid(format!("--log-opt {o:?}: expected KEY=VALUE")))?;
            match k {
                "max-size" => {
                    c.max_size = parse_size(v).filter(|n| *n > 0).ok_or_else(|| {
                        Error::invalid(format!("--log-opt max-size={v}: expected a size such as 10m, 512k or 1g"))
                    })?
                }
                "max-file" => {
                    c.max_file = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| Error::invalid(format!("--log-opt max-file={v}: expected a number of files, at least 1")))?
                }
                _ => return Err(Error::invalid(format!("--log-opt {k:?} is not supported")).hint("supported: max-size, max-file")),
            }
        }
        Ok(c)
    }

    pub fn enabled(&self) -> bool {
        self.driver != "none"
    }
}

/// docker's RAMInBytes: a number with an optional k, m, g suffix (powers of 1024).
fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, shift) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 10),
        'm' => (&t[..t.len() - 1], 20),
        'g' => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    let n: f64 = num.parse().ok()?;
    (n >= 0.0).then(|| (n * (1u64 << shift) as f64) as u64)
}

/// One line of the log file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// RFC 3339 with exactly nine fractional digits (docker's RFC3339NanoFixed),
/// so that log times sort as text.
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

/// The monitor's end: appends records, rotates, survives a full disk.
pub struct LogWriter {
    dir: PathBuf,
    file: File,
    size: u64,
    config: LogConfig,
    /// Records lost to write errors (a full disk), since the monitor started.
    pub dropped: u64,
    /// The last write error, for the container's record.
    pub last_error: Option<String>,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().append(true).create(true).mode(0o640).custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW).open(path)
}

impl LogWriter {
    /// Open (or continue) the log in the container's directory.
    pub fn open(dir: &Path, config: &LogConfig) -> Result<LogWriter> {
        let path = dir.join(LOG_FILE);
        let file = open_append(&path).ctx("open log", &path)?;
        let size = file.metadata().ctx("stat", &path)?.len();
        Ok(LogWriter { dir: dir.to_path_buf(), file, size, config: config.clone(), dropped: 0, last_error: None })
    }

    /// Append one record: `line` as read from the container's `stream`.
    pub fn write(&mut self, stream: &str, line: &[u8], at: OffsetDateTime) {
        let rec = Record { log: String::from_utf8_lossy(line).into_owned(), stream: stream.to_string(), time: timestamp(at) };
        let mut data = serde_json::to_vec(&rec).expect("records serialise");
        data.push(b'\n');
        if self.size > 0 && self.size + data.len() as u64 > self.config.max_size {
            if let Err(e) = self.rotate() {
                self.last_error = Some(e.to_string());
            }
        }
        match self.file.write_all(&data) {
            Ok(()) => self.size += data.len() as u64,
            Err(e) => {
                // Cut a partial record back off: earlier lines stay whole.
                let _ = self.file.set_len(self.size);
                self.dropped += 1;
                self.last_error = Some(format!("write log {}: {e}", self.dir.join(LOG_FILE).display()));
            }
        }
    }

    /// json.log -> json.log.1 -> … ; the oldest beyond max-file is replaced.
    fn rotate(&mut self) -> Result<()> {
        let cur = self.dir.join(LOG_FILE);
        if self.config.max_file <= 1 {
            self.file.set_len(0).ctx("truncate", &cur)?;
            self.size = 0;
            return Ok(());
        }
        for i in (1..self.config.max_file - 1).rev() {
            let from = self.dir.join(format!("{LOG_FILE}.{i}"));
            if from.exists() {
                std::fs::rename(&from, self.dir.join(format!("{LOG_FILE}.{}", i + 1))).ctx("rotate log", &from)?;
            }
        }
        let first = self.dir.join(format!("{LOG_FILE}.1"));
        std::fs::rename(&cur, &first).ctx("rotate log", &cur)?;
        match open_append(&cur) {
            Ok(f) => {
                self.file = f;
                self.size = 0;
                Ok(())
            }
            Err(e) => {
                // No new file (no inode left): keep appending to the old one under its name.
                let _ = std::fs::rename(&first, &cur);
                Err(Error::io("start a new log file", &cur, e))
            }
        }
    }
}

/// Cuts a stream of bytes into log lines: at each newline, and every
/// [`MAX_LINE`] bytes of a longer line.
#[derive(Debug, Default)]
pub struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    pub fn feed(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8])) {
        while !data.is_empty() {
            match data.iter().position(|b| *b == b'\n') {
                Some(i) if self.buf.len() + i < MAX_LINE => {
                    self.buf.extend_from_slice(&data[..=i]);
                    emit(&self.buf);
                    self.buf.clear();
                    data = &data[i + 1..];
                }
                _ => {
                    let room = MAX_LINE - self.buf.len();
                    let take = data.len().min(room);
                    self.buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.buf.len() == MAX_LINE {
                        emit(&self.buf);
                        self.buf.clear();
                    }
                }
            }
        }
    }

    /// The rest, without a newline (the stream ended).
    pub fn flush(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.buf.is_empty() {
            emit(&self.buf);
            self.buf.clear();
        }
    }
}

/// What `ci-run logs` asks for.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// The last N records only.
    pub tail: Option<usize>,
}

impl Query {
    /// `--since`, `--until`, `--tail` as given (`all` or a number).
    pub fn from_flags(since: Option<&str>, until: Option<&str>, tail: &str) -> Result<Query> {
        let now = OffsetDateTime::now_utc();
        Ok(Query {
            since: since.map(|s| parse_time(s, now)).transpose()?,
            until: until.map(|s| parse_time(s, now)).transpose()?,
            tail: match tail {
                "all" | "-1" => None,
                n => Some(n.parse().map_err(|_| Error::invalid(format!("--tail {n:?}: expected a number of lines or \"all\"")))?),
            },
        })
    }

    /// What is written from now on (`start -a`).
    pub fn since_now() -> Query {
        Query { since: Some(OffsetDateTime::now_utc()), ..Query::default() }
    }

    fn wants(&self, r: &Record) -> bool {
        let Ok(t) = OffsetDateTime::parse(&r.time, &time::format_description::well_known::Rfc3339) else { return true };
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }
}

/// The log files of a container, oldest first.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix(LOG_FILE)?.strip_prefix('.')?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    let cur = dir.join(LOG_FILE);
    if cur.exists() {
        out.push(cur);
    }
    out
}

/// Whether the container has ever had a log.
pub fn exists(dir: &Path) -> bool {
    !files(dir).is_empty()
}

fn parse_line(line: &[u8], path: &Path) -> Result<Record> {
    serde_json::from_slice(line).map_err(|e| Error::Corrupt(format!("{}: a line is not a log record ({e})", path.display())))
}

/// Read complete lines from `r` (a partial last line stays in `partial`).
fn read_lines(r: &mut impl Read, partial: &mut Vec<u8>, path: &Path, mut each: impl FnMut(Record) -> Result<()>) -> Result<()> {
    let mut reader = BufReader::with_capacity(64 * 1024, r);
    loop {
        let n = reader.read_until(b'\n', partial).ctx("read", path)?;
        if n == 0 {
            return Ok(());
        }
        if partial.ends_with(b"\n") {
            let rec = parse_line(partial, path)?;
            partial.clear();
            each(rec)?;
        }
    }
}

/// Print the log (`sink` gets each record), then, with `follow` (a pidfd of
/// the container's monitor), go on printing what is appended — across
/// restarts and rotations — until the monitor exits.
pub fn stream(dir: &Path, q: &Query, follow: Option<BorrowedFd>, sink: &mut dyn FnMut(&Record) -> Result<()>) -> Result<()> {
    // Watch before reading, so nothing written in between is missed.
    let watch = match follow {
        Some(_) => Some(Inotify::watch(dir)?),
        None => None,
    };
    let mut cur = None;
    let mut backlog: Vec<Record> = Vec::new();
    read_on(dir, &mut cur, &mut |r| {
        backlog.push(r);
        Ok(())
    })?;
    let skip = q.tail.map(|n| backlog.len().saturating_sub(n)).unwrap_or(0);
    for r in backlog.iter().skip(skip).filter(|r| q.wants(r)) {
        sink(r)?;
    }
    drop(backlog);
    let (Some(owner), Some(watch)) = (follow, watch) else { return Ok(()) };
    let mut emit = |r: Record| if q.wants(&r) { sink(&r) } else { Ok(()) };
    loop {
        let owner_gone = watch.wait(owner)?;
        read_on(dir, &mut cur, &mut emit)?;
        if owner_gone {
            return Ok(());
        }
    }
}

/// A log file being read: its name when opened (for messages), the open
/// file, and a line not yet complete.
struct Reading {
    path: PathBuf,
    file: File,
    partial: Vec<u8>,
}

/// Read `cur` to its end, then each newer file in turn, up to the current
/// `json.log` (from the oldest file when `cur` is `None`).
///
/// The writer renames files while we read ([`LogWriter::rotate`]), so a
/// name says nothing: the next file is found by the inode of the one we
/// hold. Once a newer file exists the writer has left ours for good, but
/// it may have appended to it after our last read: ours is read to its end
/// once more before moving on. Only a file removed (beyond `max-file`)
/// before we reached it is lost; nothing is read twice.
fn read_on(dir: &Path, cur: &mut Option<Reading>, each: &mut dyn FnMut(Record) -> Result<()>) -> Result<()> {
    loop {
        if let Some(r) = cur.as_mut() {
            r.read(each)?;
        }
        let Some((path, file)) = next_file(dir, cur.as_ref().map(|r| &r.file))? else { return Ok(()) };
        if let Some(r) = cur.as_mut() {
            r.read(each)?;
        }
        *cur = Some(Reading { path, file, partial: Vec::new() });
    }
}

impl Reading {
    fn read(&mut self, each: &mut dyn FnMut(Record) -> Result<()>) -> Result<()> {
        // max-file=1 truncates the file in place: start it over.
        let pos = self.file.stream_position().ctx("seek", &self.path)?;
        if self.file.metadata().ctx("stat", &self.path)?.len() < pos {
            self.file.seek(SeekFrom::Start(0)).ctx("seek", &self.path)?;
            self.partial.clear();
        }
        read_lines(&mut self.file, &mut self.partial, &self.path, each)
    }
}

fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// The log files, oldest first, with their inodes. Names are read one at a
/// time while the writer may be renaming them: a listing counts only when
/// the next one is the same (no rotation in between).
fn snapshot(dir: &Path) -> Vec<(PathBuf, (u64, u64))> {
    let list = || -> Vec<(PathBuf, (u64, u64))> { files(dir).into_iter().filter_map(|p| std::fs::metadata(&p).ok().map(|m| (p, file_id(&m)))).collect() };
    let mut prev = list();
    for _ in 0..100 {
        let now = list();
        if now == prev {
            break;
        }
        prev = now;
    }
    prev
}

/// The file written after `cur` (the oldest with `None`), opened; `None`
/// when `cur` is the current file (or there is no log yet).
fn next_file(dir: &Path, cur: Option<&File>) -> Result<Option<(PathBuf, File)>> {
    for _ in 0..100 {
        let named = snapshot(dir);
        let next = match cur {
            None => named.first(),
            Some(f) => {
                let m = f.metadata().ctx("stat", dir.join(LOG_FILE))?;
                match named.iter().position(|(_, i)| *i == file_id(&m)) {
                    Some(i) => named.get(i + 1),
                    // Ours was rotated out (removed): every file there is newer.
                    None if m.nlink() == 0 => named.first(),
                    // Renamed while we looked: look again.
                    None => continue,
                }
            }
        };
        let Some((path, want)) = next else { return Ok(None) };
        match File::open(path) {
            Ok(f) if f.metadata().ok().map(|m| file_id(&m)) == Some(*want) => return Ok(Some((path.clone(), f))),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("open", path, e)),
        }
    }
    // A writer rotating faster than we can look: again on the next wake-up.
    Ok(None)
}

/// inotify on the container's directory: wakes the follower when the log
/// grows or a new file appears (libc directly: nix's inotify is behind a
/// feature this workspace does not enable).
struct Inotify {
    fd: OwnedFd,
}

impl Inotify {
    fn watch(dir: &Path) -> Result<Inotify> {
        // SAFETY: inotify_init1 with flags only.
        let raw = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if raw < 0 {
            return Err(Error::io("inotify_init1", dir, std::io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| Error::invalid("path contains NUL"))?;
        let mask = libc::IN_MODIFY | libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE;
        // SAFETY: valid C string.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) } < 0 {
            return Err(Error::io("watch (inotify)", dir, std::io::Error::last_os_error()));
        }
        Ok(Inotify { fd })
    }

    /// Wait for a change or for `owner` (a pidfd) to exit; true if it exited.
    /// A periodic wake-up covers anything inotify might not report.
    fn wait(&self, owner: BorrowedFd) -> Result<bool> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN), PollFd::new(owner, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::io("poll", "the container's log", e.into())),
        }
        let gone = fds[1].revents().is_some_and(|r| !r.is_empty());
        let mut buf = [0u8; 4096];
        // SAFETY: reading events into a local buffer (nonblocking).
        while unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        Ok(gone)
    }
}

/// `--since`/`--until`: an RFC 3339 time, a Unix time (seconds, with an
/// optional fraction), or a duration before now (`10m`, `1h30m`, `45s`).
pub fn parse_time(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    if let Ok(secs) = s.parse::<f64>() {
        if secs >= 0.0 {
            return OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128).map_err(|_| Error::invalid(format!("time {s:?} is out of range")));
        }
    }
    if let Some(d) = parse_duration(s) {
        return Ok(now - d);
    }
    Err(Error::invalid(format!("invalid time {s:?}")).hint("use an RFC 3339 time (2026-01-02T15:04:05Z), a Unix time, or a duration such as 10m or 1h30m"))
}

/// Go's time.ParseDuration for h, m, s, ms (what docker accepts in --since).
fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    Some(std::time::Duration::from_secs_f64(total))
}

/// Read a log file from an offset (for tests and tools that tail by hand).
pub fn read_from(path: &Path, offset: u64) -> Result<Vec<Record>> {
    let mut f = File::open(path).ctx("open", path)?;
    f.seek(SeekFrom::Start(offset)).ctx("seek", path)?;
    let mut out = Vec::new();
    let mut partial = Vec::new();
    read_lines(&mut f, &mut partial, path, |r| {
        out.push(r);
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(data: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut l = Lines::default();
        let mut out = Vec::new();
        for d in data {
            l.feed(d, |x| out.push(x.to_vec()));
        }
        l.flush(|x| out.push(x.to_vec()));
        out
    }

    #[test]
    fn lines_split_like_docker() {
        assert_eq!(collect(&[b"a\nb", b"c\n", b"tail"]), vec![b"a\n".to_vec(), b"bc\n".to_vec(), b"tail".to_vec()]);
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let mut data = long.clone();
        data.push(b'\n');
        let out = collect(&[&data]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].len(), MAX_LINE);
        assert_eq!(out[2], [vec![b'x'; 10], vec![b'\n']].concat());
    }

    #[test]
    fn records_rotate_and_stay_whole() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig { driver: "json-file".into(), max_size: 300, max_file: 3 };
        let mut w = LogWriter::open(dir.path(), &cfg).unwrap();
        let t = OffsetDateTime::now_utc();
        for i in 0..40 {
            w.write(if i % 2 == 0 { "stdout" } else { "stderr" }, format!("line {i}\n").as_bytes(), t);
        }
        let fs = files(dir.path());
        assert_eq!(fs.len(), 3, "{fs:?}");
        for f in &fs {
            assert!(std::fs::metadata(f).unwrap().len() <= 300);
        }
        let all: Vec<Record> = fs.iter().flat_map(|f| read_from(f, 0).unwrap()).collect();
        assert_eq!(all.last().unwrap().log, "line 39\n");
        assert_eq!(all.last().unwrap().stream, "stderr");
        // Consecutive: rotation loses whole old files, never lines in between.
        let nums: Vec<u32> = all.iter().map(|r| r.log.trim().strip_prefix("line ").unwrap().parse().unwrap()).collect();
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
        let mut got = Vec::new();
        stream(dir.path(), &Query { tail: Some(2), ..Query::default() }, None, &mut |r| {
            got.push(r.log.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(got, ["line 38\n", "line 39\n"]);
    }

    #[test]
    fn times_and_sizes() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        assert_eq!(parse_time("10m", now).unwrap(), now - time::Duration::minutes(10));
        assert_eq!(parse_time("1h30m", now).unwrap(), now - time::Duration::minutes(90));
        assert_eq!(parse_time("1000", now).unwrap().unix_timestamp(), 1000);
        assert_eq!(parse_time("2026-01-02T15:04:05Z", now).unwrap().year(), 2026);
        assert!(parse_time("yesterday", now).is_err());
        assert_eq!(timestamp(OffsetDateTime::from_unix_timestamp_nanos(1_500_000_000).unwrap()), "1970-01-01T00:00:01.500000000Z");
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        let c = LogConfig::parse(None, &["max-size=1k".into(), "max-file=2".into()]).unwrap();
        assert_eq!((c.max_size, c.max_file), (1024, 2));
        assert!(LogConfig::parse(Some("syslog"), &[]).is_err());
        assert!(LogConfig::parse(None, &["max-file=0".into()]).is_err());
    }
}
