use std::io::{BufRead, IsTerminal, Write};

use ci_core::cli::GlobalOpts;
use ci_core::distribution::credentials::Credentials;
use ci_core::distribution::transfer::{login, registry_host};
use ci_core::object::emit_json;
use ci_core::{Error, Result};

/// Log in to a registry: check the credentials, then keep them in docker's config.json (or its credential helper)
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ci-push login -u alice localhost:5000               asks for the password on a terminal
  echo \"$TOKEN\" | ci-push login -u ci --password-stdin registry.example:5000
  DOCKER_CONFIG=/tmp/cfg ci-push login -u bob --password-stdin localhost:5000 < pw.txt")]
pub struct Args {
    /// User name (asked for on a terminal if not given)
    #[arg(short, long)]
    username: Option<String>,
    /// Read the password from stdin (one line)
    #[arg(long)]
    password_stdin: bool,
    /// Allow plain HTTP and unverified TLS certificates for this registry
    #[arg(long)]
    insecure: bool,
    /// Use the certificates in DIR instead of /etc/docker/certs.d/HOST:PORT
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<std::path::PathBuf>,
    /// The registry: HOST[:PORT]
    #[arg(value_name = "REGISTRY")]
    registry: String,
}

fn read_line(what: &str) -> Result<String> {
    let mut s = String::new();
    std::io::stdin().lock().read_line(&mut s).map_err(|e| Error::io("read", what, e))?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

/// Ask on the terminal, without echo for secrets.
fn prompt(label: &str, secret: bool) -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::invalid(format!("no terminal to ask for the {label}")).hint("give -u USER and pipe the password with --password-stdin"));
    }
    eprint!("{label}: ");
    let _ = std::io::stderr().flush();
    if !secret {
        return read_line(label);
    }
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let saved = tcgetattr(&stdin).map_err(|e| Error::io("tcgetattr", "stdin", e.into()))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(|e| Error::io("tcsetattr", "stdin", e.into()))?;
    let line = read_line(label);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    line
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    ci_core::explain::enable(g.explain);
    let host = registry_host(&a.registry)?;
    let username = match a.username {
        Some(u) => u,
        None => prompt("Username", false)?,
    };
    let secret = if a.password_stdin { read_line("stdin")? } else { prompt("Password", true)? };
    if username.is_empty() || secret.is_empty() {
        return Err(Error::invalid("a user name and a password are both needed"));
    }
    let client = ci_core::distribution::client::ClientOptions { insecure: a.insecure, cert_dir: a.cert_dir };
    let done = login(&host, Credentials { username, secret, identity_token: false }, &client)?;
    emit_json(&mut std::io::stdout().lock(), &done)?;
    Ok(0)
}
