//! Garbage on stdin where a tool expects JSON objects (SECURITY.md §5 item
//! 37): `ci-build tag -`, `inspect -`, `rm -`, `ci-run -`, `ci-push -`, and
//! `ci-pull -` (which reads a tar archive there). Truncated JSON, a 1 GiB
//! line (streamed by another process, never held here), NUL bytes, bytes
//! that are not UTF-8, wrong types, duplicate keys, objects of the wrong
//! kind. Each gives a usage error naming the stdin line and byte and the
//! field, the tool's peak memory stays well under 100 MiB, and the store
//! is byte for byte what it was.

mod hardening_common;

use std::process::Command;

use hardening_common::*;

/// Peak memory a tool may reach on garbage (KiB).
const RSS_LIMIT_KIB: u64 = 100 << 10;

/// A garbage input and what the error must say.
struct Case {
    what: &'static str,
    input: Garbage,
    says: &'static [&'static str],
}

enum Garbage {
    Bytes(Vec<u8>),
    /// `prefix`, then this many bytes of `fill`, then `suffix`, from a child process.
    Stream { prefix: &'static str, n: u64, fill: char, suffix: &'static str },
}

fn json_cases() -> Vec<Case> {
    let b = |s: &[u8]| Garbage::Bytes(s.to_vec());
    vec![
        Case { what: "truncated JSON", input: b(br#"{"kind":"image","id":"bb:1""#), says: &["stdin line 1 (byte 0)", "not JSON", "EOF while parsing"] },
        Case {
            what: "truncated on the second line",
            input: b(b"{\"kind\":\"image\",\"id\":\"bb:1\"}\n{\"kind\":\"ima"),
            says: &["stdin line 2 (byte 29)", "EOF while parsing"],
        },
        Case {
            what: "a 1 GiB line",
            input: Garbage::Stream { prefix: r#"{"kind":"image","id":""#, n: 1 << 30, fill: 'a', suffix: "\"}\n" },
            says: &["stdin line 1 (byte 0)", "longer than 1048576 bytes"],
        },
        Case { what: "a NUL in a string", input: b(b"{\"kind\":\"image\",\"id\":\"bb\0:1\"}\n"), says: &["stdin line 1", "control character", "byte 24 of the line"] },
        Case { what: "a line of NULs", input: b(&[0u8; 64]), says: &["stdin line 1", "not JSON", "expected value"] },
        Case { what: "bytes that are not UTF-8", input: b(b"{\"kind\":\"image\",\"id\":\"bb\xff\xfe\"}\n"), says: &["stdin line 1", "not JSON", "byte 24 of the line"] },
        Case { what: "a number for the id", input: b(br#"{"kind":"image","id":5}"#), says: &["stdin line 1", "the field \"id\" is a number, expected a string"] },
        Case { what: "an object for the kind", input: b(br#"{"kind":{"a":1},"id":"bb:1"}"#), says: &["the field \"kind\" is an object, expected a string"] },
        Case { what: "an array, not an object", input: b(br#"["kind","image","id","bb:1"]"#), says: &["stdin line 1", "invalid type: sequence, expected a JSON object"] },
        Case { what: "a string, not an object", input: b(br#""bb:1""#), says: &["invalid type: string \"bb:1\", expected a JSON object"] },
        Case { what: "no id", input: b(br#"{"kind":"image","tags":["bb:1"]}"#), says: &["no \"id\" field"] },
        Case {
            what: "a duplicate id",
            input: b(br#"{"kind":"image","id":"bb:1","id":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}"#),
            says: &["stdin line 1", "the field \"id\" appears twice"],
        },
        Case { what: "a duplicate kind", input: b(br#"{"kind":"container","id":"bb:1","kind":"image"}"#), says: &["the field \"kind\" appears twice"] },
        Case {
            what: "an object of another kind",
            input: b(b"{\"kind\":\"image\",\"id\":\"bb:1\"}\n{\"kind\":\"container\",\"id\":\"4f2a\"}\n"),
            says: &["stdin line 2 (byte 29)", "expected an image object, got a container object"],
        },
        Case { what: "nothing", input: b(b""), says: &["stdin held no image object"] },
        Case { what: "only blank lines", input: b(b"\n  \n\t\n"), says: &["stdin held no image object"] },
    ]
}

/// The tools that read image objects on stdin, as commands taking `-`;
/// the exit status each gives for bad input.
fn json_readers(root: &TestRoot) -> Vec<(&'static str, Command, i32)> {
    let dest = root.path().join("work/pushed");
    vec![
        ("ci-build tag -", cmd(root, "ci-build", &["tag", "-", "new:1"]), 2),
        ("ci-build inspect -", cmd(root, "ci-build", &["inspect", "-"]), 2),
        ("ci-build rm -", cmd(root, "ci-build", &["rm", "-"]), 2),
        ("ci-run -", cmd(root, "ci-run", &["--rm", "-", "true"]), 125),
        ("ci-push -", cmd(root, "ci-push", &["-", &format!("oci:{}:1", dest.display())]), 2),
    ]
}

fn feed(c: Command, g: &Garbage) -> Run {
    match g {
        Garbage::Bytes(b) => run_with_stdin(c, b.clone()),
        Garbage::Stream { prefix, n, fill, suffix } => run_measured(c, Input::Process(stream_process(prefix, *n, *fill, suffix))),
    }
}

fn check(root: &TestRoot, before: &Snapshot, tool: &str, case: &str, r: &Run, codes: &[i32], says: &[&str]) {
    assert!(r.code().is_some_and(|c| codes.contains(&c)), "{tool} with {case}: exit status {} (expected one of {codes:?}): {}", r.status, r.stderr);
    for s in says {
        assert!(r.stderr.contains(s), "{tool} with {case}: the error should say {s:?}:\n{}", r.stderr);
    }
    assert!(r.stdout.is_empty(), "{tool} with {case}: nothing on stdout: {}", r.stdout);
    assert!(r.max_rss_kib < RSS_LIMIT_KIB, "{tool} with {case}: peak memory {} KiB", r.max_rss_kib);
    let changes = store_changes(before, &snapshot(root.path()));
    assert!(changes.is_empty(), "{tool} with {case} changed the store:\n{}", changes.join("\n"));
}

#[test]
fn garbage_instead_of_image_objects() {
    let root = TestRoot::new();
    let Some(_) = root.busybox_image("bb:1") else { return };
    let privileged = privileged("ci-run needs root");
    // A control: the same pipes work with real objects.
    let obj = run(cmd(&root, "ci-build", &["ls"])).expect_ok("ls").stdout;
    run_with_stdin(cmd(&root, "ci-build", &["inspect", "-"]), obj.clone().into_bytes()).expect_ok("inspect - with a real object");
    let before = snapshot(root.path());
    let mut peak = 0;
    for case in json_cases() {
        for (tool, c, code) in json_readers(&root) {
            if tool == "ci-run -" && !privileged {
                continue;
            }
            let r = feed(c, &case.input);
            check(&root, &before, tool, case.what, &r, &[code], case.says);
            peak = peak.max(r.max_rss_kib);
        }
        assert!(!root.path().join("work/pushed").exists(), "ci-push with {} created its destination", case.what);
    }
    eprintln!("garbage on stdin: the tools' peak memory was {peak} KiB at most");
}

/// A tar archive with these files.
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn garbage_instead_of_an_archive() {
    let root = TestRoot::new();
    let Some(_) = root.busybox_image("bb:1") else { return };
    // The real thing, for reference and for parts: a docker-archive of bb:1.
    let saved = root.path().join("work/bb.tar");
    std::fs::create_dir_all(saved.parent().unwrap()).unwrap();
    run(cmd(&root, "ci-push", &["bb:1", &format!("docker-archive:{}", saved.display())])).expect_ok("save bb:1");
    let good = std::fs::read(&saved).unwrap();
    let before = snapshot(root.path());
    // 10 000 levels where the reader skips a field it does not know (serde_json
    // skips iteratively: harmless), and where it parses a value (the config).
    let nest = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep = format!(r#"[{{"Config":"c.json","Layers":[],"Extra":{nest}}}]"#);
    let deep_config = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":[]}},"config":{nest}}}"#);
    let b = |v: Vec<u8>| Garbage::Bytes(v);
    let cases: Vec<(&str, Garbage, &[&str])> = vec![
        ("nothing", b(vec![]), &["stdin: not a tar archive (stdin is empty)"]),
        ("an image object", b(br#"{"kind":"image","id":"bb:1"}"#.to_vec()), &["not a tar archive", "before the first 512-byte header"]),
        ("NUL bytes", b(vec![0u8; 1 << 20]), &["not a tar archive", "end-of-archive"]),
        (
            "a 1 GiB stream of text",
            Garbage::Stream { prefix: "", n: 1 << 30, fill: 'y', suffix: "" },
            &["not a tar archive", "checksum does not match"],
        ),
        ("a truncated archive", b(good[..good.len() / 3].to_vec()), &["stdin: a truncated archive"]),
        ("an archive of other files", b(tar_of(&[("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")])), &["neither a `docker save` archive", "nor an OCI archive"]),
        ("truncated JSON in manifest.json", b(tar_of(&[("manifest.json", br#"[{"Config":"c.json","Layers":["#)])), &["stdin: malformed docker archive: manifest.json", "EOF while parsing"]),
        ("a number for Config", b(tar_of(&[("manifest.json", br#"[{"Config":5,"Layers":[]}]"#)])), &["manifest.json", "invalid type: integer `5`"]),
        (
            "a duplicate Config",
            b(tar_of(&[("manifest.json", br#"[{"Config":"a.json","Config":"b.json","Layers":[]}]"#), ("a.json", b"{}"), ("b.json", b"{}")])),
            &["manifest.json", "duplicate field `Config`"],
        ),
        ("a NUL in manifest.json", b(tar_of(&[("manifest.json", b"[{\"Config\":\"a\0.json\",\"Layers\":[]}]")])), &["manifest.json", "control character"]),
        ("manifest.json nested 10 000 deep in a field it skips", b(tar_of(&[("manifest.json", deep.as_bytes())])), &["manifest.json names \"c.json\", which is not in the archive"]),
        (
            "a config nested 10 000 deep",
            b(tar_of(&[("manifest.json", br#"[{"Config":"c.json","Layers":[]}]"#), ("c.json", deep_config.as_bytes())])),
            &["stdin (c.json)", "recursion limit exceeded"],
        ),
        (
            "an OCI index.json of the wrong kind",
            b(tar_of(&[("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#), ("index.json", br#"{"kind":"image","id":"bb:1"}"#)])),
            &["stdin", "index.json"],
        ),
    ];
    let mut peak = 0;
    for (what, input, says) in cases {
        let r = feed(cmd(&root, "ci-pull", &["-"]), &input);
        // 2 for a malformed archive, 1 for content that fails its checks (as from a registry).
        check(&root, &before, "ci-pull -", what, &r, &[1, 2], says);
        assert!(!r.stderr.contains(&root.path().display().to_string()), "ci-pull - with {what}: the error names stdin, not a spool file: {}", r.stderr);
        peak = peak.max(r.max_rss_kib);
    }
    eprintln!("garbage archives on stdin: ci-pull's peak memory was {peak} KiB at most");
    // And the real archive still loads.
    let other = TestRoot::new();
    let loaded = run_with_stdin(cmd(&other, "ci-pull", &["-"]), good).expect_ok("ci-pull - of a docker save archive");
    assert_eq!(one_object(&loaded.stdout)["tags"][0], "bb:1");
}

/// The memory probe itself: a process that holds 150 MB is seen doing so
/// (a probe that always read 0 would pass every check above).
#[test]
fn the_memory_probe_sees_a_big_process() {
    let mut c = Command::new("sh");
    c.args(["-c", "x=$(head -c 150000000 /dev/zero | tr '\\0' a); echo ${#x}"]);
    let r = run(c).expect_ok("sh");
    assert_eq!(r.stdout.trim(), "150000000");
    assert!(r.max_rss_kib > 140_000, "the probe saw only {} KiB", r.max_rss_kib);
}
