//! What every tool shares on its command line (`--root`, `--format`,
//! `--explain`) and how every tool ends (errors on stderr, exit status).

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::error::{Error, ExitClass};
use crate::store::{Store, DEFAULT_ROOT, ROOT_ENV};

/// Output form of stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table on a terminal, JSON lines otherwise.
    Auto,
    /// One JSON object per line (what pipes and Makefiles get).
    Json,
    /// An aligned table for people.
    Table,
}

/// The flags every tool takes.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalOpts {
    /// Root directory of the store (images, layers, containers, volumes)
    #[arg(long, global = true, env = ROOT_ENV, default_value = DEFAULT_ROOT, value_name = "DIR")]
    pub root: PathBuf,

    /// Output form on stdout: auto (a table on a terminal, JSON lines otherwise), json or table
    #[arg(long, global = true, value_enum, default_value_t = Format::Auto, value_name = "FORM")]
    pub format: Format,

    /// Print each step (store, kernel, network) to stderr as it happens, with the equivalent shell command
    #[arg(long, global = true, env = "CIEXPLAIN")]
    pub explain: bool,
}

impl GlobalOpts {
    /// Open the store and switch explanations on if asked.
    pub fn store(&self) -> Result<Store, Error> {
        crate::explain::enable(self.explain);
        Store::open(&self.root)
    }

    /// Whether stdout gets JSON lines (true) or a table (false).
    pub fn json(&self) -> bool {
        match self.format {
            Format::Json => true,
            Format::Table => false,
            Format::Auto => !std::io::stdout().is_terminal(),
        }
    }
}

/// Run a tool's body and exit: `Ok(code)` exits with `code`; an error is
/// printed as `TOOL: error: ...` and exits 2 for bad usage, else
/// `failure_code` (1 for most tools, 125 for ci-run as docker does).
pub fn exit_with(tool: &str, failure_code: i32, result: Result<i32, Error>) -> ! {
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("{tool}: error: {e}");
            let code = match e.exit_class() {
                ExitClass::Usage if failure_code == 1 => 2,
                _ => failure_code,
            };
            std::process::exit(code)
        }
    }
}
