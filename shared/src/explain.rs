//! `--explain`: print each kernel or store step to stderr as it happens,
//! with the shell command that does the same thing where one exists, so a
//! learner can read a run as the recipe of a container.

use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turn explanations on for this process (the tools call it from `--explain`).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Print one step: what happens and, if there is one, the equivalent command.
pub fn step(what: &str, shell: Option<&str>) {
    if !enabled() {
        return;
    }
    match shell {
        Some(cmd) => eprintln!("+ {what}\n    $ {cmd}"),
        None => eprintln!("+ {what}"),
    }
}

/// `explain!("mounted {x}")` or `explain!("mount overlay"; "mount -t overlay ...")`.
#[macro_export]
macro_rules! explain {
    ($what:expr; $shell:expr) => {
        if $crate::explain::enabled() {
            $crate::explain::step(&$what, Some(&$shell));
        }
    };
    ($($arg:tt)*) => {
        if $crate::explain::enabled() {
            $crate::explain::step(&format!($($arg)*), None);
        }
    };
}
