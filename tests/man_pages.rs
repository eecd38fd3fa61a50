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
    out.push((format!("{name}.1"), page(&cmd)));
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let sub = sub.clone().name(format!("{name}-{}", sub.get_name())).display_name(format!("{name}-{}", sub.get_name())).bin_name(format!("{name} {}", sub.get_name()));
        render(sub, out);
    }
}

/// One page: clap_mangen's sections, except that the `after_help` text
/// becomes NOTES (what precedes "Examples:") and EXAMPLES sections, in
/// no-fill mode, so each example stays on its own line as typed.
fn page(cmd: &clap::Command) -> Vec<u8> {
    let man = clap_mangen::Man::new(cmd.clone()).date("2026").source(format!("ci {}", env!("CARGO_PKG_VERSION"))).manual("ci manual");
    let mut buf = Vec::new();
    let w: &mut dyn std::io::Write = &mut buf;
    man.render_title(w).unwrap();
    man.render_name_section(w).unwrap();
    man.render_synopsis_section(w).unwrap();
    man.render_description_section(w).unwrap();
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(w).unwrap();
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(w).unwrap();
    }
    if let Some(text) = cmd.get_after_long_help().or_else(|| cmd.get_after_help()) {
        let text = format!("\n{text}");
        let (notes, examples) = match text.split_once("\nExamples:\n") {
            Some((notes, examples)) => (notes, Some(examples)),
            None => (text.as_str(), None),
        };
        let mut roff = roff::Roff::new();
        for (section, body) in [("NOTES", Some(notes.trim_matches('\n'))), ("EXAMPLES", examples)] {
            let Some(body) = body.filter(|b| !b.is_empty()) else { continue };
            roff.control("SH", [section]);
            roff.control("nf", []);
            for line in body.lines() {
                roff.text([roff::roman(line)]);
            }
            roff.control("fi", []);
        }
        roff.to_writer(w).unwrap();
    }
    if cmd.get_version().is_some() {
        man.render_version_section(w).unwrap();
    }
    // Each render_* call starts with roff's two-line preamble: keep the first.
    let text = String::from_utf8(buf).expect("roff is UTF-8");
    let preamble = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    assert!(text.starts_with(preamble), "roff preamble changed: {:?}", &text[..40.min(text.len())]);
    format!("{preamble}{}", text.replace(preamble, "")).into_bytes()
}

#[test]
fn every_page_has_examples() {
    // ci-vol and ci-net have no verbs yet; every other page shows its use.
    let bare: Vec<String> = pages()
        .into_iter()
        .filter(|(f, c)| !String::from_utf8_lossy(c).contains(".SH EXAMPLES") && !["ci-vol.1", "ci-net.1"].contains(&f.as_str()))
        .map(|(f, _)| f)
        .collect();
    assert!(bare.is_empty(), "man pages without an EXAMPLES section: {bare:?}");
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
