//! The section-1 man pages under man/ are generated from the tools' clap
//! definitions, so they cannot drift from the flags: this test renders
//! every page and fails when a committed page differs.
//! `CITEST_UPDATE_MAN=1 cargo test --test man_pages` (or `make man`) rewrites them.

use std::path::PathBuf;

use clap::CommandFactory;

/// Render one page per command and per verb: ci-build.1, ci-build-import.1, ...
fn pages() -> Vec<(String, Vec<u8>)> {
    let tools = [
        ci_build::Cli::command(),
        ci_run::Cli::command(),
        ci_vol::Cli::command(),
        ci_net::Cli::command(),
        ci_push::Cli::command(),
        ci_push::PullCli::command(),
    ];
    let mut out = Vec::new();
    for cmd in tools {
        render(cmd, &mut out);
    }
    out
}

fn render(cmd: clap::Command, out: &mut Vec<(String, Vec<u8>)>) {
    let mut cmd = cmd.version(env!("CARGO_PKG_VERSION"));
    cmd.build();
    let name = cmd.get_name().to_string();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .date("2026")
        .source(format!("ci {}", env!("CARGO_PKG_VERSION")))
        .manual("ci manual")
        .render(&mut buf)
        .expect("render a man page");
    out.push((format!("{name}.1"), buf));
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let sub = sub.clone().name(format!("{name}-{}", sub.get_name())).display_name(format!("{name}-{}", sub.get_name())).bin_name(format!("{name} {}", sub.get_name()));
        render(sub, out);
    }
}

#[test]
fn man_pages_match_the_flags() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("man");
    let update = std::env::var("CITEST_UPDATE_MAN").map(|v| v == "1").unwrap_or(false);
    let mut stale = Vec::new();
    let pages = pages();
    for (file, content) in &pages {
        let path = dir.join(file);
        if std::fs::read(&path).ok().as_deref() != Some(content.as_slice()) {
            if update {
                std::fs::write(&path, content).unwrap();
            } else {
                stale.push(file.clone());
            }
        }
    }
    // Pages of verbs that no longer exist are stale too.
    for e in std::fs::read_dir(&dir).unwrap() {
        let f = e.unwrap().file_name().to_string_lossy().to_string();
        if f.ends_with(".1") && !pages.iter().any(|(p, _)| p == &f) {
            if update {
                std::fs::remove_file(dir.join(&f)).unwrap();
            } else {
                stale.push(f);
            }
        }
    }
    assert!(stale.is_empty(), "man pages out of date: {stale:?}; run `make man` and commit");
}
