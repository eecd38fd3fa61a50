//! `ci-monitor ROOT ID`: the per-container monitor that `ci-run -d` and
//! `ci-run start` leave behind (see `ci_core::runtime::monitor`). Not run
//! by hand.
fn main() {
    std::process::exit(ci_core::runtime::monitor::main())
}
