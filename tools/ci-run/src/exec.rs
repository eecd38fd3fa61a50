use ci_core::cli::GlobalOpts;
use ci_core::error::Error;
use ci_core::object::expand_one;
use ci_core::runtime::{self, exec::ExecOptions, exec::ExecOutcome, names};
use ci_core::Result;

/// Run a command in a running container
///
/// The new process joins every namespace of the container (mount, PID,
/// UTS, IPC, network, cgroup) and its cgroup, with the container's
/// capabilities, seccomp filter and no_new_privs, as the container's user
/// (or -u, looked up in the container's /etc/passwd). Its exit status is
/// ci-run's; 125 means ci-run failed (the container is not running, …),
/// 126 that the command cannot be executed, 127 that it was not found.
/// --explain shows the setns calls and what is joined.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ci-run exec web ls /                 a command; its output and status
  ci-run exec -it web sh               an interactive shell
  ci-run exec -u nobody -w /tmp web id
  ci-run exec -d web sh -c 'sleep 60'  in the background
  ci-run --explain exec web true       the setns steps, as nsenter would do them")]
pub struct Args {
    /// Keep stdin open and connected to the command
    #[arg(short, long)]
    interactive: bool,
    /// Give the command a terminal (a pty of the container's own devpts)
    #[arg(short, long)]
    tty: bool,
    /// Run in the background; print nothing
    #[arg(short, long)]
    detach: bool,
    /// Set an environment variable (KEY=VALUE, or KEY for ci-run's own value)
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// Working directory inside the container (it must exist)
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// User to run as: name, uid, name:group or uid:gid (from the container's files)
    #[arg(short = 'u', long = "user", value_name = "USER[:GROUP]")]
    user: Option<String>,
    /// The container (id, id prefix, name or -), then the command and its arguments
    #[arg(value_name = "CONTAINER COMMAND [ARG...]", trailing_var_arg = true, allow_hyphen_values = true, required = true, num_args = 1..)]
    args: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    // The process that enters the container is a copy of this one: it runs
    // from the read-only copy of the binary (CVE-2019-5736).
    runtime::exe::ensure_protected()?;
    let store = g.store()?;
    let (name, command) = a.args.split_first().ok_or_else(|| Error::invalid("exec needs a container and a command"))?;
    if command.is_empty() {
        return Err(Error::invalid("exec needs a command after the container").hint("ci-run exec CONTAINER COMMAND [ARG...]"));
    }
    let name = expand_one(name, "container", "exec")?;
    let mut c = names::resolve(&store, &name)?;
    let o = ExecOptions {
        command: command.to_vec(),
        env: a.env,
        workdir: a.workdir,
        user: a.user,
        tty: a.tty,
        interactive: a.interactive,
        detach: a.detach,
    };
    match runtime::exec::exec(&store, &mut c, &o)? {
        ExecOutcome::Exited(code) => Ok(code),
        ExecOutcome::Detached(_) => Ok(0),
        ExecOutcome::NotStarted(f) => {
            eprintln!("ci-run: error: {}", f.message);
            Ok(f.code)
        }
    }
}
