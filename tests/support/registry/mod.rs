//! A real registry for the end-to-end suites: the CNCF distribution
//! registry (Debian's `docker-registry`) on 127.0.0.1, on a free port, with
//! a storage directory of its own, optionally behind htpasswd Basic auth
//! and TLS (a CA made for the test with the `openssl` CLI). It is killed
//! and its directory removed on drop, pass or fail.
//!
//! [`proxy`] puts a programmable liar between a client and that registry.

pub mod proxy;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Require Basic auth with this user and password (htpasswd, bcrypt).
    pub htpasswd: Option<(String, String)>,
    /// Serve HTTPS with a certificate from a fresh test CA.
    pub tls: bool,
    /// Listen on this address instead of 127.0.0.1 (one the test gave a
    /// network namespace of its own).
    pub listen: Option<std::net::Ipv4Addr>,
}

pub struct TestRegistry {
    child: Child,
    dir: tempfile::TempDir,
    addr: std::net::Ipv4Addr,
    pub port: u16,
    /// A directory holding `ca.crt` (for `--cert-dir`), when TLS is on.
    pub cert_dir: Option<PathBuf>,
}

fn have(prog: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {prog}")]).stdout(Stdio::null()).status().map(|s| s.success()).unwrap_or(false)
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().expect("local addr").port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`ca.crt`) and a server certificate (`server.crt`, `server.key`) for
/// 127.0.0.1 and localhost, signed by it, in `dir`; returns `dir/certs.d`.
pub fn make_certs(dir: &Path) -> PathBuf {
    let o = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(dir));
    o(&["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=ci test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    o(&["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n").unwrap();
    o(&["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf"]);
    let certs = dir.join("certs.d");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(dir.join("ca.crt"), certs.join("ca.crt")).unwrap();
    certs
}

impl TestRegistry {
    /// Start a registry; `None` (after a printed skip, or a panic under
    /// CITEST_STRICT=1) when `docker-registry` is not installed.
    pub fn start(opts: RegistryOptions) -> Option<TestRegistry> {
        for prog in ["docker-registry", "htpasswd", "openssl"] {
            if !have(prog) {
                crate::skip(&format!("{prog} is not installed (apt-get install docker-registry apache2-utils openssl)"));
                return None;
            }
        }
        let dir = tempfile::Builder::new().prefix("ci-registry-").tempdir().expect("temp dir");
        let mut extra = String::new();
        if let Some((user, pass)) = &opts.htpasswd {
            let out = Command::new("htpasswd").args(["-Bbn", user, pass]).output().expect("run htpasswd");
            assert!(out.status.success());
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            extra.push_str(&format!("auth:\n  htpasswd:\n    realm: ci-test\n    path: {}\n", dir.path().join("htpasswd").display()));
        }
        let cert_dir = opts.tls.then(|| make_certs(dir.path()));
        let addr = opts.listen.unwrap_or(std::net::Ipv4Addr::LOCALHOST);
        for _attempt in 0..5 {
            let port = TcpListener::bind((addr, 0)).expect("bind a free port").local_addr().expect("local addr").port();
            let mut http = format!("http:\n  addr: {addr}:{port}\n  secret: ci-test-secret\n");
            if opts.tls {
                http.push_str(&format!("  tls:\n    certificate: {}\n    key: {}\n", dir.path().join("server.crt").display(), dir.path().join("server.key").display()));
            }
            let config = format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n{http}{extra}",
                dir.path().join("data").display()
            );
            let cfg = dir.path().join("config.yml");
            std::fs::write(&cfg, config).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // it died: most likely another test took the port meanwhile
                }
                if TcpStream::connect((addr, port)).is_ok() {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if up {
                return Some(TestRegistry { child, dir, addr, port, cert_dir });
            }
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("registry on port {port} did not start: {}", std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default());
        }
        panic!("docker-registry did not start in 5 attempts")
    }

    /// `127.0.0.1:PORT` (or the address it was told to listen on).
    pub fn host(&self) -> String {
        format!("{}:{}", self.addr, self.port)
    }

    /// Trust the test CA the way docker does, in `/etc/docker/certs.d/HOST:PORT/ca.crt`
    /// (ci has no override of that directory; the port is this registry's own, so no
    /// other test uses the same one). Removed on drop, with the directories it made.
    pub fn trust_in_certs_d(&self) -> CertsD {
        let ca = self.cert_dir.as_ref().expect("a TLS registry").join("ca.crt");
        let dir = Path::new(ci_core::distribution::tls::CERTS_D).join(self.host());
        let made: Vec<PathBuf> = dir.ancestors().take_while(|d| !d.exists()).map(Path::to_path_buf).collect();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let guard = CertsD { file: dir.join("ca.crt"), made };
        std::fs::copy(&ca, &guard.file).unwrap_or_else(|e| panic!("copy the CA to {}: {e}", guard.file.display()));
        guard
    }

    /// The registry's own log (its access log counts the requests it served).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many requests of a method whose path contains `needle` the registry served.
    pub fn requests(&self, method: &str, needle: &str) -> usize {
        let prefix = format!("\"{method} ");
        self.log().lines().filter(|l| l.contains(&prefix) && l.split(&prefix).nth(1).is_some_and(|r| r.split(' ').next().unwrap_or("").contains(needle))).count()
    }

    /// The registry's storage directory.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

/// A CA placed in /etc/docker/certs.d by [`TestRegistry::trust_in_certs_d`].
pub struct CertsD {
    pub file: PathBuf,
    /// The directories it created, deepest first.
    made: Vec<PathBuf>,
}

impl Drop for CertsD {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        // Only if empty: another test's registry may have its own directory beside ours.
        for d in &self.made {
            let _ = std::fs::remove_dir(d);
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tool command for registry tests: the test's store root, and docker's
/// config.json in a directory of the test (never the user's own credentials).
pub fn cmd(root: &crate::TestRoot, tool: &str) -> assert_cmd::Command {
    let mut c = root.cmd(tool);
    c.env("DOCKER_CONFIG", docker_config_dir(root));
    c
}

/// `$DOCKER_CONFIG` of a test.
pub fn docker_config_dir(root: &crate::TestRoot) -> PathBuf {
    root.path().join("docker-config")
}

/// Whether skopeo (the peer used as an oracle) is here; skips (or fails under CITEST_STRICT) if not.
pub fn skopeo() -> bool {
    have("skopeo") || crate::skip("skopeo is not installed (apt-get install skopeo)")
}

/// Run skopeo; panics with its stderr on failure; returns stdout.
pub fn run_skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo").args(args).output().expect("run skopeo");
    assert!(out.status.success(), "skopeo {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}
