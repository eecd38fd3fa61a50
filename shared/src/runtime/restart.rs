//! Restart policies (`--restart`): what a container's monitor does when the
//! command exits, with docker's rules and back-off.
//!
//! | policy            | restarts when the command exits…                          |
//! |-------------------|-----------------------------------------------------------|
//! | `no` (default)    | never                                                     |
//! | `on-failure[:N]`  | with a non-zero status, at most N times (no N: no limit)  |
//! | `always`          | whatever the status                                       |
//! | `unless-stopped`  | whatever the status                                       |
//!
//! A manual `ci-run stop` (or `kill` with SIGKILL or the stop signal) is
//! never undone: the monitor that applies the policy is the one that
//! carries out the stop, so it knows (docker's `HasBeenManuallyStopped`).
//! `always` and `unless-stopped` differ in docker only when the daemon
//! starts again after a reboot; there is no daemon here, so nothing is
//! restarted at boot and the two behave the same (see ci-containers(7)).
//!
//! Back-off (moby `restartmanager`): the first restart waits 100 ms, each
//! following one twice as long as the one before, at most one minute; a run
//! that lasted 10 seconds or more resets the delay to 100 ms.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `--restart NAME[:MAX]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    OnFailure {
        /// 0: no limit.
        #[serde(default)]
        maximum_retry_count: u32,
    },
    Always,
    UnlessStopped,
}

impl RestartPolicy {
    /// docker's syntax: `no`, `on-failure`, `on-failure:3`, `always`, `unless-stopped`.
    pub fn parse(s: &str) -> Result<RestartPolicy> {
        let (name, max) = match s.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (s, None),
        };
        let bad_max = |m: &str| Error::invalid(format!("--restart {s:?}: the maximum retry count {m:?} is not a number of restarts (0 or more)"));
        match (name, max) {
            ("no", None) | ("", None) => Ok(RestartPolicy::No),
            ("always", None) => Ok(RestartPolicy::Always),
            ("unless-stopped", None) => Ok(RestartPolicy::UnlessStopped),
            ("on-failure", None) => Ok(RestartPolicy::OnFailure { maximum_retry_count: 0 }),
            ("on-failure", Some(m)) => Ok(RestartPolicy::OnFailure { maximum_retry_count: m.parse().map_err(|_| bad_max(m))? }),
            ("no" | "always" | "unless-stopped", Some(_)) => {
                Err(Error::invalid(format!("--restart {s:?}: only on-failure takes a maximum retry count")))
            }
            _ => Err(Error::invalid(format!("--restart {s:?}: unknown policy")).hint("use no, on-failure[:MAX], always or unless-stopped")),
        }
    }

    pub fn is_no(&self) -> bool {
        *self == RestartPolicy::No
    }

    /// Should a container that exited with `code` (`None`: it never
    /// started, or the status is unknown) and has been restarted
    /// `restarts` times so far start again?
    pub fn should_restart(&self, code: Option<i32>, restarts: u32, manually_stopped: bool) -> bool {
        if manually_stopped {
            return false;
        }
        match *self {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure { maximum_retry_count: max } => code != Some(0) && (max == 0 || restarts < max),
        }
    }
}

impl std::fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::OnFailure { maximum_retry_count: 0 } => f.write_str("on-failure"),
            RestartPolicy::OnFailure { maximum_retry_count: n } => write!(f, "on-failure:{n}"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

/// docker's delay between restarts.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    delay: Duration,
}

const FIRST: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(60);
/// A run at least this long counts as a success: the delay starts over.
const RESET_AFTER: Duration = Duration::from_secs(10);

impl Backoff {
    /// The wait before the next start, after a run that lasted `ran`.
    pub fn next(&mut self, ran: Duration) -> Duration {
        if ran >= RESET_AFTER || self.delay.is_zero() {
            self.delay = FIRST;
        } else {
            self.delay = (self.delay * 2).min(MAX);
        }
        self.delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_docker_syntax() {
        assert_eq!(RestartPolicy::parse("no").unwrap(), RestartPolicy::No);
        assert_eq!(RestartPolicy::parse("on-failure:2").unwrap(), RestartPolicy::OnFailure { maximum_retry_count: 2 });
        assert_eq!(RestartPolicy::parse("on-failure").unwrap(), RestartPolicy::OnFailure { maximum_retry_count: 0 });
        assert_eq!(RestartPolicy::parse("always").unwrap(), RestartPolicy::Always);
        assert_eq!(RestartPolicy::parse("unless-stopped").unwrap(), RestartPolicy::UnlessStopped);
        for bad in ["sometimes", "always:3", "on-failure:-1", "on-failure:x"] {
            assert!(RestartPolicy::parse(bad).is_err(), "{bad}");
        }
        for p in ["no", "on-failure", "on-failure:5", "always", "unless-stopped"] {
            assert_eq!(RestartPolicy::parse(p).unwrap().to_string(), p);
        }
        let json = serde_json::to_string(&RestartPolicy::OnFailure { maximum_retry_count: 2 }).unwrap();
        assert_eq!(json, r#"{"name":"on-failure","maximum_retry_count":2}"#);
        assert_eq!(serde_json::from_str::<RestartPolicy>(&json).unwrap(), RestartPolicy::OnFailure { maximum_retry_count: 2 });
    }

    #[test]
    fn decisions() {
        let of2 = RestartPolicy::OnFailure { maximum_retry_count: 2 };
        assert!(of2.should_restart(Some(1), 0, false));
        assert!(of2.should_restart(Some(1), 1, false));
        assert!(!of2.should_restart(Some(1), 2, false), "exactly two restarts");
        assert!(!of2.should_restart(Some(0), 0, false));
        assert!(of2.should_restart(None, 0, false), "a failed start is a failure");
        assert!(RestartPolicy::OnFailure { maximum_retry_count: 0 }.should_restart(Some(3), 1000, false));
        assert!(RestartPolicy::Always.should_restart(Some(0), 1000, false));
        assert!(!RestartPolicy::Always.should_restart(Some(0), 0, true), "a manual stop is never undone");
        assert!(!RestartPolicy::UnlessStopped.should_restart(Some(1), 0, true));
        assert!(!RestartPolicy::No.should_restart(Some(1), 0, false));
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(5);
        let delays: Vec<u128> = (0..5).map(|_| b.next(quick).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600]);
        for _ in 0..20 {
            b.next(quick);
        }
        assert_eq!(b.next(quick), MAX);
        assert_eq!(b.next(Duration::from_secs(10)), FIRST);
    }
}
