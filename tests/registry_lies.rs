//! A registry that lies (a proxy in front of the real one, see
//! tests/support/registry/proxy.rs), and other bad input: every lie is
//! caught, the error says which and what to do, the exit status is
//! non-zero, and the store is left as it was. Then the honest registry
//! serves the same pull and it succeeds: a failed pull leaves nothing that
//! gets in the way.

mod hardening_common;

use ci_tests::registry::proxy::{Lies, Proxy, Seen};
use ci_tests::registry::{cmd, free_port, RegistryOptions, TestRegistry};
use ci_tests::{json_lines, TestRoot};

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).to_string()
}

/// The store's images and blobs, to compare before and after.
fn snapshot(root: &TestRoot) -> (String, Vec<String>) {
    let index = std::fs::read_to_string(root.path().join("images/index.json")).unwrap_or_default();
    let mut blobs: Vec<String> = std::fs::read_dir(root.path().join("images/blobs/sha256"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default();
    blobs.sort();
    (index, blobs)
}

/// A registry holding bb:1, a proxy in front of it, and an empty store to pull into.
fn setup() -> Option<(TestRegistry, Proxy, TestRoot)> {
    let reg = TestRegistry::start(RegistryOptions::default())?;
    let pusher = TestRoot::new();
    let name = format!("{}/bb:1", reg.host());
    pusher.busybox_image(&name)?;
    cmd(&pusher, "ci-push").arg(&name).assert().success();
    let proxy = Proxy::start(&format!("http://{}", reg.host()), Lies::default());
    let root = TestRoot::new();
    cmd(&root, "ci-build").arg("ls").assert().success(); // create the store
    Some((reg, proxy, root))
}

/// Pull through the lying proxy: it must fail with `expect` in the message
/// and leave the store unchanged; then the honest proxy's pull succeeds.
fn refused(proxy: &Proxy, root: &TestRoot, lies: Lies, expect: &[&str]) {
    let name = format!("{}/bb:1", proxy.host());
    let before = snapshot(root);
    proxy.set_lies(lies.clone());
    let e = cmd(root, "ci-pull").arg(&name).assert().failure();
    let msg = stderr(&e);
    for x in expect {
        assert!(msg.contains(x), "{lies:?}: expected {x:?} in: {msg}");
    }
    assert!(msg.contains("ci-pull: error:"), "{msg}");
    assert_eq!(snapshot(root), before, "{lies:?}: the store changed");
    proxy.set_lies(Lies::default());
    cmd(root, "ci-pull").arg(&name).assert().success();
    cmd(root, "ci-build").arg("fsck").assert().success();
    cmd(root, "ci-build").args(["rm", &name]).assert().success();
    cmd(root, "ci-build").args(["prune", "-a"]).assert().success();
}

#[test]
fn lies_about_content_are_caught() {
    let Some((_reg, proxy, root)) = setup() else { return };
    refused(&proxy, &root, Lies { corrupt_blobs: true, ..Default::default() }, &["does not match its digest", "nothing was stored"]);
    refused(&proxy, &root, Lies { truncate_blobs: true, ..Default::default() }, &["blob sha256:"]);
    refused(&proxy, &root, Lies { wrong_digest_header: true, ..Default::default() }, &["Docker-Content-Digest"]);
    refused(&proxy, &root, Lies { ambiguous_manifest: true, ..Default::default() }, &["ambiguous", "CVE-2021-41190"]);
    refused(&proxy, &root, Lies { content_type_mismatch: true, ..Default::default() }, &["contradicts the Content-Type"]);
    refused(&proxy, &root, Lies { layer_size_lie: true, ..Default::default() }, &["bytes"]);
    refused(&proxy, &root, Lies { unknown_media_type: true, ..Default::default() }, &["application/vnd.example.thing.v1+json"]);
    refused(&proxy, &root, Lies { schema1: true, ..Default::default() }, &["schema 1"]);
}

#[test]
fn a_traversal_digest_is_refused_before_any_request_for_it() {
    let Some((_reg, proxy, root)) = setup() else { return };
    proxy.clear();
    refused(&proxy, &root, Lies { traversal_digest: true, ..Default::default() }, &["invalid"]);
    let seen = proxy.seen();
    assert!(!seen.iter().any(|s| s.target.contains("..")), "{seen:?}");
}

#[test]
fn a_failed_pull_keeps_verified_blobs_for_the_next() {
    let Some((_reg, proxy, root)) = setup() else { return };
    let name = format!("{}/bb:1", proxy.host());
    let before = snapshot(&root);
    proxy.set_lies(Lies { corrupt_blobs_over: Some(4096), ..Default::default() });
    cmd(&root, "ci-pull").args(["-j", "1", &name]).assert().failure();
    assert_eq!(snapshot(&root), before, "the image store is unchanged");
    // The config was verified and staged: the next pull does not fetch it again.
    proxy.set_lies(Lies::default());
    proxy.clear();
    cmd(&root, "ci-pull").arg(&name).assert().success();
    let gets = proxy.seen().iter().filter(|s| s.method == "GET" && s.target.contains("/blobs/")).count();
    assert_eq!(gets, 1, "only the layer is fetched again: {:?}", proxy.seen());
    assert!(std::fs::read_dir(root.path().join("distribution/incoming/images/blobs/sha256")).unwrap().next().is_none(), "staging is emptied");
}

#[test]
fn missing_images_and_unreachable_registries() {
    let Some((reg, _proxy, root)) = setup() else { return };
    let before = snapshot(&root);
    let e = cmd(&root, "ci-pull").arg(format!("{}/bb:nope", reg.host())).assert().failure();
    assert!(stderr(&e).contains("no such image") && stderr(&e).contains("check the name and tag"), "{}", stderr(&e));
    let port = free_port();
    let e = cmd(&root, "ci-pull").arg(format!("127.0.0.1:{port}/bb:1")).assert().failure();
    assert!(stderr(&e).contains("connection refused") && stderr(&e).contains("is a registry running"), "{}", stderr(&e));
    let e = cmd(&root, "ci-pull").arg(format!("127.0.0.1:{port}/Bad:1")).assert().code(2);
    assert!(stderr(&e).contains("lowercase"), "{}", stderr(&e));
    assert_eq!(snapshot(&root), before);
}

#[test]
fn relative_locations_with_a_query_are_followed_exactly() {
    let Some((_reg, proxy, _root)) = setup() else { return };
    proxy.set_lies(Lies { relative_location: true, ..Default::default() });
    let root = TestRoot::new();
    let name = format!("{}/rel:1", proxy.host());
    if root.busybox_image(&name).is_none() {
        return;
    }
    proxy.clear();
    cmd(&root, "ci-push").arg(&name).assert().success();
    let seen = proxy.seen();
    let followed: Vec<_> = seen.iter().filter(|s| s.method == "PATCH" || (s.method == "PUT" && s.target.contains("/blobs/uploads/"))).collect();
    assert!(!followed.is_empty());
    assert!(followed.iter().all(|s| s.target.contains("lie=1") && s.target.contains("_state=")), "{followed:?}");
    let pulled = TestRoot::new();
    cmd(&pulled, "ci-pull").arg(&name).assert().success();
}

#[test]
fn a_redirect_to_another_port_gets_no_credentials() {
    let Some(reg) = TestRegistry::start(RegistryOptions { htpasswd: Some(("ci".into(), "redir-pw".into())), tls: false, ..Default::default() }) else { return };
    let proxy = Proxy::start(&format!("http://{}", reg.host()), Lies::default());
    let root = TestRoot::new();
    let name = format!("{}/bb:1", proxy.host());
    if root.busybox_image(&name).is_none() {
        return;
    }
    cmd(&root, "ci-push").args(["login", "-u", "ci", "--password-stdin", &proxy.host()]).write_stdin("redir-pw\n").assert().success();
    cmd(&root, "ci-push").arg(&name).assert().success();
    cmd(&root, "ci-build").args(["rm", &name]).assert().success();
    proxy.set_lies(Lies { redirect_blobs: true, ..Default::default() });
    proxy.clear();
    cmd(&root, "ci-pull").arg(&name).assert().success();
    let storage = proxy.storage_seen();
    assert_eq!(storage.len(), 2, "layer and config fetched from storage: {storage:?}");
    assert!(storage.iter().all(|s| s.authorization.is_none()), "credentials leaked to another port: {storage:?}");
    assert!(proxy.seen().iter().filter(|s| s.target.starts_with("/v2/bb")).all(|s| s.authorization.as_deref().is_some_and(|a| a.starts_with("Basic "))));
    cmd(&root, "ci-build").arg("fsck").assert().success();
}

#[test]
fn bearer_tokens_are_fetched_per_scope_and_cached() {
    let Some(reg) = TestRegistry::start(RegistryOptions::default()) else { return };
    let proxy = Proxy::start(&format!("http://{}", reg.host()), Lies { bearer: Some(Some(("ci".into(), "tok-pw".into()))), ..Default::default() });
    let root = TestRoot::new();
    let name = format!("{}/team/app:1", proxy.host());
    if root.busybox_image(&name).is_none() {
        return;
    }
    // Without credentials the token service refuses, and the error says how to log in.
    let e = cmd(&root, "ci-push").arg(&name).assert().failure();
    assert!(stderr(&e).contains("refused anonymous access") && stderr(&e).contains("login"), "{}", stderr(&e));
    cmd(&root, "ci-push").args(["login", "-u", "ci", "--password-stdin", &proxy.host()]).write_stdin("tok-pw\n").assert().success();
    let fetches = proxy.token_fetches();
    cmd(&root, "ci-push").arg(&name).assert().success();
    assert_eq!(proxy.token_fetches() - fetches, 1, "one push token for the whole push");
    // Another repository: blobs are mounted with a token for both repositories.
    let fetches = proxy.token_fetches();
    let out = cmd(&root, "ci-push").args([&name, &format!("{}/other:1", proxy.host())]).assert().success();
    assert_eq!(json_lines(&out.get_output().stdout)[0]["uploaded"], 0);
    assert!(proxy.token_fetches() - fetches <= 2, "{}", proxy.token_fetches() - fetches);
    assert!(proxy.seen().iter().any(|s| s.method == "POST" && s.target.contains("mount=") && s.target.contains("from=team/app")));
    let fresh = TestRoot::new();
    std::fs::create_dir_all(ci_tests::registry::docker_config_dir(&fresh)).unwrap();
    std::fs::copy(ci_tests::registry::docker_config_dir(&root).join("config.json"), ci_tests::registry::docker_config_dir(&fresh).join("config.json")).unwrap();
    cmd(&fresh, "ci-pull").arg(&name).assert().success();

    // Neither the token nor the password reaches --explain or an error (CVE-2019-13509):
    // a push that uploads (a new repository, blobs mounted or sent), and a pull that fails
    // after its token was granted.
    let secrets = |all: &str| {
        let basic = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "ci:tok-pw");
        for leak in ["citoken-", "tok-pw", basic.as_str(), "authorization:"] {
            assert!(!all.to_ascii_lowercase().contains(&leak.to_ascii_lowercase()), "{leak:?} leaked: {all}");
        }
    };
    let fetches = proxy.token_fetches();
    let out = cmd(&root, "ci-push").args(["--explain", &name, &format!("{}/third:1", proxy.host())]).assert().success();
    let all = format!("{}{}", String::from_utf8_lossy(&out.get_output().stdout), stderr(&out));
    assert!(proxy.token_fetches() > fetches && all.contains("token for repository:third:pull,push"), "tokens were used: {all}");
    secrets(&all);
    let e = cmd(&fresh, "ci-pull").args(["--explain", &format!("{}/team/app:nope", proxy.host())]).assert().failure();
    let all = stderr(&e);
    assert!(all.contains("no such image"), "{all}");
    secrets(&all);
    let e = cmd(&TestRoot::new(), "ci-push").args(["login", "--explain", "-u", "ci", "--password-stdin", &proxy.host()]).write_stdin("tok-pw-wrong\n").assert().failure();
    let all = stderr(&e);
    assert!(all.contains("refused the credentials of \"ci\""), "{all}");
    assert!(!all.contains("tok-pw-wrong"), "the wrong password leaked: {all}");

    // An anonymous token service: pulls need no login.
    proxy.set_lies(Lies { bearer: Some(None), ..Default::default() });
    cmd(&TestRoot::new(), "ci-pull").arg(&name).assert().success();
}

#[test]
fn malformed_archives_change_nothing() {
    let root = TestRoot::new();
    if root.busybox_image("bb:1").is_none() {
        return;
    }
    let good = root.path().join("good.tar");
    cmd(&root, "ci-push").args(["bb:1", &format!("docker-archive:{}", good.display())]).assert().success();
    let fresh = TestRoot::new();
    cmd(&fresh, "ci-build").arg("ls").assert().success();
    let before = snapshot(&fresh);
    let bad = root.path().join("bad.tar");

    std::fs::write(&bad, b"this is not a tar archive at all, just words").unwrap();
    let e = cmd(&fresh, "ci-pull").arg(format!("docker-archive:{}", bad.display())).assert().failure();
    assert!(stderr(&e).contains("not a tar archive"), "{}", stderr(&e));

    // manifest.json naming a file outside the archive (CVE-2014-9358).
    let rewrite = |edit: &dyn Fn(serde_json::Value) -> serde_json::Value, extra: &[(&str, &[u8])]| {
        let mut a = tar::Archive::new(std::fs::File::open(&good).unwrap());
        let mut b = tar::Builder::new(Vec::new());
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            if path == "manifest.json" {
                data = serde_json::to_vec(&edit(serde_json::from_slice(&data).unwrap())).unwrap();
            }
            let mut h = e.header().clone();
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append_data(&mut h, &path, &data[..]).unwrap();
        }
        for (name, data) in extra {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        std::fs::write(&bad, b.into_inner().unwrap()).unwrap();
    };
    rewrite(&|mut m| { m[0]["Layers"][0] = "../../etc/passwd".into(); m }, &[]);
    let e = cmd(&fresh, "ci-pull").arg(format!("docker-archive:{}", bad.display())).assert().failure();
    assert!(stderr(&e).contains("leaves the archive"), "{}", stderr(&e));
    // A layer that is not the one its config names.
    rewrite(&|mut m| { m[0]["Layers"][0] = "fake/layer.tar".into(); m }, &[("fake/layer.tar", b"not the layer")]);
    let e = cmd(&fresh, "ci-pull").arg(format!("docker-archive:{}", bad.display())).assert().failure();
    assert!(stderr(&e).contains("is not the layer its config names"), "{}", stderr(&e));
    // A tag that is no reference (CVE-2026-50195).
    rewrite(&|mut m| { m[0]["RepoTags"] = serde_json::json!(["../../Evil:tag"]); m }, &[]);
    let e = cmd(&fresh, "ci-pull").arg(format!("docker-archive:{}", bad.display())).assert().failure();
    assert!(stderr(&e).contains("RepoTag"), "{}", stderr(&e));
    // Garbage on stdin.
    let e = cmd(&fresh, "ci-pull").arg("-").write_stdin(&b"\x00\x01garbage"[..]).assert().failure();
    assert!(stderr(&e).contains("stdin"), "{}", stderr(&e));
    assert_eq!(snapshot(&fresh), before);
    // And the good archive loads.
    cmd(&fresh, "ci-pull").arg(format!("docker-archive:{}", good.display())).assert().success();
}

/// An image of busybox and `mb` MiB of random bytes (a layer that does not compress).
fn big_image(root: &TestRoot, name: &str, mb: usize) -> Option<String> {
    let mut rng = hardening_common::Rng::new(hardening_common::seed(name));
    let tar = hardening_common::rootfs_tar(&mut rng, mb)?;
    let out = cmd(root, "ci-build").args(["import", "-t", name, "-"]).write_stdin(tar).assert().success();
    Some(json_lines(&out.get_output().stdout)[0]["id"].as_str().unwrap().to_string())
}

/// The path and query of a URL (what a proxy sees as the request target).
fn target_of(url: &str) -> &str {
    url.find("://").map(|i| &url[i + 3..]).map(|rest| &rest[rest.find('/').unwrap_or(rest.len())..]).unwrap_or(url)
}

#[test]
fn chunked_uploads_follow_each_location_and_resume_from_the_registrys_range() {
    let Some(reg) = TestRegistry::start(RegistryOptions::default()) else { return };
    // A layer of more than two 8 MiB chunks. PATCH 2 reaches the registry with only
    // half its bytes (its Range says so); PATCH 4 is answered 416 (out of step).
    let proxy = Proxy::start(&format!("http://{}", reg.host()), Lies { short_patch: Some(2), refuse_patch: Some(4), ..Default::default() });
    let root = TestRoot::new();
    let name = format!("{}/big:1", proxy.host());
    let Some(id) = big_image(&root, &name, 20) else { return };
    proxy.clear();
    let out = cmd(&root, "ci-push").arg(&name).assert().success();
    let pushed = json_lines(&out.get_output().stdout).remove(0);
    assert_eq!(pushed["uploaded"], 2);

    // The layer's upload session (the config follows, monolithic), request by request.
    let seen = proxy.seen();
    let start = seen.iter().position(|s| s.method == "POST").expect("an upload was started");
    let end = start + seen[start..].iter().position(|s| s.method == "PUT").expect("the upload was closed");
    let session: &[Seen] = &seen[start..=end];
    let steps: Vec<(&str, u16)> = session.iter().map(|s| (s.method.as_str(), s.status)).collect();
    assert_eq!(
        steps,
        [("POST", 202), ("PATCH", 202), ("PATCH", 202), ("PATCH", 202), ("PATCH", 416), ("GET", 204), ("PATCH", 202), ("PUT", 201)],
        "{session:#?}"
    );
    // Each request goes to the Location the one before it was answered with (a 416
    // has none: the client asks that same URL where the upload stands), and the
    // registry answers a new Location every time.
    let mut expect = session[0].location.clone().unwrap();
    for s in &session[1..] {
        assert!(s.target.starts_with(target_of(&expect)), "{} {} does not follow {expect}", s.method, s.target);
        if let Some(l) = &s.location {
            if s.method == "PATCH" {
                assert_ne!(l, &expect, "a new Location");
            }
            expect = l.clone();
        }
    }
    assert!(session.last().unwrap().target.contains("digest=sha256%3A") || session.last().unwrap().target.contains("digest=sha256:"), "{:?}", session.last());
    // The bytes sent: chunk after chunk, the rest of chunk 2 from where the registry's
    // Range ended, chunk 3 again from what the upload's status says it holds.
    const M: u64 = 8 << 20;
    let ranges: Vec<String> = session.iter().filter(|s| s.method == "PATCH").map(|s| s.content_range.clone().unwrap()).collect();
    let from = |r: &str| r.split('-').next().unwrap().parse::<u64>().unwrap();
    assert_eq!(&ranges[..3], [format!("0-{}", M - 1), format!("{M}-{}", 2 * M - 1), format!("{}-{}", M + M / 2, 2 * M - 1)]);
    assert_eq!((from(&ranges[3]), from(&ranges[4])), (2 * M, 2 * M));
    assert_eq!(ranges[3], ranges[4]);
    assert_eq!(session[2].range.as_deref(), Some(format!("0-{}", M + M / 2 - 1).as_str()), "the registry kept half of chunk 2");
    assert_eq!(session[5].range.as_deref(), Some(format!("0-{}", 2 * M - 1).as_str()), "the upload's status");

    // What the registry assembled is the layer: it checked the digest at the PUT, and a pull gets the image back.
    let fresh = TestRoot::new();
    let p = json_lines(&cmd(&fresh, "ci-pull").arg(&name).assert().success().get_output().stdout).remove(0);
    assert_eq!((p["id"].as_str(), &p["digest"]), (Some(id.as_str()), &pushed["digest"]));
    cmd(&fresh, "ci-build").arg("fsck").assert().success();
}

#[test]
fn a_mount_that_falls_back_to_an_upload_uploads_at_its_location() {
    let Some((_reg, proxy, _root)) = setup() else { return };
    let root = TestRoot::new();
    let first = format!("{}/first:1", proxy.host());
    if root.busybox_image(&first).is_none() {
        return;
    }
    cmd(&root, "ci-push").arg(&first).assert().success();
    // The registry cannot mount (202: an upload opened instead), and names the
    // session relative to the POST's path (`UUID?_state=…`), not to /v2/.
    proxy.set_lies(Lies { refuse_mounts: true, path_relative_location: true, ..Default::default() });
    proxy.clear();
    let second = format!("{}/second:1", proxy.host());
    let out = cmd(&root, "ci-push").args([&first, &second]).assert().success();
    assert_eq!(json_lines(&out.get_output().stdout)[0]["uploaded"], 2, "nothing was mounted, both blobs were sent");
    let seen = proxy.seen();
    let posts: Vec<&Seen> = seen.iter().filter(|s| s.method == "POST").collect();
    assert_eq!(posts.len(), 2, "one mount attempt per blob, and its session used for the upload (no other POST): {seen:#?}");
    for p in &posts {
        assert!(p.target.contains("mount=") && p.target.contains("from=first") && p.status == 202, "{p:?}");
        assert!(p.location.as_deref().is_some_and(|l| !l.starts_with('/') && !l.contains("://")), "a path-relative Location: {p:?}");
    }
    let uploads: Vec<&Seen> = seen.iter().filter(|s| matches!(s.method.as_str(), "PATCH" | "PUT" | "DELETE") && !s.target.contains("/manifests/")).collect();
    assert!(uploads.iter().any(|s| s.method == "PUT"), "{seen:#?}");
    for u in &uploads {
        assert!(u.target.starts_with("/v2/second/blobs/uploads/") && (200..300).contains(&u.status), "{u:?}");
    }
    assert!(seen.iter().all(|s| s.status != 404 || s.method == "HEAD"), "a request went astray: {seen:#?}");
    proxy.set_lies(Lies::default());
    let p = json_lines(&cmd(&TestRoot::new(), "ci-pull").arg(&second).assert().success().get_output().stdout).remove(0);
    assert_eq!(p["digest"], json_lines(&out.get_output().stdout)[0]["digest"]);
}
