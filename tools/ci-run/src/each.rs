//! What the verbs that take containers share: `-` from stdin, one result
//! per container (a failure is reported and the others go on, as docker
//! does), the exit status, and what to print for each.

use ci_core::cli::GlobalOpts;
use ci_core::object::{emit_json, expand_stdin};
use ci_core::runtime::{names, state, Container};
use ci_core::store::Store;
use ci_core::Result;

/// Resolve the container arguments (`-` reads container objects on stdin).
pub fn containers(store: &Store, args: &[String]) -> Result<Vec<(String, Result<Container>)>> {
    let args = expand_stdin(args, "container")?;
    Ok(names::resolve_all(store, &args))
}

/// Run `act` on each container; print each one acted on (the object when
/// piped, the name as given on a terminal, as docker prints it). Exit
/// status 1 if any failed.
pub fn for_each(g: &GlobalOpts, args: &[String], mut act: impl FnMut(&Store, &mut Container) -> Result<()>) -> Result<i32> {
    let store = g.store()?;
    let mut failed = false;
    for (arg, found) in containers(&store, args)? {
        let done = found.and_then(|mut c| act(&store, &mut c).map(|()| c));
        match done {
            Ok(c) => print(g, &store, &arg, c)?,
            Err(e) => {
                eprintln!("ci-run: error: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// The container object (JSON), or the name as given.
pub fn print(g: &GlobalOpts, store: &Store, arg: &str, mut c: Container) -> Result<()> {
    if g.json() {
        // Removed by the verb itself (rm, or its own --rm): print what it was.
        let seen = match state::refresh(store, &mut c) {
            Ok(s) => s,
            Err(_) => state::observe(&c),
        };
        emit_json(&mut std::io::stdout().lock(), &state::object(&c, &seen))
    } else {
        println!("{arg}");
        Ok(())
    }
}
