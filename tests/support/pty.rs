//! A real terminal for the end-to-end suites: a pty of the test's own
//! whose slave is a tool's controlling terminal and some of its standard
//! streams (the others are pipes the session collects). What the tool
//! writes to the terminal is kept as bytes and fed to a VT100 emulator, so
//! a test can check both the escape sequences sent and the screen a person
//! would see once they are applied.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A standard stream of the tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdin,
    Stdout,
    Stderr,
}

/// All three on the terminal, as in an interactive shell.
pub const ALL: &[Stream] = &[Stream::Stdin, Stream::Stdout, Stream::Stderr];

/// A tool running on a pty.
pub struct Session {
    pub master: File,
    child: Child,
    raw: Vec<u8>,
    screen: vt100::Parser,
    deadline: Instant,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

/// How the tool ended, and what it wrote to the streams that were pipes.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Session {
    /// Spawn `cmd` on a new pty of `rows` x `cols`, its controlling terminal
    /// (in a session of its own, its process group in the foreground, so
    /// Ctrl-C typed on the master is its SIGINT). The streams in `on` are
    /// the terminal; stdout and stderr otherwise are pipes, stdin is null.
    /// Everything is bounded: 60 s from the start, then a waiting call fails.
    pub fn spawn(mut cmd: Command, (rows, cols): (u16, u16), on: &[Stream]) -> Session {
        use std::os::unix::process::CommandExt;
        let ws = nix::pty::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        let pty = nix::pty::openpty(Some(&ws), None).expect("openpty");
        let slave = File::from(pty.slave);
        let end = |s: Stream, other: fn() -> Stdio| if on.contains(&s) { Stdio::from(slave.try_clone().expect("dup the pty slave")) } else { other() };
        cmd.stdin(end(Stream::Stdin, Stdio::null)).stdout(end(Stream::Stdout, Stdio::piped)).stderr(end(Stream::Stderr, Stdio::piped));
        let s = slave.as_raw_fd();
        // SAFETY: setsid and ioctl between fork and exec; our pty becomes the child's controlling terminal.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 || libc::ioctl(s, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?} on a pty: {e}"));
        drop(slave);
        let collect = |r: Option<Box<dyn Read + Send>>| {
            r.map(|mut r| {
                std::thread::spawn(move || {
                    let mut v = Vec::new();
                    let _ = r.read_to_end(&mut v);
                    v
                })
            })
        };
        let stdout = collect(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
        let stderr = collect(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
        Session {
            master: File::from(pty.master),
            child,
            raw: Vec::new(),
            screen: vt100::Parser::new(nz(rows), nz(cols), 0),
            deadline: Instant::now() + Duration::from_secs(60),
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Read what the tool wrote for up to `wait`; false once the terminal is closed.
    fn pump(&mut self, wait: Duration) -> bool {
        let mut fds = [nix::poll::PollFd::new(self.master.as_fd(), nix::poll::PollFlags::POLLIN)];
        let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)).unwrap_or(0) == 0 {
            return true;
        }
        let mut buf = [0u8; 16384];
        match self.master.read(&mut buf) {
            // EIO: every slave descriptor is closed.
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                self.screen.process(&buf[..n]);
                true
            }
        }
    }

    /// Read the terminal until `want` has appeared in the bytes written to it (bounded).
    pub fn wait_for(&mut self, want: &str) {
        self.wait_until(&format!("{want:?}"), |s| s.seen().contains(want));
    }

    /// Read the terminal until `done` holds (bounded); `what` names it in the failure.
    pub fn wait_until(&mut self, what: &str, done: impl Fn(&Session) -> bool) {
        while !done(self) {
            assert!(Instant::now() < self.deadline, "waiting for {what}; the terminal showed {:?}", self.seen());
            assert!(self.pump(Duration::from_millis(100)), "the terminal closed before {what}; it showed {:?}", self.seen());
        }
    }

    /// Everything written to the terminal so far, escapes included (lossy UTF-8).
    pub fn seen(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The screen as a person sees it now: one string per row, trailing blanks removed.
    pub fn screen(&self) -> Vec<String> {
        let (_, cols) = self.screen.screen().size();
        self.screen.screen().rows(0, cols.get()).map(|r| r.trim_end().to_string()).collect()
    }

    /// Whether row `i` of the screen runs on into the next (it was wider than the terminal).
    pub fn wrapped(&self, i: usize) -> bool {
        u16::try_from(i).is_ok_and(|i| self.screen.screen().row_wrapped(i))
    }

    /// Type on the terminal.
    pub fn type_keys(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("write to the pty master");
    }

    /// Change the window size (the tool gets SIGWINCH).
    pub fn resize(&mut self, rows: u16, cols: u16) {
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ with a valid winsize on our master.
        assert_eq!(unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) }, 0, "TIOCSWINSZ");
        self.screen.set_size(nz(rows), nz(cols));
    }

    /// Whether the tool has exited (it is reaped then).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait for the tool")
    }

    /// Wait for the tool to exit (bounded), reading the terminal meanwhile so
    /// it never blocks on a full pty; then the rest of what it wrote.
    pub fn finish(&mut self) -> Finished {
        let status = loop {
            if let Some(s) = self.exited() {
                break s;
            }
            assert!(Instant::now() < self.deadline, "{:?} did not exit; the terminal showed {:?}", self.child, self.seen());
            if !self.pump(Duration::from_millis(50)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        // What is left in the pty (a process the tool left behind may hold the slave: do not wait for EOF).
        while self.pump(Duration::from_millis(100)) && self.pending() {}
        let join = |h: Option<JoinHandle<Vec<u8>>>| h.map(|h| h.join().expect("pipe reader")).unwrap_or_default();
        Finished { status, stdout: join(self.stdout.take()), stderr: join(self.stderr.take()) }
    }

    /// Whether the master has bytes to read right now.
    fn pending(&self) -> bool {
        let mut fds = [nix::poll::PollFd::new(self.master.as_fd(), nix::poll::PollFlags::POLLIN)];
        nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).unwrap_or(0) > 0
            && fds[0].revents().is_some_and(|r| r.contains(nix::poll::PollFlags::POLLIN))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn nz(n: u16) -> std::num::NonZeroU16 {
    std::num::NonZeroU16::new(n).expect("a terminal has at least one row and column")
}

/// Whether `bytes` hold a terminal control sequence or a carriage return
/// (what a log must not get).
pub fn has_terminal_controls(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| *b == 0x1b || *b == b'\r')
}
