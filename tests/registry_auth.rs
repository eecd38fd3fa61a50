//! Credentials and TLS against the real registry: htpasswd Basic auth with
//! docker's config.json and a credential helper, and HTTPS with a CA of the
//! test's own (certificates verified; `--cert-dir` like skopeo's).

use std::os::unix::fs::PermissionsExt;

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
    let Some(reg) = TestRegistry::start(RegistryOptions { htpasswd: Some(("ci".into(), "s3cret-pw".into())), tls: false }) else { return };
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

#[test]
fn credential_helper_holds_the_secret() {
    let Some(reg) = TestRegistry::start(RegistryOptions { htpasswd: Some(("ci".into(), "pw2".into())), tls: false }) else { return };
    let root = TestRoot::new();
    let name = format!("{}/bb:1", reg.host());
    if root.busybox_image(&name).is_none() {
        return;
    }
    let bin = root.path().join("helper-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-citest");
    std::fs::write(&helper, HELPER).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(docker_config_dir(&root)).unwrap();
    std::fs::write(docker_config_dir(&root).join("config.json"), r#"{"credsStore":"citest"}"#).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());

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
fn tls_with_a_private_ca() {
    let Some(reg) = TestRegistry::start(RegistryOptions { htpasswd: Some(("ci".into(), "tls-pw".into())), tls: true }) else { return };
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
