//! ci-run: containers. `ci-run IMAGE [COMMAND [ARG...]]` runs a command
//! from an image in its own root filesystem, namespaces and cgroup, in the
//! foreground (or under a monitor with `-d`), with docker's semantics. Each
//! verb is one file; `run` is also the verb-less form.

mod each;
mod exec;
mod inspect;
mod kill;
mod logs;
mod prune;
mod ps;
mod rename;
mod restart;
mod rm;
mod run;
mod start;
mod stats;
mod stop;
mod top;
mod wait;

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
///
/// With -d the container runs detached, watched by a small monitor process
/// of its own (no daemon): it keeps the container's output in a log
/// (`ci-run logs`), records how it ends, and applies --restart. The verbs
/// (ps, logs, exec, stop, kill, start, restart, wait, rm, rename, prune,
/// top, inspect, stats) name containers by id, unique id prefix or name,
/// and `-` reads container objects from stdin.
///
/// State: ROOT/containers/ID/ holds a container's record (container.json),
/// its OCI spec (config.json), its log (json.log) and its writable layer;
/// /run/ci/H/ID/ holds what dies with the machine (state.json: the pid of
/// its PID 1 and of its monitor; monitor.sock). `ci-run inspect` shows
/// both places; ci-containers(7) explains them, and what happens when a
/// monitor is killed or the machine restarts.
///
/// Exit status of the other verbs: 0, or 1 when any container named could
/// not be acted on (not found, not running for stop/kill, running for rm
/// without -f); exec passes its command's status through like run (125:
/// ci-run failed, for instance the container is not running).
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
  ci-run -it bb:1 sh                          an interactive shell on a terminal (Ctrl-D leaves)
  ci-run --rm --name web -e PORT=80 bb:1 env  a named container, removed when it exits
  ci-run --rm --env-file ./app.env bb:1 env   variables from a file (KEY=VALUE lines, # comments)
  ci-run -u 1000:1000 -w /tmp bb:1 id         another user and working directory
  ci-run --rm -u 1000 --group-add 10 bb:1 id  an extra group (a gid, or a name from the image)
  ci-run --rm -h box1 bb:1 hostname           the hostname (default: the first 12 digits of the id)
  ci-run --rm --entrypoint /bin/ls bb:1 -l /  instead of the image's ENTRYPOINT (CMD is dropped)
  ci-run --rm --network host bb:1 ip link     the host's network (default none: loopback only)
  ci-run --name job -l team=infra bb:1 true   a label, to select by:
  ci-run ps -a --filter label=team=infra
  ci-run --read-only --cap-drop ALL bb:1 sh -c 'touch /x || echo read-only'
                                              a read-only root, no capabilities
  ci-run --rm --cap-drop ALL --cap-add CHOWN bb:1 chown 1:1 /tmp
                                              only the capability the command needs
  ci-run --rm --cap-add NET_ADMIN bb:1 ip link set lo mtu 1280   one more than docker's default set
  ci-run --rm --privileged bb:1 mount -t tmpfs none /tmp   all capabilities and devices, no seccomp
  ci-run --rm --security-opt seccomp=unconfined bb:1 unshare -U id -u   no system call filter
  ci-run --rm --memory 64m bb:1 sh -c 'head -c 100m /dev/zero | tail'
                                              killed at 64 MiB: exit status 137
  ci-run --rm -m 64m --memory-swap 128m bb:1 cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes
                                              64 MiB of memory and 64 MiB of swap (v1 file shown)
  ci-run --rm --cpus 0.5 bb:1 sh -c 'time timeout 2 yes > /dev/null'
                                              half a CPU: at most ~1 s of CPU time in 2 s
  ci-run -d -c 256 bb:1 sh -c 'while :; do :; done'  a quarter of the default weight (1024) when CPUs are busy
  ci-run --rm --pids-limit 10 bb:1 sh -c 'for i in $(seq 20); do sleep 1 & done; wait'
                                              \"can't fork\" past 10 processes
  ci-run --rm --device /dev/fuse bb:1 ls -l /dev/fuse
                                              a host device, let through the devices cgroup
  ci-run -d --name svc --stop-signal QUIT bb:1 sh -c \"trap 'exit 0' QUIT; while sleep 1; do :; done\"
  ci-run stop svc                             sends it QUIT (then KILL after 10 s)
  ci-run --explain --rm bb:1 true             every namespace, mount and filter, as shell commands
  ci-build import - < rootfs.tar | ci-run --rm - ls /   an image object from stdin
  ci-run --rootfs ./rootfs sh                 a root filesystem directory instead of an image
  ci-run -d --name web --restart on-failure:3 bb:1 httpd -f   detached, under its monitor
  ci-run ps -a                                every container and how it ended
  ci-run logs -f web                          its output, following it across restarts
  ci-run exec -it web sh                      a shell inside the running container
  ci-run stop web && ci-run rm web            stop (TERM, KILL after 10 s), then remove
  ci-run ps -a --filter status=exited | ci-run rm -   container objects on stdin";

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Run a command in a new container (the same as the verb-less form)
    Run(Box<run::Args>),
    // The other verbs: their Args structs carry the description (one file each).
    #[command(visible_alias = "ls")]
    Ps(ps::Args),
    Logs(logs::Args),
    Exec(exec::Args),
    Stop(stop::Args),
    Kill(kill::Args),
    Start(start::Args),
    Restart(restart::Args),
    Wait(wait::Args),
    #[command(visible_alias = "remove")]
    Rm(rm::Args),
    Rename(rename::Args),
    Prune(prune::Args),
    Top(top::Args),
    Inspect(inspect::Args),
    Stats(stats::Args),
}

pub fn run(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match cli.verb {
        Some(Verb::Run(a)) => run::run(g, *a),
        None => run::run(g, cli.run),
        Some(Verb::Ps(a)) => ps::run(g, a),
        Some(Verb::Logs(a)) => logs::run(g, a),
        Some(Verb::Exec(a)) => exec::run(g, a),
        Some(Verb::Stop(a)) => stop::run(g, a),
        Some(Verb::Kill(a)) => kill::run(g, a),
        Some(Verb::Start(a)) => start::run(g, a),
        Some(Verb::Restart(a)) => restart::run(g, a),
        Some(Verb::Wait(a)) => wait::run(g, a),
        Some(Verb::Rm(a)) => rm::run(g, a),
        Some(Verb::Rename(a)) => rename::run(g, a),
        Some(Verb::Prune(a)) => prune::run(g, a),
        Some(Verb::Top(a)) => top::run(g, a),
        Some(Verb::Inspect(a)) => inspect::run(g, a),
        Some(Verb::Stats(a)) => stats::run(g, a),
    }
}

/// `ci-run --root R --format table ps` is `ci-run ps --root R --format
/// table`: the common options may come before a verb. (The parent command
/// also has the run form's arguments, so clap alone would take any option
/// before `ps` as the start of `ci-run [OPTIONS] IMAGE`.) Only the common
/// options move; after any other option the line is the run form.
pub fn verb_first(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let is_verb = |a: &str| cmd.get_subcommands().any(|s| s.get_name() == a || s.get_all_aliases().any(|x| x == a));
    let mut i = 1;
    while let Some(a) = args.get(i).and_then(|a| a.to_str()) {
        match a {
            "--root" | "--format" => i += 2,
            "--explain" => i += 1,
            _ if a.starts_with("--root=") || a.starts_with("--format=") => i += 1,
            _ => break,
        }
    }
    if i > 1 && args.get(i).and_then(|a| a.to_str()).is_some_and(is_verb) {
        let verb = args.remove(i);
        args.insert(1, verb);
    }
    args
}

pub fn main() {
    // A detached container's monitor (ci-monitor) starts it through this
    // binary: `ci-run __start ROOT ID` (see runtime::starter).
    if let Some(code) = ci_core::runtime::starter::main_if_asked() {
        std::process::exit(code);
    }
    let cli = Cli::parse_from(verb_first(std::env::args_os().collect()));
    // docker: `run` and `exec` fail with 125 (the command's own statuses
    // pass through); the other verbs with 1.
    let failure = match cli.verb {
        None | Some(Verb::Run(_)) | Some(Verb::Exec(_)) => 125,
        _ => 1,
    };
    ci_core::cli::exit_with("ci-run", failure, run(cli))
}

#[cfg(test)]
mod tests {
    use super::verb_first;

    fn v(s: &str) -> Vec<std::ffi::OsString> {
        s.split(' ').map(Into::into).collect()
    }

    #[test]
    fn common_options_may_precede_a_verb() {
        assert_eq!(verb_first(v("ci-run --format table ps -a")), v("ci-run ps --format table -a"));
        assert_eq!(verb_first(v("ci-run --root /r --explain exec c true")), v("ci-run exec --root /r --explain c true"));
        assert_eq!(verb_first(v("ci-run --root=/r ls")), v("ci-run ls --root=/r"));
        // The run form is left alone: an image, or another option first.
        assert_eq!(verb_first(v("ci-run --explain bb:1 ps")), v("ci-run --explain bb:1 ps"));
        assert_eq!(verb_first(v("ci-run --rm ps")), v("ci-run --rm ps"));
        assert_eq!(verb_first(v("ci-run ps -a")), v("ci-run ps -a"));
    }
}
