//! Limits and names (SECURITY.md §5 items 31 and 26), end to end.
//!
//! Item 31: a registry that serves a 5 GiB manifest (streamed, with and
//! without a Content-Length), a manifest nested 10 000 deep, an index that
//! declares a 5 GiB manifest; archives whose manifest.json / index.json is
//! 2 GiB (sparse files: no disk spent). Each ends in an error at the
//! documented limit (4 MiB for manifests, serde_json's nesting limit of
//! 128) with the tool's peak memory under 100 MiB, and the store unchanged.
//!
//! Also: a 200 MiB layer pushed to the real registry and pulled back, each
//! tool's peak memory under the same 100 MiB (memory independent of layer size).
//!
//! Item 26: every invalid digest of the oci-digest corpus and every invalid
//! reference of the image-reference corpus, given to each tool's arguments,
//! is refused before any request, path or store write is made: the fake
//! registry saw no connection, no file appeared, the store is unchanged.

mod hardening_common;

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hardening_common::*;

const RSS_LIMIT_KIB: u64 = 100 << 10;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const FIVE_GIB: u64 = 5 << 30;

/// A registry that misbehaves on purpose, on 127.0.0.1. It counts every
/// connection (a TLS hello included) and records each HTTP request line.
struct FakeRegistry {
    port: u16,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    /// Body bytes the streaming answers managed to send.
    streamed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeRegistry {
    fn start() -> FakeRegistry {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let (connections, requests, streamed, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let thread = {
            let (connections, requests, streamed, stop) = (connections.clone(), requests.clone(), streamed.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match l.accept() {
                        Ok((s, _)) => {
                            connections.fetch_add(1, Ordering::SeqCst);
                            let (requests, streamed) = (requests.clone(), streamed.clone());
                            std::thread::spawn(move || {
                                let _ = serve(s, &requests, &streamed);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        FakeRegistry { port, connections, requests, streamed, stop, thread: Some(thread) }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn serve(s: TcpStream, requests: &Mutex<Vec<String>>, streamed: &AtomicUsize) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut out = s.try_clone()?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    if r.read_line(&mut line).is_err() || !line.contains(" HTTP/1.") {
        return Ok(()); // a TLS hello: the client falls back to plain HTTP on loopback
    }
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    requests.lock().unwrap().push(line.trim().to_string());
    let fixed = |out: &mut TcpStream, status: &str, ct: &str, body: &[u8]| -> std::io::Result<()> {
        write!(out, "HTTP/1.1 {status}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())?;
        out.write_all(body)
    };
    let index = |size: u64| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{}","size":{size},"platform":{{"os":"linux","architecture":"{}"}}}}]}}"#,
            "ab".repeat(32),
            ci_core::image::config::host_arch()
        )
    };
    match path.as_str() {
        "/v2/" => fixed(&mut out, "200 OK", "application/json", b"{}"),
        "/v2/huge/manifests/1" | "/v2/chunked/manifests/1" => {
            let chunked = path.starts_with("/v2/chunked");
            let framing = if chunked { "Transfer-Encoding: chunked".to_string() } else { format!("Content-Length: {FIVE_GIB}") };
            write!(out, "HTTP/1.1 200 OK\r\nContent-Type: {OCI_MANIFEST}\r\n{framing}\r\nConnection: close\r\n\r\n")?;
            // A manifest whose one string never ends: 5 GiB, sent until the client hangs up.
            let chunk = vec![b'a'; 64 << 10];
            let mut sent = 0u64;
            let head = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","x":""#);
            let mut first = Some(head.into_bytes());
            while sent < FIVE_GIB {
                let body = first.take().unwrap_or_else(|| chunk.clone());
                let n = body.len().min((FIVE_GIB - sent) as usize);
                if chunked {
                    write!(out, "{n:x}\r\n")?;
                    out.write_all(&body[..n])?;
                    out.write_all(b"\r\n")?;
                } else {
                    out.write_all(&body[..n])?;
                }
                sent += n as u64;
                streamed.fetch_add(n, Ordering::SeqCst);
            }
            if chunked {
                out.write_all(b"0\r\n\r\n")?;
            }
            Ok(())
        }
        "/v2/deep/manifests/1" => {
            let body = format!(r#"{{"schemaVersion":{},"mediaType":"{OCI_MANIFEST}","config":{{}},"layers":[]}}"#, nested(10_000));
            fixed(&mut out, "200 OK", OCI_MANIFEST, body.as_bytes())
        }
        "/v2/bigindex/manifests/1" => fixed(&mut out, "200 OK", OCI_INDEX, index(FIVE_GIB).as_bytes()),
        _ => fixed(&mut out, "404 Not Found", "application/json", br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#),
    }
}

fn check_failure(root: &TestRoot, before: &Snapshot, what: &str, r: &Run, says: &[&str]) {
    assert!(!r.ok(), "{what}: it succeeded");
    assert!(matches!(r.code(), Some(1) | Some(2)), "{what}: a plain failure, not a crash ({}): {}", r.status, r.stderr);
    for s in says {
        assert!(r.stderr.contains(s), "{what}: the error should say {s:?}:\n{}", r.stderr);
    }
    assert!(r.max_rss_kib < RSS_LIMIT_KIB, "{what}: peak memory {} KiB", r.max_rss_kib);
    let changes = store_changes(before, &snapshot(root.path()));
    assert!(changes.is_empty(), "{what} changed the store:\n{}", changes.join("\n"));
}

#[test]
fn a_registry_serving_huge_or_deep_manifests() {
    let reg = FakeRegistry::start();
    let root = TestRoot::new();
    run(cmd(&root, "ci-build", &["ls"])).expect_ok("create the store");
    let before = snapshot(root.path());
    let limit = "more than the limit of 4194304";
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("huge", vec!["the manifest is 5368709120 bytes", limit]),
        ("chunked", vec!["larger than the limit of 4194304 bytes"]),
        ("deep", vec!["not a valid manifest", "recursion limit exceeded"]),
        ("bigindex", vec!["declares 5368709120 bytes", limit]),
    ];
    let mut peak = 0;
    for (name, says) in cases {
        let r = run(cmd(&root, "ci-pull", &[&format!("{}/{name}:1", reg.host())]));
        check_failure(&root, &before, &format!("ci-pull of {name}"), &r, &says);
        peak = peak.max(r.max_rss_kib);
    }
    let seen = reg.requests.lock().unwrap().clone();
    assert!(!seen.iter().any(|l| l.contains(&"ab".repeat(32))), "a manifest declared 5 GiB was requested: {seen:?}");
    let streamed = reg.streamed.load(Ordering::SeqCst);
    assert!(streamed < 1 << 30, "the client read on ({streamed} bytes) past the limit");
    eprintln!("huge/deep manifests: peak memory {peak} KiB; {streamed} bytes of the 5 GiB bodies were sent before the client hung up");
}

/// A tar whose entry `name` claims `size` bytes: a sparse file, so the
/// claim costs no disk. The data is zeros; the archive ends properly.
fn sparse_archive(path: &Path, files: &[(&str, &[u8])], name: &str, size: u64) {
    let mut f = std::fs::File::create(path).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for (n, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, n, *data).unwrap();
    }
    let small = b.into_inner().unwrap();
    // Builder::into_inner wrote the two end blocks: drop them, add the big entry.
    f.write_all(&small[..small.len() - 1024]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    f.write_all(h.as_bytes()).unwrap();
    let padded = size.div_ceil(512) * 512;
    f.seek(SeekFrom::Current(padded as i64)).unwrap();
    f.write_all(&[0u8; 1024]).unwrap();
    let on_disk = f.metadata().unwrap();
    assert!(std::os::unix::fs::MetadataExt::blocks(&on_disk) < 1 << 16, "the archive is sparse");
}

#[test]
fn archives_with_a_2_gib_manifest_or_index() {
    let root = TestRoot::new();
    run(cmd(&root, "ci-build", &["ls"])).expect_ok("create the store");
    let work = root.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let two_gib = 2u64 << 30;
    let docker = work.join("docker.tar");
    sparse_archive(&docker, &[], "manifest.json", two_gib);
    let oci = work.join("oci.tar");
    sparse_archive(&oci, &[("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)], "index.json", two_gib);
    // The same, read as a file by `load`: a check that the sparse tar is a valid one.
    let mut t = tar::Archive::new(std::fs::File::open(&docker).unwrap());
    let sizes: Vec<u64> = t.entries().unwrap().map(|e| e.unwrap().header().size().unwrap()).collect();
    assert_eq!(sizes, vec![two_gib]);
    let before = snapshot(root.path());
    let limit = "is 2147483648 bytes, more than the limit of 4194304";
    for (what, src) in [("docker-archive", format!("docker-archive:{}", docker.display())), ("oci-archive", format!("oci-archive:{}", oci.display()))] {
        let r = run(cmd(&root, "ci-pull", &[&src]));
        check_failure(&root, &before, &format!("ci-pull {what} with a 2 GiB manifest"), &r, &[limit]);
        eprintln!("{what} with a 2 GiB manifest: peak memory {} KiB", r.max_rss_kib);
    }
    // On stdin the archive is spooled to ROOT/tmp first: 2 GiB of disk for
    // a few seconds. Checked with a 64 MiB manifest.json to keep the test fast.
    let small = work.join("docker-64m.tar");
    sparse_archive(&small, &[], "manifest.json", 64 << 20);
    let cat = Command::new("cat").arg(&small).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let r = run_measured(cmd(&root, "ci-pull", &["-"]), Input::Process(cat));
    check_failure(&root, &before, "ci-pull - with a 64 MiB manifest.json", &r, &["stdin: manifest.json is 67108864 bytes, more than the limit of 4194304"]);
}

/// A layer of 200 MiB that does not compress goes to the real registry and
/// back with the tools' peak memory under 100 MiB: it streams (8 MiB chunks
/// up, verified while streaming down), it is never held whole.
#[test]
fn a_200_mib_layer_is_pushed_and_pulled_in_flat_memory() {
    let Some(reg) = ci_tests::registry::TestRegistry::start(Default::default()) else { return };
    let src = TestRoot::new();
    let tar = src.path().join("rootfs.tar");
    if rootfs_tar_file(&tar, &mut Rng::new(seed("flat-memory")), 200).is_none() {
        return;
    }
    let name = format!("{}/big:1", reg.host());
    run(cmd(&src, "ci-build", &["import", "-t", &name, tar.to_str().unwrap()])).expect_ok("import");
    std::fs::remove_file(&tar).unwrap();
    let push = run(cmd(&src, "ci-push", &[&name])).expect_ok("push");
    let pushed = one_object(&push.stdout);
    assert_eq!(pushed["uploaded"], 2, "{pushed}");
    let patches = reg.requests("PATCH", "/blobs/uploads/");
    assert!(patches >= 25, "200 MiB in 8 MiB chunks, not {patches}");
    let dst = TestRoot::new();
    let pull = run(cmd(&dst, "ci-pull", &[&name])).expect_ok("pull");
    assert_eq!(one_object(&pull.stdout)["digest"], pushed["digest"]);
    let layer = std::fs::read_dir(dst.path().join("images/blobs/sha256")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).max().unwrap();
    assert!(layer > 200 << 20, "the pulled layer is {layer} bytes");
    eprintln!(
        "{layer} bytes: push {:?}, peak {} KiB; pull {:?}, peak {} KiB",
        push.elapsed, push.max_rss_kib, pull.elapsed, pull.max_rss_kib
    );
    assert!(push.max_rss_kib < RSS_LIMIT_KIB, "ci-push of a {layer}-byte layer: peak memory {} KiB", push.max_rss_kib);
    assert!(pull.max_rss_kib < RSS_LIMIT_KIB, "ci-pull of a {layer}-byte layer: peak memory {} KiB", pull.max_rss_kib);
}

// ---- item 26: invalid names refused before anything is done with them ----

/// Rows of a corpus TSV (comment lines skipped), with `\n` and `\0` escapes decoded.
fn corpus_rows(file: &str) -> Option<Vec<Vec<String>>> {
    let dir = corpora_dir()?;
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    Some(
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.split('\t').map(|f| f.replace("\\n", "\n").replace("\\0", "\0")).collect())
            .collect(),
    )
}

/// Commands that take a docker reference, with `name` in its place
/// (`oci:DIR:REF` is not one: its REF is an OCI ref name, another grammar). Registry names
/// point at the fake registry; `work` is where files would appear.
fn name_takers(root: &TestRoot, name: &str, remote: &str, work: &Path) -> Vec<(String, Command)> {
    let archive = work.join("out.tar");
    let ctx = work.join("ctx");
    vec![
        ("ci-pull REMOTE".into(), cmd(root, "ci-pull", &[remote])),
        ("ci-push bb:1 REMOTE".into(), cmd(root, "ci-push", &["bb:1", remote])),
        ("ci-build tag bb:1 NAME".into(), cmd(root, "ci-build", &["tag", "bb:1", name])),
        ("ci-build inspect NAME".into(), cmd(root, "ci-build", &["inspect", name])),
        ("ci-build rm NAME".into(), cmd(root, "ci-build", &["rm", name])),
        ("ci-build import -t NAME".into(), cmd(root, "ci-build", &["import", "-t", name, work.join("rootfs.tar").to_str().unwrap()])),
        ("ci-build -t NAME CTX".into(), cmd(root, "ci-build", &["--progress", "plain", "-t", name, ctx.to_str().unwrap()])),
        ("ci-push bb:1 docker-archive:F:NAME".into(), cmd(root, "ci-push", &["bb:1", &format!("docker-archive:{}:{name}", archive.display())])),
        ("ci-run NAME".into(), cmd(root, "ci-run", &["--rm", name, "true"])),
    ]
}

struct NameCheck {
    root: TestRoot,
    reg: FakeRegistry,
    work: std::path::PathBuf,
    before: Snapshot,
    work_before: Vec<String>,
}

impl NameCheck {
    fn new() -> Option<NameCheck> {
        let root = TestRoot::new();
        root.busybox_image("bb:1")?;
        let work = root.path().join("work");
        std::fs::create_dir_all(work.join("ctx")).unwrap();
        std::fs::write(work.join("ctx/Dockerfile"), "FROM bb:1\n").unwrap();
        std::fs::write(work.join("rootfs.tar"), busybox_rootfs_tar()?).unwrap();
        let reg = FakeRegistry::start();
        let before = snapshot(root.path());
        let work_before = listing(&work);
        Some(NameCheck { root, reg, work, before, work_before })
    }

    /// Every command that takes a reference refuses `name`.
    fn refuses(&self, name: &str, remote: &str, why: &str) -> usize {
        self.all_refuse(name, why, name_takers(&self.root, name, remote, &self.work))
    }

    /// Every command that takes an image (a name or an id) refuses `digest` given as one.
    fn refuses_as_image(&self, digest: &str, why: &str) -> usize {
        let r = &self.root;
        let ok_remote = format!("{}/ok:1", self.reg.host());
        let cmds = vec![
            ("ci-build inspect DIGEST".to_string(), cmd(r, "ci-build", &["inspect", digest])),
            ("ci-build history DIGEST".into(), cmd(r, "ci-build", &["history", digest])),
            ("ci-build rm DIGEST".into(), cmd(r, "ci-build", &["rm", digest])),
            ("ci-build tag DIGEST new:1".into(), cmd(r, "ci-build", &["tag", digest, "new:1"])),
            ("ci-push DIGEST REMOTE".into(), cmd(r, "ci-push", &[digest, &ok_remote])),
            ("ci-run DIGEST".into(), cmd(r, "ci-run", &["--rm", digest, "true"])),
        ];
        self.all_refuse(digest, why, cmds)
    }

    /// Each command fails with an error: no connection, no file, no change.
    fn all_refuse(&self, name: &str, why: &str, cmds: Vec<(String, Command)>) -> usize {
        let mut n = 0;
        for (what, c) in cmds {
            let r = run(c);
            let label = format!("{what} with {name:?} ({why})");
            assert!(!r.ok(), "{label}: accepted");
            assert!(matches!(r.code(), Some(1) | Some(2) | Some(125)), "{label}: {} {}", r.status, r.stderr);
            assert!(r.stderr.contains("error: "), "{label}: no error message: {}", r.stderr);
            assert_eq!(self.reg.connections.load(Ordering::SeqCst), 0, "{label}: the registry was contacted: {:?}", self.reg.requests.lock().unwrap());
            assert_eq!(listing(&self.work), self.work_before, "{label}: a file appeared");
            let changes = store_changes(&self.before, &snapshot(self.root.path()));
            assert!(changes.is_empty(), "{label} changed the store:\n{}", changes.join("\n"));
            n += 1;
        }
        n
    }
}

fn listing(dir: &Path) -> Vec<String> {
    snapshot(dir).into_keys().collect()
}

#[test]
fn invalid_digests_are_refused_before_use() {
    let Some(rows) = corpus_rows("oci-digest/digest-vectors.tsv") else { return };
    let Some(check) = NameCheck::new() else { return };
    let mut runs = 0;
    for row in rows.iter().filter(|r| r.get(2).is_some_and(|e| e != "ok")) {
        let digest = &row[1];
        if digest.contains('\0') {
            continue; // no argument can hold a NUL: exec(2) itself refuses it
        }
        let remote = format!("{}/x@{digest}", check.reg.host());
        runs += check.refuses(&format!("x@{digest}"), &remote, &row[2]);
        if !digest.is_empty() {
            runs += check.refuses_as_image(digest, &row[2]);
        }
    }
    eprintln!("invalid digests: {runs} commands refused them before use");
    assert!(runs > 100, "the corpus was read ({runs} runs)");
}

#[test]
fn invalid_references_are_refused_before_use() {
    let Some(rows) = corpus_rows("image-reference/reference-vectors.tsv") else { return };
    let Some(check) = NameCheck::new() else { return };
    let (mut used, mut runs) = (0, 0);
    for row in rows.iter().filter(|r| r.get(3).is_some_and(|e| e.starts_with("error"))) {
        let input = &row[2];
        // Rows invalid only for another of upstream's parsers (Parse vs
        // ParseNormalizedNamed) are names the tools accept: not this test's.
        if input.contains('\0') || ci_core::reference::Reference::parse(input).is_ok() {
            continue;
        }
        // Remote forms point at the fake registry; where that prefix would
        // make the name valid (a 64-hex repository under a host), the raw
        // name is used, and must be refused just the same.
        let prefixed = format!("{}/{input}", check.reg.host());
        let remote = if ci_core::reference::Reference::parse(&prefixed).is_ok() { input.clone() } else { prefixed };
        runs += check.refuses(input, &remote, &row[3]);
        used += 1;
    }
    eprintln!("{used} invalid references, {runs} commands refused them before use");
    assert!(used > 40, "the corpus was read ({used} rows)");
}
