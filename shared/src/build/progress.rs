//! What the build shows on stderr while it works.
//!
//! - plain (stderr is not a terminal, or `--progress plain`): one line per
//!   event, numbered per step as buildkit's plain output is, so logs can be
//!   grepped: `#3 [2/4] COPY . /app`, `#3 CACHED`, `#4 0.52 make: ok`,
//!   `#4 DONE 1.3s`;
//! - tty: one line per step, rewritten in place; a running RUN shows its
//!   elapsed time and last output lines below it, which disappear when it
//!   ends. Every line is cut to the terminal's width: redrawing in place
//!   moves the cursor by lines, and a line that wrapped would leave its
//!   first rows behind;
//! - quiet (`-q`): nothing.
//!
//! Every step ends `CACHED` or with its time. A RUN's output is relayed by
//! a small forked process ([`Relay`]) that reads the container's stdout and
//! stderr from a pipe, writes them to a log file (the last lines go into
//! the error when the command fails) and shows them. A process, not a
//! thread: the container engine clones the builder, which must be
//! single-threaded when it does.

use std::io::{IsTerminal, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

use crate::error::{Error, IoContext, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Tty,
    Quiet,
}

impl Mode {
    /// `auto`, `plain`, `tty` (or `quiet` for -q).
    pub fn parse(s: &str) -> Result<Mode> {
        match s {
            "auto" => Ok(if std::io::stderr().is_terminal() { Mode::Tty } else { Mode::Plain }),
            "plain" => Ok(Mode::Plain),
            "tty" => Ok(Mode::Tty),
            "quiet" => Ok(Mode::Quiet),
            other => Err(Error::invalid(format!("--progress {other}: expected auto, plain or tty"))),
        }
    }
}

pub struct Progress {
    pub mode: Mode,
    n: usize,
    current: Option<(String, Instant)>,
}

impl Progress {
    pub fn new(mode: Mode) -> Progress {
        Progress { mode, n: 0, current: None }
    }

    fn out(&self, s: &str) {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(s.as_bytes());
        let _ = e.flush();
    }

    /// A line that is not a step (warnings, the result).
    pub fn note(&self, text: &str) {
        match self.mode {
            Mode::Quiet => {}
            _ => self.out(&format!("{text}\n")),
        }
    }

    /// A step starts.
    pub fn begin(&mut self, label: &str) {
        self.n += 1;
        let label: String = label.lines().next().unwrap_or("").chars().take(200).collect();
        match self.mode {
            Mode::Plain => self.out(&format!("#{} {label}\n", self.n)),
            Mode::Tty => self.out(&format!("\r\x1b[K{}", row(" => ", &label, ""))),
            Mode::Quiet => {}
        }
        self.current = Some((label, Instant::now()));
    }

    /// Something about the running step.
    pub fn info(&self, text: &str) {
        match self.mode {
            Mode::Plain => self.out(&format!("#{} {text}\n", self.n)),
            Mode::Tty | Mode::Quiet => {}
        }
    }

    /// The step was a cache hit.
    pub fn cached(&mut self) {
        let Some((label, _)) = self.current.take() else { return };
        match self.mode {
            Mode::Plain => self.out(&format!("#{} CACHED\n", self.n)),
            Mode::Tty => self.out(&format!("\r\x1b[K{}\n", row(" => CACHED ", &label, ""))),
            Mode::Quiet => {}
        }
    }

    /// The step finished.
    pub fn done(&mut self) {
        let Some((label, t)) = self.current.take() else { return };
        let secs = t.elapsed().as_secs_f64();
        match self.mode {
            Mode::Plain => self.out(&format!("#{} DONE {secs:.1}s\n", self.n)),
            Mode::Tty => self.out(&format!("\r\x1b[K{}\n", row(" => ", &label, &format!("  {secs:.1}s")))),
            Mode::Quiet => {}
        }
    }

    /// The step failed (the error itself is printed by the tool).
    pub fn failed(&mut self) {
        let Some((label, t)) = self.current.take() else { return };
        let secs = t.elapsed().as_secs_f64();
        match self.mode {
            Mode::Plain => self.out(&format!("#{} ERROR after {secs:.1}s\n", self.n)),
            Mode::Tty => self.out(&format!("\r\x1b[K{}\n", row(" => ERROR ", &label, &format!("  {secs:.1}s")))),
            Mode::Quiet => {}
        }
    }

    /// Start relaying a command's output: until [`Relay::finish`], this
    /// process's stdout and stderr go to the relay (and so do those of the
    /// container, which inherits them).
    pub fn relay(&self, log: &Path) -> Result<Relay> {
        let label = self.current.as_ref().map(|(l, _)| l.clone()).unwrap_or_default();
        let started = self.current.as_ref().map(|(_, t)| *t).unwrap_or_else(Instant::now);
        Relay::start(self.mode, self.n, label, started, log)
    }
}

/// The forked process that shows and logs a RUN's output.
pub struct Relay {
    pid: nix::unistd::Pid,
    saved_out: OwnedFd,
    saved_err: OwnedFd,
}

/// How many output lines the tty display keeps under a running step.
const TAIL: usize = 6;

impl Relay {
    fn start(mode: Mode, n: usize, label: String, started: Instant, log: &Path) -> Result<Relay> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags_cloexec()
            .open(log)
            .ctx("create", log)?;
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("create a pipe for", "the step's output")?;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // SAFETY: the builder is single-threaded here (no thread outlives
        // the hashing pool), so the child is a complete, consistent copy.
        match unsafe { nix::unistd::fork() }.ctx("fork", "the output relay")? {
            nix::unistd::ForkResult::Child => {
                drop(w);
                relay_loop(mode, n, &label, started, r, log_file);
                // SAFETY: leave without running the builder's destructors (temp dirs, locks).
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(r);
                drop(log_file);
                let saved_out = nix::unistd::dup(std::io::stdout()).ctx("dup", "stdout")?;
                let saved_err = nix::unistd::dup(std::io::stderr()).ctx("dup", "stderr")?;
                // SAFETY: dup2 onto the standard descriptors, which we own.
                unsafe {
                    libc::dup2(w.as_raw_fd(), 1);
                    libc::dup2(w.as_raw_fd(), 2);
                }
                drop(w);
                Ok(Relay { pid: child, saved_out, saved_err })
            }
        }
    }

    /// Give stdout and stderr back, and wait until every line is shown.
    pub fn finish(self) {
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // SAFETY: restore the descriptors saved in start.
        unsafe {
            libc::dup2(self.saved_out.as_raw_fd(), 1);
            libc::dup2(self.saved_err.as_raw_fd(), 2);
        }
        let _ = nix::sys::wait::waitpid(self.pid, None);
    }
}

trait CloexecExt {
    fn custom_flags_cloexec(&mut self) -> &mut Self;
}

impl CloexecExt for std::fs::OpenOptions {
    fn custom_flags_cloexec(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, libc::O_CLOEXEC)
    }
}

fn relay_loop(mode: Mode, n: usize, label: &str, started: Instant, r: OwnedFd, mut log: std::fs::File) {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let mut err = std::io::stderr().lock();
    let mut buf = vec![0u8; 64 * 1024];
    let mut partial: Vec<u8> = Vec::new();
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut drawn = 0usize; // lines drawn under the header (tty)
    let redraw = |err: &mut std::io::StderrLock, tail: &std::collections::VecDeque<String>, drawn: &mut usize| {
        let mut s = String::new();
        if *drawn > 0 {
            s.push_str(&format!("\x1b[{}A", *drawn));
        }
        s.push_str(&format!("\r\x1b[K{}\n", row(" => ", label, &format!("  {:.1}s", started.elapsed().as_secs_f64()))));
        for l in tail {
            s.push_str(&format!("\x1b[K\x1b[2m{}\x1b[0m\n", row("   │ ", l, "")));
        }
        s.push_str("\x1b[J");
        *drawn = tail.len() + 1;
        let _ = err.write_all(s.as_bytes());
        let _ = err.flush();
    };
    loop {
        let timeout = if mode == Mode::Tty { PollTimeout::from(200u16) } else { PollTimeout::NONE };
        let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(&r), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, timeout) {
            Ok(0) => {
                if mode == Mode::Tty {
                    redraw(&mut err, &tail, &mut drawn);
                }
                continue;
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let k = match nix::unistd::read(&r, &mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        };
        let _ = log.write_all(&buf[..k]);
        partial.extend_from_slice(&buf[..k]);
        while let Some(i) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).replace('\r', "");
            match mode {
                Mode::Plain => {
                    let _ = writeln!(err, "#{n} {:.3} {line}", started.elapsed().as_secs_f64());
                }
                Mode::Tty => {
                    tail.push_back(line);
                    if tail.len() > TAIL {
                        tail.pop_front();
                    }
                    redraw(&mut err, &tail, &mut drawn);
                }
                Mode::Quiet => {}
            }
        }
    }
    if !partial.is_empty() && mode == Mode::Plain {
        let _ = writeln!(err, "#{n} {:.3} {}", started.elapsed().as_secs_f64(), String::from_utf8_lossy(&partial));
    }
    if mode == Mode::Tty && drawn > 0 {
        // Leave the cursor on the step's line, everything under it cleared.
        let _ = write!(err, "\x1b[{drawn}A\r\x1b[J{}", row(" => ", label, ""));
    }
    let _ = err.flush();
}

/// One row of the tty display: `head`, `text` cut to what is left of the
/// terminal's width, `tail`. Escapes and control characters in `text` (a
/// RUN's output, a Dockerfile's line) are dropped: they would move the
/// cursor under the display's feet. The last column stays free, so a full
/// row never leaves the cursor waiting to wrap.
fn row(head: &str, text: &str, tail: &str) -> String {
    fit(columns(), head, text, tail)
}

fn fit(columns: usize, head: &str, text: &str, tail: &str) -> String {
    let clean: String = console::strip_ansi_codes(text).chars().map(|c| if c == '\t' { ' ' } else { c }).filter(|c| !c.is_control()).collect();
    let room = columns.saturating_sub(1 + console::measure_text_width(head) + console::measure_text_width(tail));
    format!("{head}{}{tail}", console::truncate_str(&clean, room, "…"))
}

/// The width of the terminal on stderr; 80 when it is not one (`--progress tty` into a pipe).
fn columns() -> usize {
    console::Term::stderr().size_checked().map(|(_, cols)| usize::from(cols)).filter(|c| *c > 0).unwrap_or(80)
}

/// The last `n` lines of a log file.
pub fn last_lines(log: &Path, n: usize) -> Vec<String> {
    let data = std::fs::read(log).unwrap_or_default();
    let start = data.len().saturating_sub(64 * 1024);
    let text = String::from_utf8_lossy(&data[start..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn rows_fit_the_terminal() {
        assert_eq!(fit(80, " => ", "[1/2] FROM bb:1", "  0.1s"), " => [1/2] FROM bb:1  0.1s");
        let long = format!("[2/2] RUN {}", "x".repeat(200));
        let r = fit(40, " => ", &long, "  12.5s");
        assert_eq!(console::measure_text_width(&r), 39, "{r}");
        assert!(r.starts_with(" => [2/2] RUN xx") && r.ends_with("x…  12.5s"), "{r}");
        // A RUN's colours, tabs and carriage returns never reach the display.
        assert_eq!(fit(80, "   │ ", "\x1b[31mred\x1b[0m\tand\rback\x07", ""), "   │ red andback");
        // Wide characters count double.
        assert_eq!(console::measure_text_width(&fit(10, "", "日本語のテキスト", "")), 9);
    }
}
