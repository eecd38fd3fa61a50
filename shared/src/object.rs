//! The JSON contract between the tools.
//!
//! stdout carries one JSON object per line per resource acted on or listed;
//! each has a `kind` (`image`, `container`, `volume`, `network`) and an `id`.
//! Wherever a tool takes a resource argument, `-` means "the objects on
//! stdin", so `ci-build import rootfs.tar | ci-build tag - app:1` works.
//! On a terminal, list verbs print a table instead (see [`emit_table`]).

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};

/// An image as the tools print it (and `inspect` adds manifest and config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageObject {
    /// Always "image".
    pub kind: String,
    /// The image id: the digest of its config, as docker defines it.
    pub id: Digest,
    /// The digest of its manifest (what a registry knows it by).
    pub digest: Digest,
    /// References naming it, in docker's short form (`busybox:latest`).
    pub tags: Vec<String>,
    /// Total size of its layers and config, in bytes.
    pub size: u64,
    /// When it was created (RFC 3339), if its config says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
}

/// An image that `ci-push` or `ci-pull` moved: the image (its id, so that
/// `ci-run -` and the other `-` readers find it in the store) and where it
/// went or came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TransferObject {
    /// Always "image".
    pub kind: String,
    /// The image id: the digest of its config.
    pub id: Digest,
    /// Where it was pushed to or pulled from: a registry reference
    /// (`127.0.0.1:5000/app:1`) or a transport (`oci-archive:app.tar`).
    pub reference: String,
    /// The digest of its manifest there (what `NAME@DIGEST` names).
    pub digest: Digest,
    /// Its names in the local store, in docker's short form.
    pub tags: Vec<String>,
    /// Pushes only: how many blobs were sent (0 when the destination had them all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded: Option<usize>,
}

/// `ci-run inspect`: everything about a container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerInspect {
    /// Always "container".
    pub kind: String,
    pub id: String,
    pub name: String,
    pub created: String,
    /// The image as named, and its id.
    pub image: String,
    pub image_id: String,
    /// The command: the program and its arguments.
    pub path: Option<String>,
    pub args: Vec<String>,
    pub state: InspectState,
    pub restart_count: u32,
    pub config: InspectConfig,
    pub host_config: InspectHostConfig,
    /// Mounts the user asked for (none of ci-run's own).
    pub mounts: Vec<InspectMount>,
    pub network_settings: InspectNetwork,
    pub graph_driver: InspectGraphDriver,
    /// Its json-file log, if it keeps one.
    pub log_path: Option<std::path::PathBuf>,
    /// ROOT/containers/ID: record, spec, log, writable layer.
    pub dir: std::path::PathBuf,
    /// /run/ci/H/ID: what dies with the machine (state.json, monitor.sock).
    pub state_dir: std::path::PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InspectState {
    /// created, running, restarting or exited.
    pub status: String,
    pub running: bool,
    pub restarting: bool,
    /// Host pid of its PID 1, while it runs.
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
    /// Why the last start failed, or what went wrong.
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Host pid of its monitor (`-d`), while there is one.
    pub monitor_pid: Option<i32>,
    /// Host pid of the process that waits for it (its monitor, or a foreground ci-run).
    pub owner_pid: Option<i32>,
    /// Stopped by hand: its restart policy does not start it again.
    pub manually_stopped: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InspectConfig {
    pub hostname: String,
    pub user: String,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: Option<String>,
    pub tty: bool,
    pub open_stdin: bool,
    pub labels: std::collections::BTreeMap<String, String>,
    pub stop_signal: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InspectHostConfig {
    /// none (its own network namespace, loopback only) or host.
    pub network_mode: String,
    pub read_only: bool,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// CPU limit in billionths of a CPU (docker's NanoCpus).
    pub nano_cpus: Option<i64>,
    pub pids_limit: Option<i64>,
    pub group_add: Vec<String>,
    pub restart_policy: crate::runtime::restart::RestartPolicy,
    pub auto_remove: bool,
    pub log_config: crate::runtime::logs::LogConfig,
    /// Its cgroup, relative to each hierarchy's root.
    pub cgroup: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InspectMount {
    #[serde(rename = "type")]
    pub typ: String,
    pub source: Option<std::path::PathBuf>,
    pub destination: std::path::PathBuf,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InspectNetwork {
    pub network_mode: String,
    pub ip_address: String,
    pub ports: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InspectGraphDriver {
    /// Always "overlay".
    pub name: String,
    pub upper_dir: std::path::PathBuf,
    pub lower_dirs: Vec<std::path::PathBuf>,
}

/// `ci-run stats`: a container's usage, with its kind and id so that the
/// line can be piped to the verbs that take a container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerStats {
    /// Always "container".
    pub kind: String,
    pub id: String,
    pub name: String,
    /// CPU time used per wall-clock time, in percent (200: two CPUs busy).
    pub cpu_percent: f64,
    /// Bytes of memory in use (page cache that can be dropped excluded).
    pub memory_usage: u64,
    /// Its memory limit, or the machine's memory when it has none.
    pub memory_limit: u64,
    pub memory_percent: f64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub pids: u64,
}

impl Tabular for ContainerStats {
    fn headers() -> &'static [&'static str] {
        &["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.id.chars().take(12).collect(),
            self.name.clone(),
            format!("{:.2}%", self.cpu_percent),
            format!("{} / {}", human_size_binary(self.memory_usage), human_size_binary(self.memory_limit)),
            format!("{:.2}%", self.memory_percent),
            format!("{} / {}", human_size(self.net_rx), human_size(self.net_tx)),
            format!("{} / {}", human_size(self.block_read), human_size(self.block_write)),
            self.pids.to_string(),
        ]
    }
}

/// `ci-run top`: one process of a container, as `ps -ef` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProcessObject {
    /// Always "process".
    pub kind: String,
    /// The container's id.
    pub container: String,
    /// Its pid on the host.
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    /// The uid's name on the host (ps's UID column).
    pub user: String,
    /// ps's C: CPU use over its lifetime, percent.
    pub cpu: u32,
    pub stime: String,
    pub tty: String,
    /// CPU time used, HH:MM:SS.
    pub time: String,
    pub cmd: String,
}

impl Tabular for ProcessObject {
    fn headers() -> &'static [&'static str] {
        &["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    }
    fn row(&self) -> Vec<String> {
        vec![self.user.clone(), self.pid.to_string(), self.ppid.to_string(), self.cpu.to_string(), self.stime.clone(), self.tty.clone(), self.time.clone(), self.cmd.clone()]
    }
}

/// Sizes in binary units, as docker's memory column (`1.5MiB`, `7.63GiB`).
pub fn human_size_binary(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{}", UNITS[u])
}

/// A container as the tools print it (`ci-run ps`, `-d`, `stop`, …): its
/// record plus what is true of it now. `ci-run inspect` prints more.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerObject {
    /// Always "container".
    pub kind: String,
    /// 64 hex digits; the first 12 are its short form.
    pub id: String,
    pub name: String,
    /// The image as it was named when the container was created.
    pub image: String,
    /// The image id (config digest); empty for a `--rootfs` container.
    pub image_id: String,
    pub command: Vec<String>,
    /// When it was created (RFC 3339).
    pub created: String,
    /// created, running, restarting or exited.
    pub state: String,
    /// The same in docker's words: "Up 3 minutes", "Exited (0) 2 seconds ago".
    pub status: String,
    /// How the last run ended: the status, or 128+N when signal N killed it
    /// (absent while it runs, and when nobody could know: see ci-containers(7)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The host pid of its PID 1, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// How many times its restart policy started it again.
    pub restart_count: u32,
    pub labels: std::collections::BTreeMap<String, String>,
    /// Published ports (none until networks exist).
    pub ports: Vec<String>,
}

/// docker's `ps` columns, short form (12-digit ids, commands cut at 20 characters).
impl Tabular for ContainerObject {
    fn headers() -> &'static [&'static str] {
        &["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    }
    fn row(&self) -> Vec<String> {
        self.ps_row(false)
    }
}

impl ContainerObject {
    /// A `ps` row; `full` is `--no-trunc`.
    pub fn ps_row(&self, full: bool) -> Vec<String> {
        // docker joins the arguments with spaces, unquoted, then quotes the whole.
        let cmd = self.command.join(" ");
        let cmd = if full { cmd } else { ellipsis(&cmd, 20) };
        let id = if full { self.id.clone() } else { self.id.chars().take(12).collect() };
        vec![id, self.image.clone(), format!("\"{cmd}\""), ago(&self.created), self.status.clone(), self.ports.join(", "), self.name.clone()]
    }
}

/// docker's Ellipsis: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Something that can be printed as a row of a table.
pub trait Tabular {
    fn headers() -> &'static [&'static str];
    fn row(&self) -> Vec<String>;
}

/// Print objects as JSON lines (what pipes and Makefiles read).
pub fn emit_json_lines<'a, T: Serialize + 'a>(out: &mut impl Write, objects: impl IntoIterator<Item = &'a T>) -> Result<()> {
    for o in objects {
        emit_json(out, o)?;
    }
    Ok(())
}

/// Print rows as an aligned table (what people read on a terminal).
pub fn emit_table<T: Tabular>(out: &mut impl Write, rows: &[T]) -> Result<()> {
    write_table(out, T::headers(), rows.iter().map(Tabular::row).collect()).or_else(ignore_broken_pipe)
}

/// Print one object as a JSON line.
pub fn emit_json<T: Serialize + ?Sized>(out: &mut impl Write, object: &T) -> Result<()> {
    let mut line = serde_json::to_vec(object).expect("our objects always serialise");
    line.push(b'\n');
    out.write_all(&line).or_else(ignore_broken_pipe)
}

fn ignore_broken_pipe(e: std::io::Error) -> Result<()> {
    // `ci-build ls | head -1` closes the pipe early: that is not our failure.
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(Error::io("write", "stdout", e))
    }
}

/// An aligned table with a header row, laid out as docker's tables are (Go's
/// text/tabwriter with minimum width 10 and padding 3): each column but the
/// last is as wide as its widest cell plus three spaces, and at least 10.
pub fn write_table(out: &mut impl Write, headers: &[&str], rows: Vec<Vec<String>>) -> std::io::Result<()> {
    const PADDING: usize = 3;
    const MIN_WIDTH: usize = 10;
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, (c, w)) in cells.into_iter().zip(&widths).enumerate() {
            s.push_str(c);
            if i + 1 < n {
                let column = (w + PADDING).max(MIN_WIDTH);
                s.extend(std::iter::repeat_n(' ', column - c.chars().count()));
            }
        }
        s.push('\n');
        s
    };
    out.write_all(line(headers.to_vec()).as_bytes())?;
    for r in &rows {
        out.write_all(line(r.iter().map(String::as_str).collect()).as_bytes())?;
    }
    Ok(())
}

/// The longest line of JSON we accept on stdin: objects are small; a huge
/// line is garbage, not an object.
const MAX_LINE: u64 = 1 << 20;

/// A resource named on stdin: its kind and id (or name, for volumes and networks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdinRef {
    pub kind: String,
    pub id: String,
}

/// Read the objects on stdin (one JSON object per line) and return the ids
/// of those of `kind`. Garbage is an error naming the line, its byte offset
/// in the stream, the field at fault, and quoting the line.
pub fn read_refs(input: &mut impl BufRead, kind: &str) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut lineno = 0;
    let mut offset = 0u64;
    loop {
        let mut buf = Vec::new();
        let n = std::io::Read::take(&mut *input, MAX_LINE + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io("read", "stdin", e))?;
        if n == 0 {
            break;
        }
        lineno += 1;
        let at = format!("stdin line {lineno} (byte {offset})");
        offset += n as u64;
        if buf.len() as u64 > MAX_LINE {
            return Err(Error::invalid(format!(
                "{at}: longer than {MAX_LINE} bytes; expected one JSON object per line"
            )));
        }
        let line = buf.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let hint = || format!("`-` reads {kind} objects printed by the ci tools, one JSON object per line");
        let r = parse_ref_line(line).map_err(|why| Error::invalid(format!("{at}: {why}: {}", quote(line))).hint(hint()))?;
        if r.kind != kind {
            return Err(Error::invalid(format!(
                "{at}: expected {} object, got a {} object ({})",
                with_article(kind),
                r.kind, r.id
            ))
            .hint(hint()));
        }
        ids.push(r.id);
    }
    if ids.is_empty() {
        return Err(Error::invalid(format!("`-` was given but stdin held no {kind} object")));
    }
    Ok(ids)
}

/// The top-level fields of a JSON object, in order; a field given twice
/// is an error (serde_json would silently keep the last one, so
/// `{"kind":"image","id":"a","id":"b"}` could mean either).
struct Fields(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Fields, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Fields, A::Error> {
                let mut fields: Vec<(String, serde_json::Value)> = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    if fields.iter().any(|(f, _)| *f == k) {
                        return Err(serde::de::Error::custom(format!("the field {k:?} appears twice")));
                    }
                    let v = map.next_value()?;
                    fields.push((k, v));
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// What a JSON value is, for messages.
fn type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn parse_ref_line(line: &[u8]) -> std::result::Result<StdinRef, String> {
    let Fields(fields) = serde_json::from_slice(line).map_err(|e| {
        // serde_json says "… at line 1 column N": the column is the byte in the line.
        let msg = e.to_string();
        let msg = msg.rsplit_once(" at line ").map(|(m, _)| m.to_string()).unwrap_or(msg);
        let byte = e.column().saturating_sub(1);
        match e.classify() {
            serde_json::error::Category::Data => format!("{msg} (at byte {byte} of the line)"),
            _ => format!("not JSON ({msg}, at byte {byte} of the line)"),
        }
    })?;
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let string = |name: &str, v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Ok(s.clone()),
        other => Err(format!("the field {name:?} is {}, expected a string", type_name(other))),
    };
    let kind = string("kind", get("kind").ok_or("no \"kind\" field")?)?;
    let id = match (get("id"), get("name")) {
        (Some(v), _) => string("id", v)?,
        (None, Some(v)) => string("name", v)?,
        (None, None) => return Err("no \"id\" field".into()),
    };
    Ok(StdinRef { kind, id })
}

/// Quote a line for an error message, shortened if long (bytes that are
/// not UTF-8 shown as U+FFFD).
fn quote(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(&line[..line.len().min(480)]);
    let mut q: String = s.chars().take(120).collect();
    if q.len() < s.len() || line.len() > 480 {
        q.push('…');
    }
    format!("{q:?}")
}

/// Expand `-` in a list of resource arguments with the ids read from stdin.
pub fn expand_stdin(args: &[String], kind: &str) -> Result<Vec<String>> {
    if !args.iter().any(|a| a == "-") {
        return Ok(args.to_vec());
    }
    let stdin_ids = read_refs(&mut std::io::stdin().lock(), kind)?;
    let mut out = Vec::new();
    for a in args {
        if a == "-" {
            out.extend(stdin_ids.iter().cloned());
        } else {
            out.push(a.clone());
        }
    }
    Ok(out)
}

/// The one resource a verb acts on: `arg` itself, or the one object on
/// stdin when `arg` is `-` (none or several is a usage error naming `verb`).
pub fn expand_one(arg: &str, kind: &str, verb: &str) -> Result<String> {
    let mut names = expand_stdin(&[arg.to_string()], kind)?;
    match names.len() {
        1 => Ok(names.remove(0)),
        n => Err(Error::invalid(format!(
            "stdin held {n} {kind} object{}; {verb} takes one {kind}",
            if n == 1 { "" } else { "s" }
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ids_and_rejects_garbage() {
        let mut ok = &b"{\"kind\":\"image\",\"id\":\"sha256:ab\"}\n\n{\"kind\":\"image\",\"id\":\"x\"}\n"[..];
        assert_eq!(read_refs(&mut ok, "image").unwrap(), vec!["sha256:ab", "x"]);
        let mut bad = &b"{\"kind\":\"image\",\"id\":\"a\"}\nnot json\n"[..];
        let e = read_refs(&mut bad, "image").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("not json"), "{e}");
        let mut wrong = &b"{\"kind\":\"container\",\"id\":\"c1\"}\n"[..];
        assert!(read_refs(&mut wrong, "image").unwrap_err().to_string().contains("expected an image"));
    }

    #[test]
    fn garbage_is_named_by_line_byte_and_field() {
        let err = |input: &[u8]| read_refs(&mut &input[..], "image").unwrap_err().to_string();
        let e = err(b"{\"kind\":\"image\",\"id\":\"a\"}\n{\"kind\":\"image\",\"id\":\"a\",\"id\":\"b\"}\n");
        assert!(e.contains("stdin line 2 (byte 26)") && e.contains("\"id\" appears twice"), "{e}");
        let e = err(b"{\"kind\":\"image\",\"id\":5}\n");
        assert!(e.contains("the field \"id\" is a number, expected a string"), "{e}");
        let e = err(b"{\"kind\":[],\"id\":\"x\"}\n");
        assert!(e.contains("the field \"kind\" is an array"), "{e}");
        let e = err(b"[\"kind\",\"image\"]\n");
        assert!(e.contains("expected a JSON object") && e.contains("invalid type: sequence"), "{e}");
        let e = err(b"{\"kind\":\"image\",\"id\":\"\xff\"}\n");
        assert!(e.contains("not JSON") && e.contains("byte 22 of the line"), "{e}");
        let e = err(b"{\"kind\":\"image\",\"id\":\"a\0b\"}\n");
        assert!(e.contains("control character"), "{e}");
        let e = err(b"{\"kind\":\"image\",\"id\":\"abc");
        assert!(e.contains("EOF while parsing"), "{e}");
    }

    #[test]
    fn table_aligns() {
        let mut out = Vec::new();
        write_table(&mut out, &["A", "BBBBBBBBBBB", "C"], vec![vec!["xxx".into(), "y".into(), "z".into()]]).unwrap();
        // docker's: a column is its widest cell + 3, at least 10; the last is not padded.
        assert_eq!(String::from_utf8(out).unwrap(), "A         BBBBBBBBBBB   C\nxxx       y             z\n");
    }
}

/// "an image", "a container".
pub fn with_article(noun: &str) -> String {
    let vowel = noun.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {noun}", if vowel { "an" } else { "a" })
}

/// Sizes as docker prints them: decimal units, three significant digits
/// (`4.26MB`, `947kB`, `12B`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    let digits: String = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let trimmed = if digits.contains('.') { digits.trim_end_matches('0').trim_end_matches('.').to_string() } else { digits };
    format!("{trimmed}{}", UNITS[u])
}

/// "3 minutes ago", "2 days ago", as docker's CREATED column.
pub fn ago(rfc3339: &str) -> String {
    let Ok(t) = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339) else {
        return "N/A".into();
    };
    let secs = (time::OffsetDateTime::now_utc() - t).whole_seconds();
    format!("{} ago", human_duration(secs.max(0) as u64))
}

/// Durations as docker words them ("Less than a second", "About a minute", "3 hours").
pub fn human_duration(secs: u64) -> String {
    let (m, h, d) = (60, 3600, 86400);
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < m => format!("{s} seconds"),
        s if s < 2 * m => "About a minute".into(),
        s if s < h => format!("{} minutes", s / m),
        s if s < 2 * h => "About an hour".into(),
        s if s < 2 * d => format!("{} hours", s / h),
        s if s < 14 * d => format!("{} days", s / d),
        s if s < 60 * d => format!("{} weeks", s / (7 * d)),
        s if s < 730 * d => format!("{} months", s / (30 * d)),
        s => format!("{} years", s / (365 * d)),
    }
}

#[cfg(test)]
mod human_tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(12), "12B");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(human_size(947_000), "947kB");
        assert_eq!(human_size(1_000_000), "1MB");
        assert_eq!(human_size(12_300_000), "12.3MB");
    }
}
