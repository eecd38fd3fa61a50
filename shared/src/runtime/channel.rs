//! The parent↔child handshake: typed messages over a `SOCK_SEQPACKET`
//! socketpair (one datagram per message, JSON-encoded), with file
//! descriptors passed alongside (`SCM_RIGHTS`) for the pty master.
//!
//! The child reports each milestone and, if a step fails, the error text
//! itself ("mount /proc: Operation not permitted"), so the user never sees
//! a bare "child exited 1". The socket is close-on-exec: the parent reading
//! end-of-file right after [`FromChild::Exec`] means the execve succeeded.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use super::user::ExecUser;
use crate::error::{Error, Result};

/// What the parent tells the child.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild {
    /// The child is in its cgroup (and anything else the parent had to do
    /// from outside is done): go on to the cgroup namespace and the exec.
    Go,
}

/// What the child tells the parent.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromChild {
    /// The pty master (as the attached fd): the parent copies between it and the user's terminal.
    Pty,
    /// Who the process will run as, resolved in the container's own /etc/passwd.
    User(ExecUser),
    /// Everything is set up; execve comes next.
    Exec { path: String },
    /// A step failed: the message for the user and the exit status ci-run should use.
    Failed { message: String, code: i32 },
}

pub struct Channel {
    fd: OwnedFd,
}

const MAX_MSG: usize = 64 * 1024;

impl Channel {
    /// A connected pair (parent end, child end), both close-on-exec.
    pub fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = socket::socketpair(socket::AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(|e| Error::io("socketpair", "(parent-child channel)", e.into()))?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    /// A channel over a socket inherited from another process (fd 3 of
    /// `ci-run __start`, see [`super::starter`]).
    pub fn from_fd(fd: OwnedFd) -> Channel {
        Channel { fd }
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The pid of the process that made the other end (SO_PEERCRED: the
    /// credentials of the socketpair's creator, fixed at creation).
    pub fn peer_pid(&self) -> Result<i32> {
        socket::getsockopt(&self.fd, socket::sockopt::PeerCredentials)
            .map(|c| c.pid())
            .map_err(|e| Error::io("getsockopt SO_PEERCRED", "(the report socket)", e.into()))
    }

    pub fn send<T: Serialize>(&self, msg: &T, fd: Option<RawFd>) -> Result<()> {
        let data = serde_json::to_vec(msg).expect("messages serialise");
        let iov = [IoSlice::new(&data)];
        let fds;
        let cmsgs: Vec<ControlMessage> = match fd {
            Some(f) => {
                fds = [f];
                vec![ControlMessage::ScmRights(&fds)]
            }
            None => vec![],
        };
        socket::sendmsg::<()>(self.fd.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None)
            .map_err(|e| Error::io("send on", "(parent-child channel)", e.into()))?;
        Ok(())
    }

    /// The next message and the fd sent with it; `None` at end of file (the
    /// other side exec'd or exited).
    pub fn recv<T: for<'de> Deserialize<'de>>(&self) -> Result<Option<(T, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MSG];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let (n, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match socket::recvmsg::<()>(self.fd.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
                Ok(m) => {
                    let mut fd = None;
                    for c in m.cmsgs().map_err(|e| Error::io("recvmsg", "(parent-child channel)", e.into()))? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for f in fds {
                                // SAFETY: the kernel installed these descriptors for us.
                                let owned = unsafe { OwnedFd::from_raw_fd(f) };
                                fd.get_or_insert(owned);
                            }
                        }
                    }
                    break (m.bytes, fd);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                // The other side closed while a message of ours was still unread
                // (the child failed before reading "go"). The kernel reports that
                // once, before the messages still queued for us: read on.
                Err(nix::errno::Errno::ECONNRESET) => continue,
                Err(e) => return Err(Error::io("recvmsg", "(parent-child channel)", e.into())),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&buf[..n])
            .map_err(|e| Error::Corrupt(format!("parent-child channel: unreadable message ({e})")))?;
        Ok(Some((msg, fd)))
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_survives_the_peer_closing_with_our_message_unread() {
        let (parent, child) = Channel::pair().unwrap();
        parent.send(&ToChild::Go, None).unwrap();
        child.send(&FromChild::Failed { message: "mount /proc: EPERM".into(), code: 125 }, None).unwrap();
        drop(child); // "go" was never read: the kernel flags ECONNRESET on our side
        match parent.recv::<FromChild>().unwrap() {
            Some((FromChild::Failed { message, code }, _)) => assert_eq!((message.as_str(), code), ("mount /proc: EPERM", 125)),
            other => panic!("expected the child's report, got {other:?}"),
        }
        assert!(parent.recv::<FromChild>().unwrap().is_none());
    }
}
