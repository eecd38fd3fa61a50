//! ci-run: containers. `ci-run IMAGE [COMMAND [ARG...]]` runs a command
//! from an image in its own root filesystem, namespaces and cgroup, in the
//! foreground, with docker's semantics. Each verb is one file; `run` is
//! also the verb-less form.

mod run;

use clap::{Parser, Subcommand};
use ci_core::cli::GlobalOpts;
use ci_core::Result;

/// Run a command in a new container, from an image in the store
///
/// A container is an ordinary process that the kernel shows its own view
/// of the machine: its own root filesystem (the image's layers stacked
/// with overlayfs under a private writable layer), its own process tree,
/// hostname, IPC, network (loopback only unless --network host) and
/// cgroup namespaces, a reduced set of capabilities, and a seccomp filter
/// that refuses the system calls a container should not make.
///
/// `ci-run IMAGE CMD` and `ci-run run IMAGE CMD` are the same; the second
/// spelling is for an image whose name is a verb. The exit status is the
/// command's (128+N when a signal N killed it); 125 means ci-run itself
/// failed, 126 that the command cannot be executed, 127 that it was not
/// found. --explain prints each kernel step as it happens, with the shell
/// command that does the same: the recipe of a container.
#[derive(Debug, Parser)]
#[command(
    name = "ci-run",
    version,
    about,
    long_about,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    disable_help_flag = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    /// Print help (-h is --hostname, as in docker)
    #[arg(long, action = clap::ArgAction::Help, global = true)]
    help: Option<bool>,
    #[command(subcommand)]
    pub verb: Option<Verb>,
    #[command(flatten)]
    pub run: run::Args,
}

const EXAMPLES: &str = "Examples:
  ci-run bb:1 echo hello                      run a command, print its output, exit with its status
  ci-run -it bb:1 sh                          an interactive shell on a terminal (exit or Ctrl-D to leave)
  ci-run --rm --name web -e PORT=80 bb:1 env  a named container, removed when it exits
  ci-run -u 1000:1000 -w /tmp bb:1 id         another user and working directory
  ci-run --read-only --cap-drop ALL bb:1 sh -c 'touch /x || echo read-only'
  ci-run --memory 64m --pids-limit 50 bb:1 sh resource limits from the container's cgroup
  ci-run --explain --rm bb:1 true             every namespace, mount and syscall filter, as shell commands
  ci-build import - < rootfs.tar | ci-run --rm - ls /    an image object from stdin
  ci-run --rootfs ./rootfs sh                 a root filesystem directory instead of an image";

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Run a command in a new container (the same as the verb-less form)
    Run(run::Args),
}

pub fn run(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match cli.verb {
        Some(Verb::Run(a)) => run::run(g, a),
        None => run::run(g, cli.run),
    }
}

pub fn main() {
    let cli = Cli::parse();
    ci_core::cli::exit_with("ci-run", 125, run(cli))
}
