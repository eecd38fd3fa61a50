//! Credentials and TLS against the real registry: htpasswd Basic auth with
//! docker's config.json and credential helpers (`credsStore`, `credHelpers`),
//! HTTPS with a CA of the test's own (certificates verified; trusted through
//! `--cert-dir` like skopeo's or docker's /etc/docker/certs.d; `--insecure`
//! skips verification), and plain HTTP off loopback only with `--insecure`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ci_tests::registry::{cmd, docker_config_dir, run_skopeo, skopeo, RegistryOptions, TestRegistry};
use ci_tests::{json_lines, TestRoot};
use serde_json::Value;

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).to_string()
}

fn images(root: &TestRoot) -> usize {
    json_lines(&cmd(root, "ci-build").args(["ls", "--format", "json"]).assert().success().get_output().stdout).len()
}

#[test]
fn basic_auth_login_push_pull_logout() {
    let Some(reg) = TestRegistry::start(RegistryOptions { htpasswd: Some(("ci".into(), "s3cret-pw".into())), tls: false, ..Default::default() }) else { return };
    if !skopeo() {
        return;
    }
    let root = TestRoot::new();
    let name = format!("{}/private/bb:1", reg.host());
    if root.busybox_image(&name).is_none() {
        return;
    }
    // No credentials: a clear refusal that says how to log in.
    let e = cmd(&root, "ci-push").arg(&name).assert().failure();
    let msg = stderr(&e);
    assert!(msg.contains("401") && msg.contains("login"), "{msg}");
    let fresh = TestRoot::new();
    let e = cmd(&fresh, "ci-pull").arg(&name).assert().failure();
    assert!(stderr(&e).contains("login"), "{}", stderr(&e));
    assert_eq!(images(&fresh), 0, "a refused pull stores nothing");

    // A wrong password is refused by login, and nothing is saved.
    let e = cmd(&root, "ci-push").args(["login", "-u", "ci", "--password-stdin", &reg.host()]).write_stdin("wrong\n").assert().failure();
    assert!(stderr(&e).contains("wrong user name or password"), "{}", stderr(&e));
    assert!(!docker_config_dir(&root).join("config.json").exists());

    let out = cmd(&root, "ci-push").args(["login", "-u", "ci", "--password-stdin", &reg.host()]).write_stdin("s3cret-pw\n").assert().success();
    let o = &json_lines(&out.get_output().stdout)[0];
    assert_eq!((o["kind"].as_str(), o["id"].as_str(), o["username"].as_str()), (Some("credentials"), Some(reg.host().as_str()), Some("ci")));
    let cfg_path = docker_config_dir(&root).join("config.json");
    let cfg: Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    assert!(cfg["auths"][reg.host()]["auth"].is_string(), "{cfg}");
    assert_eq!(std::fs::metadata(&cfg_path).unwrap().permissions().mode() & 0o077, 0, "credentials are private");
    // The password never reaches stdout or stderr, not even with --explain.
    let out = cmd(&root, "ci-push").args(["--explain", &name]).assert().success();
    let all = format!("{}{}", String::from_utf8_lossy(&out.get_output().stdout), stderr(&out));
    assert!(!all.contains("s3cret-pw") && !all.contains("Basic Y2k"), "{all}");

    // The same config.json serves a pull into another store.
    std::fs::create_dir_all(docker_config_dir(&fresh)).unwrap();
    std::fs::copy(&cfg_path, docker_config_dir(&fresh).join("config.json")).unwrap();
    let p = json_lines(&cmd(&fresh, "ci-pull").arg(&name).assert().success().get_output().stdout);
    assert_eq!(p.len(), 1);
    // skopeo, with the same credentials, reads what we pushed.
    let sk: Value = serde_json::from_str(&run_skopeo(&["inspect", "--tls-verify=false", "--creds", "ci:s3cret-pw", &format!("docker://{name}")])).unwrap();
    assert_eq!(sk["Digest"], p[0]["digest"]);

    let out = cmd(&root, "ci-push").args(["logout", &reg.host()]).assert().success();
    assert_eq!(json_lines(&out.get_output().stdout)[0]["removed"], true);
    cmd(&root, "ci-push").arg(&name).assert().failure();
}

/// A credential helper speaking docker's protocol, keeping its secrets in a file.
const HELPER: &str = r#"#!/bin/sh
store="$(dirname "$0")/helper-store.json"
case "$1" in
  store) cat > "$store" ;;
  get) read -r url; if [ -s "$store" ]; then cat "$store"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) read -r url; if [ -s "$store" ]; then rm -f "$store"; else echo "credentials not found in native keychain"; exit 1; fi ;;
esac
"#;

/// `docker-credential-citest` in a directory of the test; returns it and a
/// `$PATH` that finds it first.
fn install_helper(root: &TestRoot) -> (PathBuf, String) {
    let bin = root.path().join("helper-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-citest");
    std::fs::write(&helper, HELPER).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    (bin, path)
}

#[test]
fn credential_helper_holds_the_secret() {
    let Some(reg) = TestRegistry::start(RegistryOptions { htpasswd: Some(("ci".into(), "pw2".into())), tls: false, ..Default::default() }) else { return };
    let root = TestRoot::new();
    let name = format!("{}/bb:1", reg.host());
    if root.busybox_image(&name).is_none() {
        return;
    }
    let (bin, path) = install_helper(&root);
    std::fs::create_dir_all(docker_config_dir(&root)).unwrap();
    std::fs::write(docker_config_dir(&root).join("config.json"), r#"{"credsStore":"citest"}"#).unwrap();

    let out = cmd(&root, "ci-push").env("PATH", &path).args(["login", "-u", "ci", "--password-stdin", &reg.host()]).write_stdin("pw2\n").assert().success();
    assert!(json_lines(&out.get_output().stdout)[0]["stored_in"].as_str().unwrap().contains("docker-credential-citest"));
    let kept: Value = serde_json::from_slice(&std::fs::read(bin.join("helper-store.json")).unwrap()).unwrap();
    assert_eq!((kept["ServerURL"].as_str(), kept["Username"].as_str(), kept["Secret"].as_str()), (Some(reg.host().as_str()), Some("ci"), Some("pw2")));
    let cfg = std::fs::read_to_string(docker_config_dir(&root).join("config.json")).unwrap();
    assert!(!cfg.contains("auths"), "the secret stays in the helper: {cfg}");

    cmd(&root, "ci-push").env("PATH", &path).arg(&name).assert().success();
    cmd(&root, "ci-push").env("PATH", &path).args(["logout", &reg.host()]).assert().success();
    assert!(!bin.join("helper-store.json").exists());
    let e = cmd(&root, "ci-push").env("PATH", &path).arg(&name).assert().failure();
    assert!(stderr(&e).contains("401"), "{}", stderr(&e));
}

#[test]
fn cred_helpers_name_a_helper_per_registry() {
    let Some(reg) = TestRegistry::start(RegistryOptions { htpasswd: Some(("ci".into(), "pw3".into())), ..Default::default() }) else { return };
    let root = TestRoot::new();
    let name = format!("{}/per/bb:1", reg.host());
    if root.busybox_image(&name).is_none() {
        return;
    }
    let (bin, path) = install_helper(&root);
    // The registry's own helper wins over credsStore, whose helper does not even exist
    // (using it would fail); another registry's entry is not this one's.
    let config = serde_json::json!({
        "credsStore": "absent-store",
        "credHelpers": { reg.host(): "citest", "127.0.0.1:1": "absent-too" }
    });
    std::fs::create_dir_all(docker_config_dir(&root)).unwrap();
    std::fs::write(docker_config_dir(&root).join("config.json"), config.to_string()).unwrap();

    let out = cmd(&root, "ci-push").env("PATH", &path).args(["login", "-u", "ci", "--password-stdin", &reg.host()]).write_stdin("pw3\n").assert().success();
    assert_eq!(json_lines(&out.get_output().stdout)[0]["stored_in"], "credential helper docker-credential-citest");
    let kept: Value = serde_json::from_slice(&std::fs::read(bin.join("helper-store.json")).unwrap()).unwrap();
    assert_eq!((kept["ServerURL"].as_str(), kept["Username"].as_str(), kept["Secret"].as_str()), (Some(reg.host().as_str()), Some("ci"), Some("pw3")));
    let cfg: Value = serde_json::from_slice(&std::fs::read(docker_config_dir(&root).join("config.json")).unwrap()).unwrap();
    assert!(cfg.get("auths").is_none() && cfg["credHelpers"] == config["credHelpers"], "the secret stays in the helper, the config as it was: {cfg}");

    let pushed = json_lines(&cmd(&root, "ci-push").env("PATH", &path).arg(&name).assert().success().get_output().stdout);
    // Another store with the same config and helper pulls (the helper's `get`).
    let fresh = TestRoot::new();
    std::fs::create_dir_all(docker_config_dir(&fresh)).unwrap();
    std::fs::copy(docker_config_dir(&root).join("config.json"), docker_config_dir(&fresh).join("config.json")).unwrap();
    let p = json_lines(&cmd(&fresh, "ci-pull").env("PATH", &path).arg(&name).assert().success().get_output().stdout);
    assert_eq!(p[0]["digest"], pushed[0]["digest"]);
    // Without the helper on PATH the credentials cannot be had, and the error names the helper.
    let e = cmd(&TestRoot::new(), "ci-pull").env("DOCKER_CONFIG", docker_config_dir(&root)).arg(&name).assert().failure();
    assert!(stderr(&e).contains("docker-credential-citest"), "{}", stderr(&e));

    let out = cmd(&root, "ci-push").env("PATH", &path).args(["logout", &reg.host()]).assert().success();
    assert_eq!(json_lines(&out.get_output().stdout)[0]["removed"], true);
    assert!(!bin.join("helper-store.json").exists());
    let e = cmd(&root, "ci-push").env("PATH", &path).arg(&name).assert().failure();
    assert!(stderr(&e).contains("401"), "{}", stderr(&e));
}

#[test]
fn tls_with_a_private_ca() {
    let Some(reg) = TestRegistry::start(RegistryOptions { htpasswd: Some(("ci".into(), "tls-pw".into())), tls: true, ..Default::default() }) else { return };
    if !skopeo() {
        return;
    }
    let certs = reg.cert_dir.clone().unwrap();
    let root = TestRoot::new();
    let name = format!("{}/secure/bb:1", reg.host());
    if root.busybox_image(&name).is_none() {
        return;
    }
    // Our CA is not trusted by default: refused, with the way out.
    let e = cmd(&root, "ci-push").args(["login", "-u", "ci", "--password-stdin", &reg.host()]).write_stdin("tls-pw\n").assert().failure();
    let msg = stderr(&e);
    assert!(msg.contains("certificate") && msg.contains("--cert-dir") && msg.contains("/etc/docker/certs.d/"), "{msg}");
    let cd = certs.to_str().unwrap();
    cmd(&root, "ci-push").args(["login", "--cert-dir", cd, "-u", "ci", "--password-stdin", &reg.host()]).write_stdin("tls-pw\n").assert().success();
    let pushed = json_lines(&cmd(&root, "ci-push").args(["--cert-dir", cd, &name]).assert().success().get_output().stdout);
    let sk: Value = serde_json::from_str(&run_skopeo(&["inspect", "--cert-dir", cd, "--creds", "ci:tls-pw", &format!("docker://{name}")])).unwrap();
    assert_eq!(sk["Digest"], pushed[0]["digest"]);
    // --insecure skips verification (and nothing else).
    let fresh = TestRoot::new();
    std::fs::create_dir_all(docker_config_dir(&fresh)).unwrap();
    std::fs::copy(docker_config_dir(&root).join("config.json"), docker_config_dir(&fresh).join("config.json")).unwrap();
    let p = json_lines(&cmd(&fresh, "ci-pull").args(["--insecure", &name]).assert().success().get_output().stdout);
    assert_eq!(p[0]["digest"], pushed[0]["digest"]);
}

#[test]
fn tls_trusted_through_docker_certs_d_or_unverified_with_insecure() {
    let Some(reg) = TestRegistry::start(RegistryOptions { tls: true, ..Default::default() }) else { return };
    let root = TestRoot::new();
    let name = format!("{}/certsd/bb:1", reg.host());
    if root.busybox_image(&name).is_none() {
        return;
    }
    let place = Path::new(ci_core::distribution::tls::CERTS_D).join(reg.host());
    let refused = |root: &TestRoot| {
        let e = cmd(root, "ci-push").arg(&name).assert().failure();
        let msg = stderr(&e);
        assert!(msg.contains("certificate") && msg.contains(&format!("{}/ca.crt", place.display())), "{msg}");
    };
    refused(&root);
    // docker's place for the registry's CA, found without any flag.
    let digest = {
        let trust = reg.trust_in_certs_d();
        assert_eq!(trust.file, place.join("ca.crt"));
        let pushed = json_lines(&cmd(&root, "ci-push").arg(&name).assert().success().get_output().stdout);
        let p = json_lines(&cmd(&TestRoot::new(), "ci-pull").arg(&name).assert().success().get_output().stdout);
        assert_eq!(p[0]["digest"], pushed[0]["digest"]);
        pushed[0]["digest"].as_str().unwrap().to_string()
    };
    assert!(!place.exists(), "the test's CA is removed from {}", place.display());
    refused(&root);
    // --insecure: the certificate is not verified (docker's insecure registries); TLS is
    // still spoken (this registry has no plain HTTP).
    let other = format!("{}/insecure/bb:2", reg.host());
    let o = json_lines(&cmd(&root, "ci-push").args(["--insecure", &name, &other]).assert().success().get_output().stdout);
    assert_eq!(o[0]["digest"], digest.as_str());
    let p = json_lines(&cmd(&TestRoot::new(), "ci-pull").args(["--insecure", &other]).assert().success().get_output().stdout);
    assert_eq!(p[0]["digest"], digest.as_str());
}

#[test]
fn plain_http_off_loopback_needs_insecure() {
    if !ci_tests::privileged("a network namespace with an address of its own") {
        return;
    }
    // A registry on 10.231.7.1 (not loopback: docker's rule wants --insecure for plain
    // HTTP there), in a network namespace of the test's own. Namespaces belong to a
    // thread: one of its own enters it, and everything the test starts runs there.
    std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare a network namespace");
        for args in [&["link", "set", "lo", "up"][..], &["addr", "add", "10.231.7.1/32", "dev", "lo"]] {
            let st = std::process::Command::new("ip").args(args).status().expect("run ip");
            assert!(st.success(), "ip {args:?}");
        }
        let Some(reg) = TestRegistry::start(RegistryOptions { listen: Some(std::net::Ipv4Addr::new(10, 231, 7, 1)), ..Default::default() }) else { return };
        let root = TestRoot::new();
        let name = format!("{}/plain/bb:1", reg.host());
        if root.busybox_image(&name).is_none() {
            return;
        }
        let e = cmd(&root, "ci-push").arg(&name).assert().failure();
        assert!(stderr(&e).contains("a registry that serves plain HTTP needs --insecure"), "{}", stderr(&e));
        assert_eq!(reg.requests("PUT", "/"), 0, "nothing was sent");
        let pushed = json_lines(&cmd(&root, "ci-push").args(["--insecure", &name]).assert().success().get_output().stdout);
        assert_eq!(pushed[0]["uploaded"], 2);
        let e = cmd(&TestRoot::new(), "ci-pull").arg(&name).assert().failure();
        assert!(stderr(&e).contains("--insecure"), "{}", stderr(&e));
        let p = json_lines(&cmd(&TestRoot::new(), "ci-pull").args(["--insecure", &name]).assert().success().get_output().stdout);
        assert_eq!(p[0]["digest"], pushed[0]["digest"]);
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}
