//! Registry credentials where docker keeps them, so `docker login` and
//! `ci-push login` share them: `$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`.
//!
//! ```json
//! { "auths": { "127.0.0.1:5000": { "auth": "base64(user:password)" } },
//!   "credsStore": "pass",
//!   "credHelpers": { "registry.example.com": "ecr-login" } }
//! ```
//!
//! A credential helper is a program `docker-credential-NAME` speaking
//! docker's protocol: `get` reads a server URL on stdin and prints
//! `{"ServerURL","Username","Secret"}`; `store` reads that object; `erase`
//! reads the server URL. `credHelpers` names one per registry, `credsStore`
//! one for all. Credentials are looked up by the exact registry host
//! (with its port): those of one registry are never sent to another.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::reference::{DEFAULT_DOMAIN, DOCKER_HUB_REGISTRY, LEGACY_DEFAULT_DOMAIN};

/// The key docker uses for Docker Hub in config.json and with helpers.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// A username docker's helpers use to mean "the secret is an identity (refresh) token".
const TOKEN_USERNAME: &str = "<token>";
/// Largest config.json we read (it holds a few credentials, not data).
const MAX_CONFIG: u64 = 4 << 20;

/// A user name and a secret for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub secret: String,
    /// The secret is an OAuth2 refresh token (docker's `identitytoken`), not a password.
    pub identity_token: bool,
}

impl std::fmt::Debug for Credentials {
    // Never print a secret, even in a debug dump (CVE-2019-13509).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials {{ username: {:?}, secret: <hidden> }}", self.username)
    }
}

/// Where credentials were found or stored, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    ConfigFile(PathBuf),
    Helper(String),
}

impl std::fmt::Display for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::ConfigFile(p) => write!(f, "{}", p.display()),
            Store::Helper(h) => write!(f, "credential helper docker-credential-{h}"),
        }
    }
}

/// docker's config.json, kept as a JSON value so that the fields we do not
/// know survive a rewrite.
pub struct DockerConfig {
    path: PathBuf,
    value: Value,
}

/// The config.json docker uses here.
pub fn config_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("config.json");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker").join("config.json")
}

/// The name under which a registry host's credentials are kept (docker's convention).
pub fn server_key(host: &str) -> String {
    if is_docker_hub(host) {
        DOCKER_HUB_KEY.to_string()
    } else {
        host.to_string()
    }
}

fn is_docker_hub(host: &str) -> bool {
    [DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN, DOCKER_HUB_REGISTRY].contains(&host)
}

/// docker's `ConvertToHostname`: `https://host:5000/v1/` → `host:5000`.
fn key_host(key: &str) -> &str {
    let k = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

impl DockerConfig {
    pub fn load() -> Result<DockerConfig> {
        DockerConfig::load_from(config_path())
    }

    pub fn load_from(path: PathBuf) -> Result<DockerConfig> {
        let value = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
            Err(e) => return Err(Error::io("stat", &path, e)),
            Ok(m) if m.len() > MAX_CONFIG => {
                return Err(Error::invalid(format!("{} is larger than {MAX_CONFIG} bytes; it is not a docker config", path.display())))
            }
            Ok(_) => {
                let data = std::fs::read(&path).ctx("read", &path)?;
                let v: Value = serde_json::from_slice(&data).map_err(|e| {
                    Error::invalid(format!("{} is not valid JSON: {e}", path.display()))
                        .hint("fix or remove the file; it is docker's credential store")
                })?;
                if !v.is_object() {
                    return Err(Error::invalid(format!("{}: expected a JSON object", path.display())));
                }
                v
            }
        };
        Ok(DockerConfig { path, value })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The helper that holds this host's credentials, if one is configured.
    fn helper_for(&self, host: &str) -> Option<String> {
        let key = server_key(host);
        if let Some(helpers) = self.value.get("credHelpers").and_then(Value::as_object) {
            for (k, v) in helpers {
                if (k == &key || key_host(k) == host || (is_docker_hub(host) && is_docker_hub(key_host(k)))) && v.is_string() {
                    return v.as_str().map(str::to_string);
                }
            }
        }
        self.value.get("credsStore").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
    }

    /// The `auths` entry key for a host, if there is one.
    fn auths_key(&self, host: &str) -> Option<String> {
        let auths = self.value.get("auths")?.as_object()?;
        let key = server_key(host);
        if auths.contains_key(&key) {
            return Some(key);
        }
        auths
            .keys()
            .find(|k| {
                let h = key_host(k);
                h == host || (is_docker_hub(host) && is_docker_hub(h))
            })
            .cloned()
    }

    /// The credentials for a registry host, if any are configured.
    pub fn get(&self, host: &str) -> Result<Option<(Credentials, Store)>> {
        if let Some(helper) = self.helper_for(host) {
            return Ok(helper_get(&helper, &server_key(host))?.map(|c| (c, Store::Helper(helper))));
        }
        let Some(key) = self.auths_key(host) else { return Ok(None) };
        let entry = &self.value["auths"][&key];
        let bad = |why: &str| Error::invalid(format!("{}: auths entry {key:?}: {why}", self.path.display()));
        if let Some(tok) = entry.get("identitytoken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            let username = entry.get("username").and_then(Value::as_str).unwrap_or(TOKEN_USERNAME).to_string();
            return Ok(Some((
                Credentials { username, secret: tok.to_string(), identity_token: true },
                Store::ConfigFile(self.path.clone()),
            )));
        }
        let (username, secret) = if let Some(auth) = entry.get("auth").and_then(Value::as_str).filter(|a| !a.is_empty()) {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad("\"auth\" is not base64"))?;
            let s = String::from_utf8(raw).map_err(|_| bad("\"auth\" is not UTF-8"))?;
            let (u, p) = s.split_once(':').ok_or_else(|| bad("\"auth\" is not base64 of user:password"))?;
            (u.to_string(), p.to_string())
        } else {
            match (entry.get("username").and_then(Value::as_str), entry.get("password").and_then(Value::as_str)) {
                (Some(u), Some(p)) => (u.to_string(), p.to_string()),
                _ => return Ok(None),
            }
        };
        Ok(Some((Credentials { username, secret, identity_token: false }, Store::ConfigFile(self.path.clone()))))
    }

    /// Save credentials for a host: in its helper if one is configured, else in config.json.
    pub fn store(&mut self, host: &str, creds: &Credentials) -> Result<Store> {
        if let Some(helper) = self.helper_for(host) {
            helper_store(&helper, &server_key(host), creds)?;
            return Ok(Store::Helper(helper));
        }
        let key = self.auths_key(host).unwrap_or_else(|| server_key(host));
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", creds.username, creds.secret));
        let obj = self.value.as_object_mut().expect("config is an object");
        let auths = obj.entry("auths").or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        auths.as_object_mut().expect("auths is an object").insert(key, json!({ "auth": auth }));
        self.save()?;
        Ok(Store::ConfigFile(self.path.clone()))
    }

    /// Forget a host's credentials; returns whether there were any.
    pub fn erase(&mut self, host: &str) -> Result<bool> {
        let mut found = false;
        if let Some(helper) = self.helper_for(host) {
            found |= helper_erase(&helper, &server_key(host))?;
        }
        if let Some(key) = self.auths_key(host) {
            if let Some(auths) = self.value.get_mut("auths").and_then(Value::as_object_mut) {
                auths.remove(&key);
            }
            self.save()?;
            found = true;
        }
        Ok(found)
    }

    fn save(&self) -> Result<()> {
        let dir = self.path.parent().expect("config.json has a directory");
        fsutil::mkdir_all(dir, 0o700)?;
        let mut data = serde_json::to_vec_pretty(&self.value).expect("JSON values serialise");
        data.push(b'\n');
        fsutil::write_atomic(&self.path, &data)?;
        // write_atomic makes a 0600 file: secrets stay private.
        Ok(())
    }
}

fn helper_command(helper: &str) -> String {
    format!("docker-credential-{helper}")
}

/// Run `docker-credential-NAME VERB` with `input` on stdin.
fn run_helper(helper: &str, verb: &str, input: &[u8]) -> Result<(bool, String)> {
    if helper.is_empty() || !helper.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return Err(Error::invalid(format!("credential helper name {helper:?} is not a plain program name")));
    }
    let prog = helper_command(helper);
    let mut child = Command::new(&prog)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::io("run credential helper", &prog, e)
                .hint(format!("install {prog}, or remove credsStore/credHelpers from {}", config_path().display()))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is reported by its status below.
        let _ = stdin.write_all(input);
    }
    let out = child.wait_with_output().ctx("wait for credential helper", &prog)?;
    let text = if out.stdout.is_empty() { &out.stderr } else { &out.stdout };
    Ok((out.status.success(), String::from_utf8_lossy(text).trim().to_string()))
}

fn helper_get(helper: &str, server: &str) -> Result<Option<Credentials>> {
    let (ok, out) = run_helper(helper, "get", server.as_bytes())?;
    if !ok {
        if out.contains("credentials not found") {
            return Ok(None);
        }
        return Err(Error::invalid(format!("{} get {server}: {out}", helper_command(helper))));
    }
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let r: Reply = serde_json::from_str(&out)
        .map_err(|e| Error::invalid(format!("{} get: its answer is not the helper protocol's JSON: {e}", helper_command(helper))))?;
    if r.secret.is_empty() {
        return Ok(None);
    }
    let identity_token = r.username == TOKEN_USERNAME;
    Ok(Some(Credentials { username: r.username, secret: r.secret, identity_token }))
}

fn helper_store(helper: &str, server: &str, c: &Credentials) -> Result<()> {
    let input = json!({ "ServerURL": server, "Username": c.username, "Secret": c.secret }).to_string();
    let (ok, out) = run_helper(helper, "store", input.as_bytes())?;
    if !ok {
        return Err(Error::invalid(format!("{} store {server}: {out}", helper_command(helper))));
    }
    Ok(())
}

fn helper_erase(helper: &str, server: &str) -> Result<bool> {
    let (ok, out) = run_helper(helper, "erase", server.as_bytes())?;
    if !ok {
        if out.contains("credentials not found") {
            return Ok(false);
        }
        return Err(Error::invalid(format!("{} erase {server}: {out}", helper_command(helper))));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> (tempfile::TempDir, DockerConfig) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, json).unwrap();
        let c = DockerConfig::load_from(p).unwrap();
        (dir, c)
    }

    #[test]
    fn reads_docker_auths_by_exact_host() {
        let (_d, c) = config(r#"{"auths":{"127.0.0.1:5000":{"auth":"dTpw"},"https://index.docker.io/v1/":{"auth":"aHViOnMzY3IzdC1wdw=="}},"other":1}"#);
        let (cr, _) = c.get("127.0.0.1:5000").unwrap().unwrap();
        assert_eq!((cr.username.as_str(), cr.secret.as_str()), ("u", "p"));
        // Another port is another registry: its credentials are not these.
        assert!(c.get("127.0.0.1:5001").unwrap().is_none());
        let (hub, _) = c.get("docker.io").unwrap().unwrap();
        assert_eq!(hub.username, "hub");
        assert_eq!(c.get("registry-1.docker.io").unwrap().unwrap().0.secret, "s3cr3t-pw");
        assert!(!format!("{hub:?}").contains("s3cr3t"));
    }

    #[test]
    fn store_keeps_unknown_fields_and_erase_removes() {
        let (_d, mut c) = config(r#"{"auths":{},"psFormat":"table"}"#);
        let cr = Credentials { username: "me".into(), secret: "pw:with:colons".into(), identity_token: false };
        c.store("localhost:5000", &cr).unwrap();
        let again = DockerConfig::load_from(c.path().to_path_buf()).unwrap();
        assert_eq!(again.get("localhost:5000").unwrap().unwrap().0, cr);
        assert_eq!(again.value["psFormat"], "table");
        let mut again = again;
        assert!(again.erase("localhost:5000").unwrap());
        assert!(again.get("localhost:5000").unwrap().is_none());
        assert!(!again.erase("localhost:5000").unwrap());
    }
}
