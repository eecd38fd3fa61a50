use ci_core::cli::GlobalOpts;
use ci_core::object::expand_one;
use ci_core::runtime::names;
use ci_core::Result;

/// Rename a container
///
/// Names are unique in the store; a running container can be renamed.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ci-run rename brave_turing web")]
pub struct Args {
    /// The container (id, id prefix, name, or - for a container object on stdin)
    #[arg(value_name = "CONTAINER")]
    container: String,
    /// Its new name: letters, digits, '_', '.' and '-', starting with a letter or digit
    #[arg(value_name = "NEW_NAME")]
    new_name: String,
}

pub fn run(g: &GlobalOpts, a: Args) -> Result<i32> {
    let store = g.store()?;
    let name = expand_one(&a.container, "container", "rename")?;
    let mut c = names::resolve(&store, &name)?;
    names::rename(&store, &mut c, &a.new_name)?;
    crate::each::print(g, &store, &a.new_name, c)?;
    Ok(0)
}
