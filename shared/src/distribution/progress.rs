//! Progress of transfers on stderr: one bar per blob on a terminal
//! (indicatif), one plain line per finished blob when stderr is piped or
//! `--explain` is on, so logs stay readable.

use std::io::{IsTerminal, Read};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::object::human_size;

pub struct Progress {
    tool: &'static str,
    bars: Option<MultiProgress>,
    quiet: bool,
}

/// One blob being moved.
pub struct Task {
    tool: &'static str,
    label: String,
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    /// Bars if stderr is a terminal (and `--explain` is off), else plain lines.
    pub fn new(tool: &'static str) -> Progress {
        let bars = (std::io::stderr().is_terminal() && !crate::explain::enabled())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8)));
        Progress { tool, bars, quiet: false }
    }

    /// No output at all (library use, tests of the core).
    pub fn silent() -> Progress {
        Progress { tool: "", bars: None, quiet: true }
    }

    pub fn task(&self, label: &str, size: Option<u64>) -> Task {
        let bar = self.bars.as_ref().map(|m| {
            let b = m.add(match size {
                Some(s) => ProgressBar::new(s),
                None => ProgressBar::no_length(),
            });
            b.set_style(
                // The bar takes what the terminal's width leaves: a row that wrapped would
                // take two lines per blob. Fixed widths, so it does not jitter.
                ProgressStyle::with_template("{prefix:.bold} {msg:13} [{wide_bar}] {binary_bytes:>10}/{binary_total_bytes:<10} {binary_bytes_per_sec:>12}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b.set_prefix(label.to_string());
            b.enable_steady_tick(Duration::from_millis(250));
            b
        });
        Task { tool: self.tool, label: label.to_string(), bar, quiet: self.quiet }
    }

    /// A line that is not about one blob.
    pub fn note(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.bars {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => eprintln!("{}: {msg}", self.tool),
        }
    }
}

impl Task {
    pub fn set_message(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_string());
        }
    }
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }
    /// The blob is done: `what` happened to it (`downloaded`, `exists`, `mounted from x`).
    pub fn finish(&self, what: &str, size: Option<u64>) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => {
                b.set_message(what.to_string());
                b.finish();
            }
            None => match size {
                Some(s) => eprintln!("{}: {} {what} ({})", self.tool, self.label, human_size(s)),
                None => eprintln!("{}: {} {what}", self.tool, self.label),
            },
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            if !b.is_finished() {
                b.abandon();
            }
        }
    }
}

/// A reader that advances a task's bar.
pub struct Counting<'t, R> {
    pub inner: R,
    pub task: &'t Task,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.task.inc(n as u64);
        Ok(n)
    }
}
