//! ci-build end to end: real Dockerfiles built on a busybox base made from
//! the host's busybox-static, RUN steps in real containers, the results
//! read back from the store (and by skopeo and umoci).

mod build_common;
use build_common::*;
mod lifecycle_common;

fn setup(what: &str) -> Option<TestRoot> {
    if !privileged(what) {
        return None;
    }
    let root = TestRoot::new();
    busybox_base(&root)?;
    Some(root)
}

#[test]
fn copy_run_env_workdir_user() {
    let Some(root) = setup("building images") else { return };
    let ctx = context(
        &root,
        "app",
        &[
            ("Dockerfile", "FROM bb:1\nENV GREETING=hello NAME=\"the world\"\nWORKDIR /srv\nWORKDIR app\nCOPY src/ ./\nRUN echo \"$GREETING, $NAME from $(pwd)\" > out.txt && rm old.txt\nRUN mkdir -m 1777 /tmp\nUSER nobody\nRUN id -u > /tmp/uid\nRUN grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status > /tmp/status\nCMD [\"cat\", \"out.txt\"]\n"),
            ("src/a.txt", "a\n"),
            ("src/old.txt", "to be deleted by RUN\n"),
            ("src/sub/b.txt", "b\n"),
        ],
    );
    let out = build_ok(&root, &ctx, &["-t", "app:1"]);
    let id = out.id();
    assert!(id.starts_with("sha256:"));
    let fs = rootfs(&root, "app:1");
    assert_eq!(read(fs.path(), "srv/app/out.txt"), "hello, the world from /srv/app\n");
    assert_eq!(read(fs.path(), "srv/app/a.txt"), "a\n");
    assert_eq!(read(fs.path(), "srv/app/sub/b.txt"), "b\n");
    assert!(!fs.path().join("srv/app/old.txt").exists(), "a file deleted by RUN is gone (a whiteout)");
    assert_eq!(read(fs.path(), "tmp/uid"), "65534\n", "USER applies to the RUN after it");
    // RUN runs as docker build runs it: no_new_privs off (setuid programs work), seccomp on.
    assert_eq!(read(fs.path(), "tmp/status"), "NoNewPrivs:\t0\nSeccomp:\t2\n");
    let c = config(&root, "app:1");
    assert_eq!(c["config"]["WorkingDir"], "/srv/app");
    assert_eq!(c["config"]["User"], "nobody");
    assert_eq!(c["config"]["Cmd"], serde_json::json!(["cat", "out.txt"]));
    let env: Vec<String> = serde_json::from_value(c["config"]["Env"].clone()).unwrap();
    assert!(env.contains(&"GREETING=hello".to_string()) && env.contains(&"NAME=the world".to_string()), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("PATH=")));
    // History: one entry per instruction; metadata ones have no layer.
    let hist = c["history"].as_array().unwrap();
    assert!(hist.iter().any(|h| h["created_by"] == "ENV GREETING=hello NAME=\"the world\"" && h["empty_layer"] == true));
    let layers = hist.iter().filter(|h| h["empty_layer"] != true).count();
    assert_eq!(layers, c["rootfs"]["diff_ids"].as_array().unwrap().len());
    assert_clean(&root);
}

#[test]
fn cache_hits_and_a_one_file_change() {
    let Some(root) = setup("building images") else { return };
    let ctx = context(
        &root,
        "cache",
        &[
            ("Dockerfile", "FROM bb:1\nCOPY small/ /data/small/\nCOPY big /data/big\nRUN ls /data/small | wc -l > /count\nLABEL x=1\n"),
            ("big", &"x".repeat(1_000_000)),
            ("small/1", "1"),
            ("small/2", "2"),
        ],
    );
    let first = build_ok(&root, &ctx, &["-t", "c:1"]);
    let again = build_ok(&root, &ctx, &["-t", "c:1"]);
    assert_eq!(again.counts(), (4, 0), "an unchanged rebuild is all CACHED:\n{}", again.stderr);
    assert_eq!(first.id(), again.id(), "a fully cached build gives the same image");
    // One small file changes: that COPY and the steps after it run again...
    write(&ctx, "small/2", "two");
    let changed = build_ok(&root, &ctx, &["-t", "c:2"]);
    assert!(!changed.was_cached("COPY small/ /data/small/"), "{}", changed.stderr);
    assert!(!changed.was_cached("RUN ls /data/small"));
    assert_eq!(read(rootfs(&root, "c:2").path(), "data/small/2"), "two");
    // ...but the big file is not copied again: its layer is reused.
    assert!(changed.stderr.contains("reusing layer"), "{}", changed.stderr);
    let ids = |tag: &str| config(&root, tag)["rootfs"]["diff_ids"].as_array().unwrap().clone();
    let (one, two) = (ids("c:1"), ids("c:2"));
    assert_eq!(one.len(), two.len());
    let n = one.len();
    assert_eq!(one[n - 2], two[n - 2], "the COPY big layer is the same");
    assert_ne!(one[n - 3], two[n - 3], "the COPY small layer changed");
    // A change before the first COPY (not one of its files) keeps the COPY cached.
    write(&ctx, "unrelated", "x");
    assert!(build_ok(&root, &ctx, &["-t", "c:2"]).was_cached("COPY small/ /data/small/"));
    // --no-cache runs everything.
    let nc = build_ok(&root, &ctx, &["--no-cache", "-t", "c:3"]);
    assert_eq!(nc.counts().0, 0, "{}", nc.stderr);
    // prune clears the cache: the next build runs again.
    root.cmd("ci-build").args(["prune"]).assert().success();
    let after = build_ok(&root, &ctx, &["-t", "c:4"]);
    assert_eq!(after.counts().0, 0, "{}", after.stderr);
    assert_clean(&root);
}

#[test]
fn multi_stage_copy_from_and_target() {
    let Some(root) = setup("building images") else { return };
    let ctx = context(
        &root,
        "multi",
        &[(
            "Dockerfile",
            "FROM bb:1 AS build\nRUN mkdir /out && echo built > /out/app && echo extra > /out/extra\n\nFROM bb:1 AS unused\nRUN echo this stage must not run; exit 1\n\nFROM scratch\nCOPY --from=build /out/app /app\nCOPY --from=0 /out/extra /extra\nCOPY --from=bb:1 /bin/busybox /bin/\n",
        )],
    );
    let out = build_ok(&root, &ctx, &["-t", "m:1"]);
    assert!(!out.stderr.contains("must not run"), "a stage the target does not need is not built");
    out.assert_steps_end();
    let pos = |t: &str| out.stderr.find(t).unwrap_or_else(|| panic!("{t} not in {}", out.stderr));
    assert!(pos("[build 2/2] RUN") < pos("COPY --from=build"), "a stage used by another is built before the step using it");
    let fs = rootfs(&root, "m:1");
    assert_eq!(read(fs.path(), "app"), "built\n");
    assert_eq!(read(fs.path(), "extra"), "extra\n");
    assert!(fs.path().join("bin/busybox").is_file());
    let t = build_ok(&root, &ctx, &["--target", "build", "-t", "m:build"]);
    let fs = rootfs(&root, "m:build");
    assert!(fs.path().join("out/app").exists() && fs.path().join("bin/sh").exists());
    assert_ne!(t.id(), out.id());
    let bad = build(&root, &ctx, &["--target", "nope"]);
    assert!(!bad.ok && bad.stderr.contains("--target nope") && bad.stderr.contains("build, unused"), "{}", bad.stderr);
}

#[test]
fn dockerignore_with_exceptions() {
    let Some(root) = setup("building images") else { return };
    let ctx = context(
        &root,
        "ignore",
        &[
            ("Dockerfile", "FROM bb:1\nCOPY . /ctx/\n"),
            (".dockerignore", "# comment\n*.log\n!keep.log\nsecret\n**/*.tmp\nDockerfile\n.dockerignore\n"),
            ("a.log", "no"),
            ("keep.log", "yes"),
            ("secret/key", "no"),
            ("src/x.tmp", "no"),
            ("src/y.txt", "yes"),
        ],
    );
    build_ok(&root, &ctx, &["-t", "i:1"]);
    let fs = rootfs(&root, "i:1");
    let c = fs.path().join("ctx");
    assert!(c.join("keep.log").exists() && c.join("src/y.txt").exists());
    for gone in ["a.log", "secret", "src/x.tmp", "Dockerfile", ".dockerignore"] {
        assert!(!c.join(gone).exists(), "{gone} should be excluded");
    }
    // Naming an excluded file says so.
    write(&ctx, "Dockerfile", "FROM bb:1\nCOPY secret/key /k\n");
    let out = build(&root, &ctx, &[]);
    assert!(!out.ok && out.stderr.contains("excluded") && out.stderr.contains(".dockerignore"), "{}", out.stderr);
    write(&ctx, "Dockerfile", "FROM bb:1\nCOPY nothere /k\n");
    let out = build(&root, &ctx, &[]);
    assert!(!out.ok && out.stderr.contains("\"nothere\" does not exist in the build context"), "{}", out.stderr);
}

#[test]
fn onbuild_triggers_run_in_the_child() {
    let Some(root) = setup("building images") else { return };
    let base = context(&root, "onbuild-base", &[("Dockerfile", "FROM bb:1\nONBUILD COPY hello.txt /hello.txt\nONBUILD RUN echo triggered > /trigger\n")]);
    build_ok(&root, &base, &["-t", "ob:base"]);
    assert_eq!(config(&root, "ob:base")["config"]["OnBuild"].as_array().unwrap().len(), 2);
    let child = context(&root, "onbuild-child", &[("Dockerfile", "FROM ob:base\nRUN cat /trigger\n"), ("hello.txt", "hi\n")]);
    let out = build_ok(&root, &child, &["-t", "ob:child"]);
    assert!(out.stderr.contains("ONBUILD COPY hello.txt"), "{}", out.stderr);
    let fs = rootfs(&root, "ob:child");
    assert_eq!(read(fs.path(), "hello.txt"), "hi\n");
    assert_eq!(read(fs.path(), "trigger"), "triggered\n");
    assert!(config(&root, "ob:child")["config"].get("OnBuild").is_none(), "triggers are not inherited");
}

#[test]
fn config_carries_every_field() {
    let Some(root) = setup("building images") else { return };
    let ctx = context(
        &root,
        "meta",
        &[(
            "Dockerfile",
            "FROM bb:1\nMAINTAINER Jo <jo@example.com>\nLABEL a=1 \"b c\"=\"2 3\"\nEXPOSE 80 53/udp 8000-8001\nVOLUME /data\nSTOPSIGNAL SIGQUIT\nHEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD wget -q localhost || exit 1\nSHELL [\"/bin/sh\", \"-ec\"]\nENTRYPOINT [\"/bin/echo\"]\nCMD [\"hi\"]\n",
        )],
    );
    build_ok(&root, &ctx, &["--label", "from=flag", "-t", "meta:1"]);
    let c = config(&root, "meta:1");
    let cc = &c["config"];
    assert_eq!(c["author"], "Jo <jo@example.com>");
    assert_eq!(cc["Labels"]["a"], "1");
    assert_eq!(cc["Labels"]["b c"], "2 3");
    assert_eq!(cc["Labels"]["from"], "flag");
    for p in ["80/tcp", "53/udp", "8000/tcp", "8001/tcp"] {
        assert!(cc["ExposedPorts"].get(p).is_some(), "{p}");
    }
    assert!(cc["Volumes"].get("/data").is_some());
    assert_eq!(cc["StopSignal"], "SIGQUIT");
    assert_eq!(cc["Healthcheck"]["Test"], serde_json::json!(["CMD-SHELL", "wget -q localhost || exit 1"]));
    assert_eq!(cc["Healthcheck"]["Interval"], 30_000_000_000i64);
    assert_eq!(cc["Healthcheck"]["Retries"], 2);
    assert_eq!(cc["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(cc["Entrypoint"], serde_json::json!(["/bin/echo"]));
    assert_eq!(cc["Cmd"], serde_json::json!(["hi"]));
    assert_eq!(c["architecture"], "amd64");
    assert_eq!(c["os"], "linux");
}

#[test]
fn run_cache_mount_persists_between_builds() {
    let Some(root) = setup("building images") else { return };
    let df = |n: u32| format!("FROM bb:1\nRUN --mount=type=cache,target=/cache echo run{n} >> /cache/log && cat /cache/log > /seen\n");
    let ctx = context(&root, "cachemount", &[("Dockerfile", &df(1))]);
    build_ok(&root, &ctx, &["-t", "cm:1"]);
    write(&ctx, "Dockerfile", &df(2));
    build_ok(&root, &ctx, &["-t", "cm:2"]);
    let fs = rootfs(&root, "cm:2");
    assert_eq!(read(fs.path(), "seen"), "run1\nrun2\n", "the cache mount kept the first build's file");
    assert!(!fs.path().join("cache").exists(), "the mount point made for the step is not in the layer");
    assert_clean(&root);
}

#[test]
fn reproducible_digests_under_source_date_epoch() {
    if !privileged("building images") {
        return;
    }
    let mut ids = Vec::new();
    for i in 0..2 {
        let root = TestRoot::new();
        if busybox_base_env(&root, &[("SOURCE_DATE_EPOCH", "1700000000")]).is_none() {
            return;
        }
        let ctx = context(&root, "repro", &[("Dockerfile", "FROM bb:1\nCOPY f /f\nRUN echo made > /made && mkdir -p /var/x && touch /var/x/y\n"), ("f", "same\n")]);
        if i == 0 {
            // A build without the variable first: the cached rebuild below must still give the reproducible result.
            build_ok(&root, &ctx, &[]);
        }
        let out = build_env(&root, &ctx, &["-t", "r:1"], &[("SOURCE_DATE_EPOCH", "1700000000")]);
        assert!(out.ok, "{}", out.stderr);
        let v = json_lines(out.stdout.as_bytes());
        ids.push((v[0]["id"].as_str().unwrap().to_string(), v[0]["digest"].as_str().unwrap().to_string()));
    }
    assert_eq!(ids[0], ids[1], "two clean builds give the same image id and manifest digest");
}

#[test]
fn a_failing_run_names_command_status_and_output() {
    let Some(root) = setup("building images") else { return };
    let ctx = context(&root, "fail", &[("Dockerfile", "FROM bb:1\nCOPY f /f\nRUN echo first line; echo boom >&2; exit 3\n"), ("f", "x")]);
    let out = build(&root, &ctx, &["-t", "f:1"]);
    assert!(!out.ok);
    assert!(out.stderr.contains("Dockerfile:3"), "{}", out.stderr);
    assert!(out.stderr.contains("exit status 3"), "{}", out.stderr);
    assert!(out.stderr.contains("boom") && out.stderr.contains("first line"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    root.cmd("ci-build").args(["inspect", "f:1"]).assert().failure();
    assert_clean(&root);
    // The steps that succeeded are cached.
    let again = build(&root, &ctx, &["-t", "f:1"]);
    assert!(again.was_cached("COPY f /f"), "{}", again.stderr);
}

#[test]
fn copy_rules() {
    let Some(root) = setup("building images") else { return };
    let ctx = context(
        &root,
        "copy",
        &[
            (
                "Dockerfile",
                "FROM bb:1\nCOPY a.txt /file-as-named\nCOPY a.txt /into/\nCOPY *.txt /glob/\nCOPY a.txt b.txt /many/\nCOPY dir /dir-contents\nCOPY --chown=1000:1000 --chmod=640 a.txt /owned\nCOPY --chown=nobody dir /nob/\nCOPY <<EOF /inline.conf\nport=$PORT\nEOF\nARG PORT=80\nCOPY <<EOF /inline2.conf\nport=$PORT\nEOF\n",
            ),
            ("a.txt", "a"),
            ("b.txt", "b"),
            ("c.md", "c"),
            ("dir/inner/x", "x"),
        ],
    );
    build_ok(&root, &ctx, &["-t", "cp:1"]);
    let fs = rootfs(&root, "cp:1");
    let p = fs.path();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(read(p, "file-as-named"), "a");
    assert_eq!(read(p, "into/a.txt"), "a");
    assert!(p.join("glob/a.txt").exists() && p.join("glob/b.txt").exists() && !p.join("glob/c.md").exists());
    assert!(p.join("many/a.txt").exists() && p.join("many/b.txt").exists());
    assert_eq!(read(p, "dir-contents/inner/x"), "x", "a directory's contents are copied, not the directory");
    let m = std::fs::metadata(p.join("owned")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1000, 0o640));
    let m = std::fs::metadata(p.join("nob/inner/x")).unwrap();
    assert_eq!(m.uid(), 65534);
    let m = std::fs::metadata(p.join("a.txt").parent().unwrap().join("into/a.txt")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    assert_eq!(read(p, "inline.conf"), "port=\n");
    assert_eq!(read(p, "inline2.conf"), "port=80\n");
    // Several sources need a directory destination.
    write(&ctx, "Dockerfile", "FROM bb:1\nCOPY a.txt b.txt /notadir\n");
    let out = build(&root, &ctx, &[]);
    assert!(!out.ok && out.stderr.contains("must be a directory and end with a /"), "{}", out.stderr);
    write(&ctx, "Dockerfile", "FROM bb:1\nCOPY *.nothing /x/\n");
    let out = build(&root, &ctx, &[]);
    assert!(!out.ok && out.stderr.contains("matches no file"), "{}", out.stderr);
}

#[test]
fn add_archives_and_urls() {
    let Some(root) = setup("building images") else { return };
    // A gzip tar in the context is extracted.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o755);
    h.set_uid(7);
    h.set_cksum();
    b.append_data(&mut h, "pkg/run.sh", &b"echo 1"[..]).unwrap();
    let tar_bytes = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar_bytes).unwrap();
    let tgz = gz.finish().unwrap();
    let url = serve("/files/data.tar", tar_bytes.clone());
    let sum = ci_core::digest::Digest::sha256_of(&tar_bytes);
    let ctx = context(
        &root,
        "add",
        &[(
            "Dockerfile",
            &format!("FROM bb:1\nADD pkg.tgz /opt/\nADD pkg.tar.bz2 /bz/\nADD pkg.tar.xz /xz/\nADD --checksum={sum} {url}/files/data.tar /dl/\nADD {url}/files/data.tar /named.tar\n"),
        )],
    );
    std::fs::write(ctx.join("pkg.tgz"), &tgz).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    std::io::Write::write_all(&mut bz, &tar_bytes).unwrap();
    std::fs::write(ctx.join("pkg.tar.bz2"), bz.finish().unwrap()).unwrap();
    let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
    std::io::Write::write_all(&mut xz, &tar_bytes).unwrap();
    std::fs::write(ctx.join("pkg.tar.xz"), xz.finish().unwrap()).unwrap();
    build_ok(&root, &ctx, &["-t", "add:1"]);
    let fs = rootfs(&root, "add:1");
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(fs.path().join("opt/pkg/run.sh")).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (7, 0o755), "an archive keeps its owners and modes");
    assert_eq!(read(fs.path(), "bz/pkg/run.sh"), "echo 1", "bzip2 archives are extracted");
    assert_eq!(read(fs.path(), "xz/pkg/run.sh"), "echo 1", "xz archives are extracted");
    // A URL lands as one file (not extracted), mode 0600, time from Last-Modified.
    let m = std::fs::metadata(fs.path().join("dl/data.tar")).unwrap();
    assert_eq!((m.len(), m.mode() & 0o777, m.mtime()), (tar_bytes.len() as u64, 0o600, 784111777));
    assert!(fs.path().join("named.tar").is_file());
    // A wrong checksum fails.
    let bad = ci_core::digest::Digest::sha256_of(b"other");
    write(&ctx, "Dockerfile", &format!("FROM bb:1\nADD --checksum={bad} {url}/files/data.tar /dl/\n"));
    let out = build(&root, &ctx, &[]);
    assert!(!out.ok && out.stderr.contains("--checksum"), "{}", out.stderr);
    assert_clean(&root);
}

/// An HTTPS server for ADD: `openssl s_server -WWW` serving `dir`, killed on drop.
struct HttpsServer(std::process::Child);

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn add_https_urls_verify_the_server() {
    let Some(root) = setup("building images") else { return };
    if std::process::Command::new("openssl").arg("version").output().is_err() {
        ci_tests::skip("openssl is not installed (apt-get install openssl)");
        return;
    }
    let tls = root.path().join("tls");
    std::fs::create_dir(&tls).unwrap();
    ci_tests::registry::make_certs(&tls);
    std::fs::write(tls.join("hello.txt"), "over tls\n").unwrap();
    let port = ci_tests::registry::free_port();
    let child = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-WWW", "-accept", &format!("127.0.0.1:{port}"), "-cert", "server.crt", "-key", "server.key"])
        .current_dir(&tls)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _server = HttpsServer(child);
    let up = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(25));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "openssl s_server did not start");
    let ctx = context(&root, "https", &[("Dockerfile", &format!("FROM bb:1\nADD https://127.0.0.1:{port}/hello.txt /hello.txt\n"))]);
    // A server whose CA is not trusted is refused, with the way out.
    let out = build_env(&root, &ctx, &["-t", "tls:1"], &[("SSL_CERT_FILE", "/dev/null")]);
    assert!(!out.ok && out.stderr.contains("SSL_CERT_FILE"), "{}", out.stderr);
    // Trusting its CA, the file is downloaded.
    let ca = tls.join("ca.crt");
    let out = build_env(&root, &ctx, &["-t", "tls:1"], &[("SSL_CERT_FILE", ca.to_str().unwrap())]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(read(rootfs(&root, "tls:1").path(), "hello.txt"), "over tls\n");
    assert_clean(&root);
}

#[test]
fn context_and_dockerfile_from_stdin() {
    let Some(root) = setup("building images") else { return };
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [("Dockerfile", &b"FROM bb:1\nCOPY hello /hello\n"[..]), ("hello", &b"from a tar\n"[..])] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }
    let tar_bytes = b.into_inner().unwrap();
    let out = root.cmd("ci-build").args(["-t", "stdin:1", "-"]).write_stdin(tar_bytes).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read(rootfs(&root, "stdin:1").path(), "hello"), "from a tar\n");
    // -f -: the Dockerfile on stdin, the context a directory.
    let ctx = context(&root, "dfstdin", &[("f", "file\n")]);
    let out = root.cmd("ci-build").args(["-t", "stdin:2", "-f", "-"]).arg(&ctx).write_stdin("FROM bb:1\nCOPY f /f\n").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read(rootfs(&root, "stdin:2").path(), "f"), "file\n");
    // A plain Dockerfile as the context: no files.
    let out = root.cmd("ci-build").args(["-t", "stdin:3", "-"]).write_stdin("FROM bb:1\nRUN echo ok > /ok\n").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_clean(&root);
}

#[test]
fn parse_errors_name_file_and_line() {
    let Some(root) = setup("building images") else { return };
    let ctx = context(&root, "bad", &[("Dockerfile", "FROM bb:1\nRUNN make\n")]);
    let out = build(&root, &ctx, &[]);
    assert!(!out.ok && out.stderr.contains("Dockerfile:2: unknown instruction \"RUNN\" — did you mean RUN?"), "{}", out.stderr);
    assert_eq!(out.code, 2);
    write(&ctx, "Dockerfile", "FROM nosuchimage:1\n");
    let out = build(&root, &ctx, &[]);
    assert!(!out.ok && out.stderr.contains("nosuchimage"), "{}", out.stderr);
    // The explicit verb, for a context named like one.
    let ls = context(&root, "ls", &[("Dockerfile", "FROM bb:1\n")]);
    let out = root.cmd("ci-build").args(["build", "-q", "-t", "verb:1"]).arg(&ls).output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn real_tools_read_the_image() {
    let Some(root) = setup("building images") else { return };
    let ctx = context(&root, "interop", &[("Dockerfile", "FROM bb:1\nRUN echo hi > /hi && rm /bin/vi\nCMD [\"cat\", \"/hi\"]\n")]);
    build_ok(&root, &ctx, &["-t", "localhost/interop:1"]);
    let layout = root.path().join("images");
    let have = |t: &str| std::process::Command::new("which").arg(t).output().map(|o| o.status.success()).unwrap_or(false);
    if have("skopeo") {
        let o = std::process::Command::new("skopeo").arg("inspect").arg(format!("oci:{}:localhost/interop:1", layout.display())).output().unwrap();
        assert!(o.status.success(), "skopeo inspect: {}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let ours = config(&root, "localhost/interop:1")["rootfs"]["diff_ids"].as_array().unwrap().len();
        assert_eq!(v["Layers"].as_array().unwrap().len(), ours);
    } else {
        skip("skopeo is not installed");
    }
    if have("umoci") {
        let dest = root.path().join("umoci-bundle");
        let o = std::process::Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:localhost/interop:1", layout.display()))
            .arg(&dest)
            .output()
            .unwrap();
        assert!(o.status.success(), "umoci unpack: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(read(&dest.join("rootfs"), "hi"), "hi\n");
        assert!(!dest.join("rootfs/bin/vi").exists(), "our whiteout is read by umoci");
    } else {
        skip("umoci is not installed");
    }
    if have("podman") {
        // podman runs it from our OCI layout (its own storage under the test root).
        // It names the image after the layout's path, which must then be lower case.
        struct Link(std::path::PathBuf);
        impl Drop for Link {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let link = Link(std::path::PathBuf::from(format!("/tmp/ci-build-test-{}-{nanos}", std::process::id())));
        std::os::unix::fs::symlink(&layout, &link.0).unwrap();
        let layout = link.0.clone();
        // podman's defaults ask for rlimits this sandbox cannot grant
        // (../shared/PEERS.md), and its default runtime (crun) refuses the
        // hybrid cgroup layout: a containers.conf of the test's own, and runc.
        let conf = root.path().join("podman/containers.conf");
        std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
        std::fs::write(&conf, "[containers]\ndefault_ulimits = []\n").unwrap();
        let o = std::process::Command::new("podman")
            .env("CONTAINERS_CONF", &conf)
            .args(["--runtime", "runc"])
            .arg("--root")
            .arg(root.path().join("podman/root"))
            .arg("--runroot")
            .arg(root.path().join("podman/run"))
            .args(["--storage-driver", "vfs", "run", "--rm", "--network", "none"])
            .arg(format!("oci:{}:localhost/interop:1", layout.display()))
            .output()
            .unwrap();
        assert!(o.status.success(), "podman run: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "hi");
    } else {
        skip("podman is not installed");
    }
}

#[test]
fn entrypoint_and_cmd_run_through_ci_run() {
    let Some(root) = setup("building images") else { return };
    // docker's table (the Dockerfile reference, "Understand how CMD and
    // ENTRYPOINT interact"), then what the ci-run command line changes:
    // (Dockerfile lines, ci-run flags, arguments after the image, stdout).
    let cases: &[(&str, &[&str], &[&str], &str)] = &[
        ("CMD [\"echo\", \"exec-cmd\"]", &[], &[], "exec-cmd"),
        ("CMD echo shell-cmd $HOME", &[], &[], "shell-cmd /root"),
        ("ENTRYPOINT [\"echo\", \"ep\"]\nCMD [\"arg\"]", &[], &[], "ep arg"),
        ("ENTRYPOINT echo shell-ep\nCMD [\"ignored\"]", &[], &[], "shell-ep"),
        // An exec ENTRYPOINT gets a shell-form CMD as `/bin/sh -c CMD` arguments.
        ("ENTRYPOINT [\"echo\", \"ep\"]\nCMD echo shell-cmd", &[], &[], "ep /bin/sh -c echo shell-cmd"),
        ("ENTRYPOINT [\"echo\", \"ep-alone\"]", &[], &[], "ep-alone"),
        ("ENTRYPOINT echo shell-ep-alone $HOME", &[], &[], "shell-ep-alone /root"),
        ("ENTRYPOINT echo shell-ep\nCMD echo shell-cmd", &[], &[], "shell-ep"),
        // Arguments on the command line replace CMD...
        ("CMD [\"echo\", \"default\"]", &[], &["echo", "overridden"], "overridden"),
        ("ENTRYPOINT [\"echo\", \"ep\"]\nCMD [\"default\"]", &[], &["given"], "ep given"),
        // ...or follow an ENTRYPOINT that has no CMD...
        ("ENTRYPOINT [\"echo\", \"ep\"]", &[], &["a", "b"], "ep a b"),
        // ...and a shell-form ENTRYPOINT ignores them.
        ("ENTRYPOINT echo shell-ep", &[], &["ignored"], "shell-ep"),
        // --entrypoint replaces ENTRYPOINT and drops the image's CMD; "" clears it and keeps CMD.
        ("ENTRYPOINT [\"echo\", \"ep\"]\nCMD [\"default\"]", &["--entrypoint", "echo"], &["replaced"], "replaced"),
        ("ENTRYPOINT [\"echo\", \"ep\"]\nCMD [\"default\"]", &["--entrypoint", "echo"], &[], ""),
        ("ENTRYPOINT [\"false\"]\nCMD [\"echo\", \"cmd-only\"]", &["--entrypoint", ""], &[], "cmd-only"),
    ];
    for (i, (lines, flags, args, want)) in cases.iter().enumerate() {
        let ctx = context(&root, &format!("ep{i}"), &[("Dockerfile", &format!("FROM bb:1\n{lines}\n"))]);
        let tag = format!("ep:{i}");
        let id = build_ok(&root, &ctx, &["-t", &tag]).id();
        let out = root.cmd("ci-run").arg("--rm").args(*flags).arg(&id).args(*args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{lines} / {flags:?} {args:?}: {err}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end_matches('\n'), *want, "{lines} / {flags:?} {args:?}");
    }
    // Neither ENTRYPOINT nor CMD (the base has none), and no command given: an error.
    let ctx = context(&root, "ep-none", &[("Dockerfile", "FROM bb:1\nLABEL nothing=to-run\n")]);
    let id = build_ok(&root, &ctx, &["-t", "ep:none"]).id();
    let out = root.cmd("ci-run").args(["--rm", &id]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no command specified"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_clean(&root);
}

/// `ci-build -q -t REF CTX | ci-run FLAGS -`, through a real pipe: both
/// statuses, and what ci-run printed.
fn build_into_run(lab: &lifecycle_common::Lab, ctx: &std::path::Path, tag: &str, run_flags: &[&str]) -> String {
    use std::process::Stdio;
    let mut b = lab.tool("ci-build").args(["-q", "-t", tag]).arg(ctx).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pipe = b.stdout.take().unwrap();
    let r = lab.tool("ci-run").args(run_flags).arg("-").stdin(Stdio::from(pipe)).output().unwrap();
    let bo = b.wait_with_output().unwrap();
    assert!(bo.status.success(), "ci-build: {}", String::from_utf8_lossy(&bo.stderr));
    assert!(bo.stderr.is_empty(), "-q prints no progress: {}", String::from_utf8_lossy(&bo.stderr));
    assert!(r.status.success(), "ci-run {run_flags:?} -: {}", String::from_utf8_lossy(&r.stderr));
    String::from_utf8_lossy(&r.stdout).into_owned()
}

#[test]
fn build_piped_into_ci_run() {
    // The pipes the --help examples show: ci-build's image object is ci-run's image.
    let Some(lab) = lifecycle_common::Lab::new("building and running images") else { return };
    let web = context(
        &lab.root,
        "pipe-web",
        &[("Dockerfile", "FROM bb:1\nCOPY page /page\nCMD [\"sh\", \"-c\", \"cat /page; exec sleep 1000\"]\n"), ("page", "served\n")],
    );
    let out = build_into_run(&lab, &web, "web", &["-d"]);
    let v = json_lines(out.as_bytes());
    assert_eq!(v.len(), 1, "-d prints one container object: {out}");
    assert_eq!((v[0]["kind"].as_str(), v[0]["state"].as_str()), (Some("container"), Some("running")), "{out}");
    let id = v[0]["id"].as_str().unwrap().to_string();
    let inspected = lab.tool("ci-build").args(["inspect", "web"]).output().unwrap();
    let built: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(v[0]["image_id"], built["id"], "the container runs the image just built: {out}");
    lifecycle_common::wait_until("the container's output", || lab.log(&id).contains("served"));
    lab.ok(&["stop", "-t", "1", &id]);
    lab.ok(&["rm", &id]);
    // --rm: it runs in the foreground, its output is ci-run's, and it is gone after.
    let once = context(&lab.root, "pipe-once", &[("Dockerfile", "FROM bb:1\nCOPY msg /msg\nCMD [\"cat\", \"/msg\"]\n"), ("msg", "ran once\n")]);
    assert_eq!(build_into_run(&lab, &once, "once", &["--rm"]), "ran once\n");
    assert!(lab.ids().is_empty(), "--rm removed it: {:?}", lab.ids());
    assert_clean(&lab.root);
}

#[test]
fn seeds_build_and_run() {
    // The seeds' Dockerfiles (../shared/seeds/001 and 004), on the busybox base.
    let Some(root) = setup("building images") else { return };
    let s004 = context(
        &root,
        "seed004",
        &[
            (
                "Dockerfile",
                "# Typically a linux distro and version\nFROM bb:1\n\n# All next commands will be executed inside this directory\nWORKDIR /usr/src\n\n# Run any command\n# (busybox-static has no useradd/adduser applet)\nRUN echo 'app_user:x:1000:1000::/home/app_user:/bin/sh' >> /etc/passwd && \\\n    mkdir -p /home/app_user && chown 1000:1000 /home/app_user\n\n# Add a non-root user\nUSER app_user\n\n# Copy the code on our local machine to the image\nCOPY app.py .\n\nENV API_KEY=hi_mom\nEXPOSE 8000\nCMD [\"httpd\", \"-f\", \"-p\", \"8000\"]\nLABEL version=\"1.0\" description=\"seed 004\"\n",
            ),
            ("app.py", "print('hello')\n"),
        ],
    );
    build_ok(&root, &s004, &["-t", "seed:004"]);
    let c = config(&root, "seed:004");
    assert_eq!(c["config"]["User"], "app_user");
    assert!(c["config"]["ExposedPorts"].get("8000/tcp").is_some());
    let fs = rootfs(&root, "seed:004");
    assert_eq!(read(fs.path(), "usr/src/app.py"), "print('hello')\n");
    assert!(read(fs.path(), "etc/passwd").contains("app_user"));
    let s001 = context(
        &root,
        "seed001",
        &[
            ("Dockerfile", "FROM bb:1\n# Docker will create this directory to work from\nWORKDIR /app\n# This will copy everything in the current directory into the image\nCOPY . .\nENTRYPOINT [\"/bin/sh\"]\nCMD [\"example.sh\"]\n"),
            ("example.sh", "echo seed one\n"),
        ],
    );
    let id = build_ok(&root, &s001, &["-t", "seed:001"]).id();
    assert_eq!(read(rootfs(&root, "seed:001").path(), "app/example.sh"), "echo seed one\n");
    for (image, args, want) in [(id.as_str(), vec![], "seed one"), ("seed:004", vec!["sh", "-c", "id -un; cat app.py"], "app_user\nprint('hello')")] {
        let out = root.cmd("ci-run").arg("--rm").arg(image).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("not in this build yet") {
            skip("ci-run cannot run images from the store yet (layer cache not wired into ci-run)");
            return;
        }
        assert!(out.status.success(), "{image}: {err}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want);
    }
}

#[test]
fn heredocs_args_and_small_flags() {
    let Some(root) = setup("building images") else { return };
    let ctx = context(
        &root,
        "heredoc",
        &[(
            "Dockerfile",
            "ARG BASE=bb\nARG TAG\nFROM $BASE:${TAG:-1}\nARG TAG\nRUN <<EOF\necho \"simple $TAG\" > /simple\nEOF\nRUN <<EOF\n#!/bin/sh\necho shebang > /shebang\nEOF\nRUN cat <<EOF > /complex\nline one\nEOF\nRUN cat <<- EOF > /chomped\n\tchomped\n\tEOF\nRUN [\"/bin/sh\", \"-c\", \"echo exec $HOME > /exec\"]\nRUN echo \"proxy=$HTTP_PROXY\" > /proxy\n",
        )],
    );
    let iid = root.path().join("iid");
    let out = build_ok(&root, &ctx, &["--build-arg", "TAG=1", "--build-arg", "UNUSED=x", "--build-arg", "HTTP_PROXY=http://proxy.invalid:3128", "--iidfile", iid.to_str().unwrap(), "-t", "hd:1"]);
    let warning = out.stderr.lines().find(|l| l.contains("were not used")).unwrap_or_default();
    assert!(warning.contains("UNUSED") && !warning.contains("HTTP_PROXY"), "a predefined proxy argument needs no ARG line: {}", out.stderr);
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), out.id());
    assert!(out.stderr.contains("UNUSED") && out.stderr.contains("not used"), "{}", out.stderr);
    let fs = rootfs(&root, "hd:1");
    assert_eq!(read(fs.path(), "simple"), "simple 1\n");
    assert_eq!(read(fs.path(), "shebang"), "shebang\n");
    assert_eq!(read(fs.path(), "complex"), "line one\n");
    assert_eq!(read(fs.path(), "chomped"), "chomped\n", "<<- with a space before the word opens a heredoc too");
    assert_eq!(read(fs.path(), "exec"), "exec /root\n");
    assert_eq!(read(fs.path(), "proxy"), "proxy=http://proxy.invalid:3128\n");
    assert!(!config(&root, "hd:1").to_string().contains("proxy.invalid"), "proxy values stay out of the image");
    // Only this machine's platform.
    write(&ctx, "Dockerfile", "FROM --platform=linux/arm64 bb:1\n");
    let out = build(&root, &ctx, &[]);
    assert!(!out.ok && out.stderr.contains("linux/arm64") && out.stderr.contains("linux/amd64"), "{}", out.stderr);
    write(&ctx, "Dockerfile", "FROM --platform=$BUILDPLATFORM bb:1\n");
    build_ok(&root, &ctx, &[]);
}

#[test]
fn explain_shows_keys_containers_and_layers() {
    let Some(root) = setup("building images") else { return };
    let ctx = context(&root, "explain", &[("Dockerfile", "FROM bb:1\nCOPY f /f\nRUN echo hi > /hi\n"), ("f", "x")]);
    let first = build(&root, &ctx, &["--explain"]);
    assert!(first.ok, "{}", first.stderr);
    let e = &first.stderr;
    assert!(e.contains("+ cache key") && e.contains("= sha256(previous state") && e.contains("): miss"), "{e}");
    assert!(e.contains("f -> f: sha256:"), "the COPY key names the content digest: {e}");
    assert!(e.contains("in container "), "the RUN's container is named: {e}");
    assert!(e.contains("+ layer ") && e.contains("changed entries"), "the layer produced: {e}");
    let again = build(&root, &ctx, &["--explain"]);
    assert!(again.stderr.contains("): hit"), "{}", again.stderr);
}

#[test]
fn an_incremental_copy_makes_the_same_layer_as_a_full_one() {
    let Some(root) = setup("building images") else { return };
    let files: Vec<(String, String)> = (0..50).map(|i| (format!("dir/sub{}/f{i}", i % 3), format!("content {i}\n"))).collect();
    let mut all: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    all.push(("Dockerfile", "FROM bb:1\nCOPY dir/ /data/dir/\nCOPY --chown=1:2 dir/sub0 /other\n"));
    let ctx = context(&root, "incr", &all);
    std::os::unix::fs::symlink("sub1/f1", ctx.join("dir/link")).unwrap();
    let env = [("SOURCE_DATE_EPOCH", "1700000000")];
    assert!(build_env(&root, &ctx, &["-t", "inc:1"], &env).ok);
    write(&ctx, "dir/sub0/f3", "changed\n");
    write(&ctx, "dir/sub2/new", "new file\n");
    std::fs::remove_file(ctx.join("dir/sub1/f4")).unwrap();
    let inc = build_env(&root, &ctx, &["-t", "inc:2"], &env);
    assert!(inc.ok, "{}", inc.stderr);
    assert!(inc.stderr.contains("copied 2 changed file(s); 48 unchanged linked"), "{}", inc.stderr);
    let full = build_env(&root, &ctx, &["--no-cache", "-t", "inc:3"], &env);
    assert!(full.ok && !full.stderr.contains("linked"), "{}", full.stderr);
    let ids = |tag: &str| config(&root, tag)["rootfs"]["diff_ids"].clone();
    assert_eq!(ids("inc:2"), ids("inc:3"), "the incremental layers are byte for byte the full copy's");
    let fs = rootfs(&root, "inc:2");
    assert_eq!(read(fs.path(), "data/dir/sub0/f3"), "changed\n");
    assert_eq!(read(fs.path(), "data/dir/sub2/new"), "new file\n");
    assert!(!fs.path().join("data/dir/sub1/f4").exists());
    assert_clean(&root);
}

#[test]
fn a_stage_based_on_an_earlier_stage_inherits_its_files_and_config() {
    let Some(root) = setup("building images") else { return };
    let ctx = context(
        &root,
        "from-stage",
        &[
            (
                "Dockerfile",
                "FROM bb:1 AS base\nENV FROM_BASE=yes\nWORKDIR /srv\nCOPY base.txt .\nLABEL stage=base\nEXPOSE 8080\nCMD [\"cat\", \"base.txt\"]\n\nFROM base AS child\nRUN echo \"$FROM_BASE in $(pwd): $(cat base.txt)\" > child.txt\nLABEL child=1\n\nFROM child\nRUN test -f /srv/child.txt && echo grandchild > /srv/grand.txt\n",
            ),
            ("base.txt", "from base"),
        ],
    );
    let out = build_ok(&root, &ctx, &["-t", "fs:1"]);
    out.assert_steps_end();
    assert_eq!(out.stderr.matches("COPY base.txt .").count(), 1, "the base stage is built once:\n{}", out.stderr);
    let fs = rootfs(&root, "fs:1");
    assert_eq!(read(fs.path(), "srv/base.txt"), "from base");
    assert_eq!(read(fs.path(), "srv/child.txt"), "yes in /srv: from base\n", "ENV and WORKDIR of the base stage apply to the RUN");
    assert_eq!(read(fs.path(), "srv/grand.txt"), "grandchild\n");
    let c = config(&root, "fs:1");
    let cc = &c["config"];
    assert!(cc["Env"].as_array().unwrap().iter().any(|e| e == "FROM_BASE=yes"), "{cc}");
    assert_eq!(cc["WorkingDir"], "/srv");
    assert_eq!(cc["Labels"]["stage"], "base");
    assert_eq!(cc["Labels"]["child"], "1");
    assert!(cc["ExposedPorts"].get("8080/tcp").is_some());
    assert_eq!(cc["Cmd"], serde_json::json!(["cat", "base.txt"]));
    // Its layers and history start with the base stage's.
    build_ok(&root, &ctx, &["--target", "base", "-t", "fs:base"]);
    let b = config(&root, "fs:base");
    let (bl, cl) = (b["rootfs"]["diff_ids"].as_array().unwrap(), c["rootfs"]["diff_ids"].as_array().unwrap());
    assert!(cl.len() == bl.len() + 2 && cl[..bl.len()] == bl[..], "base {bl:?}, final {cl:?}");
    let (bh, ch) = (b["history"].as_array().unwrap(), c["history"].as_array().unwrap());
    assert_eq!(ch[..bh.len()], bh[..]);
    assert_clean(&root);
}

/// A tar of `pkg/run.sh` (mode 0755).
fn pkg_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o755);
    h.set_cksum();
    b.append_data(&mut h, "pkg/run.sh", &b"echo 1"[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn add_local_files_and_archives() {
    let Some(root) = setup("building images") else { return };
    let ctx = context(
        &root,
        "add-local",
        &[
            (
                "Dockerfile",
                "FROM bb:1\nADD plain.txt /plain-as-named\nADD plain.txt /into/\nADD --chmod=600 plain.txt /chmodded\nADD pkg.tar /unpacked/\nADD pkg.tar /unpacked-no-slash\nADD fake.tar.gz /fake/\nADD --unpack=false pkg.tar /kept/\n",
            ),
            ("plain.txt", "plain\n"),
            ("fake.tar.gz", "not an archive, whatever its name\n"),
        ],
    );
    std::fs::write(ctx.join("pkg.tar"), pkg_tar()).unwrap();
    set_old(&ctx.join("pkg.tar"));
    build_ok(&root, &ctx, &["-t", "addl:1"]);
    let fs = rootfs(&root, "addl:1");
    use std::os::unix::fs::MetadataExt;
    // A plain file is copied as COPY copies it.
    assert_eq!(read(fs.path(), "plain-as-named"), "plain\n");
    assert_eq!(read(fs.path(), "into/plain.txt"), "plain\n");
    assert_eq!(std::fs::metadata(fs.path().join("chmodded")).unwrap().mode() & 0o777, 0o600);
    // An uncompressed local tar is extracted into the directory (with or without a slash).
    for d in ["unpacked", "unpacked-no-slash"] {
        let m = std::fs::metadata(fs.path().join(d).join("pkg/run.sh")).unwrap_or_else(|e| panic!("{d}/pkg/run.sh: {e}"));
        assert_eq!(m.mode() & 0o777, 0o755);
        assert_eq!(read(fs.path(), &format!("{d}/pkg/run.sh")), "echo 1");
        assert!(!fs.path().join(d).join("pkg.tar").exists());
    }
    // Archives are told by their content, not their name.
    assert_eq!(read(fs.path(), "fake/fake.tar.gz"), "not an archive, whatever its name\n");
    // --unpack=false copies the archive as a file.
    assert_eq!(std::fs::read(fs.path().join("kept/pkg.tar")).unwrap(), pkg_tar());
    assert_clean(&root);
}

#[test]
fn two_tags_name_the_same_image() {
    let Some(root) = setup("building images") else { return };
    let ctx = context(&root, "two-tags", &[("Dockerfile", "FROM bb:1\nLABEL tagged=twice\n")]);
    let out = build_ok(&root, &ctx, &["-t", "two:a", "-t", "localhost:5000/other/name:b"]);
    let id = out.id();
    assert!(out.stderr.contains("as two:a, localhost:5000/other/name:b"), "{}", out.stderr);
    for t in ["two:a", "localhost:5000/other/name:b"] {
        let o = root.cmd("ci-build").args(["inspect", t]).output().unwrap();
        assert!(o.status.success(), "{t}: {}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["id"], id.as_str(), "{t} names the built image");
    }
}

#[test]
fn healthcheck_none_clears_an_inherited_one() {
    let Some(root) = setup("building images") else { return };
    let base = context(&root, "hc-base", &[("Dockerfile", "FROM bb:1\nHEALTHCHECK --interval=5s CMD true\n")]);
    build_ok(&root, &base, &["-t", "hc:base"]);
    assert_eq!(config(&root, "hc:base")["config"]["Healthcheck"]["Test"], serde_json::json!(["CMD-SHELL", "true"]));
    let child = context(&root, "hc-child", &[("Dockerfile", "FROM hc:base\nHEALTHCHECK NONE\n")]);
    build_ok(&root, &child, &["-t", "hc:none"]);
    // As docker records it: a Test of ["NONE"] overrides the base's check.
    assert_eq!(config(&root, "hc:none")["config"]["Healthcheck"], serde_json::json!({ "Test": ["NONE"] }));
    // Inherited when the child says nothing.
    let keep = context(&root, "hc-keep", &[("Dockerfile", "FROM hc:base\nLABEL x=1\n")]);
    build_ok(&root, &keep, &["-t", "hc:keep"]);
    assert_eq!(config(&root, "hc:keep")["config"]["Healthcheck"]["Test"], serde_json::json!(["CMD-SHELL", "true"]));
}

#[test]
fn shell_changes_how_the_next_run_runs() {
    let Some(root) = setup("building images") else { return };
    let ctx = context(
        &root,
        "shell",
        &[(
            "Dockerfile",
            "FROM bb:1\nRUN false; echo default > /default\nSHELL [\"/bin/sh\", \"-ex\", \"-c\"]\nRUN echo traced > /traced\nSHELL [\"/bin/sh\", \"-c\", \"echo \\\"shelled: $1\\\" > /shelled; eval \\\"$1\\\"\", \"wrapper\"]\nRUN echo ran > /ran\nRUN [\"/bin/sh\", \"-c\", \"echo exec-form > /exec\"]\n",
        )],
    );
    let out = build_ok(&root, &ctx, &["-t", "sh:1"]);
    let fs = rootfs(&root, "sh:1");
    assert_eq!(read(fs.path(), "default"), "default\n", "the default /bin/sh -c has no -e");
    assert_eq!(read(fs.path(), "traced"), "traced\n");
    assert!(out.stderr.contains("+ echo traced"), "-x of the SHELL traces the command:\n{}", out.stderr);
    assert_eq!(read(fs.path(), "shelled"), "shelled: echo ran > /ran\n", "the command is the SHELL's last argument");
    assert_eq!(read(fs.path(), "ran"), "ran\n");
    assert!(!read(fs.path(), "shelled").contains("exec-form"), "an exec-form RUN does not use the SHELL");
    assert_eq!(read(fs.path(), "exec"), "exec-form\n");
    assert_eq!(config(&root, "sh:1")["config"]["Shell"][3], "wrapper");
    // With -e in the SHELL, a failing command stops the RUN.
    write(&ctx, "Dockerfile", "FROM bb:1\nSHELL [\"/bin/sh\", \"-ec\"]\nRUN false; echo reached-$((1+1))\n");
    let out = build(&root, &ctx, &["-t", "sh:2"]);
    assert!(!out.ok && out.stderr.contains("exit status 1") && !out.stderr.contains("reached-2"), "{}", out.stderr);
    assert_clean(&root);
}

#[test]
fn copy_link_makes_the_same_files_and_a_reusable_layer() {
    let Some(root) = setup("building images") else { return };
    let df = |link: &str, before: &str| {
        format!("FROM bb:1\nRUN echo {before} > /before\nCOPY {link} src/ /app/\nCOPY {link} --chmod=640 a.txt /app/a-copy\nCOPY {link} a.txt /etc/\n")
    };
    let ctx = context(&root, "link", &[("Dockerfile", &df("--link", "one")), ("a.txt", "a\n"), ("src/x", "x\n"), ("src/sub/y", "y\n")]);
    std::os::unix::fs::symlink("sub/y", ctx.join("src/to-y")).unwrap();
    let env = [("SOURCE_DATE_EPOCH", "1700000000")];
    let linked = build_env(&root, &ctx, &["--explain", "-t", "link:1"], &env);
    assert!(linked.ok, "{}", linked.stderr);
    assert!(linked.stderr.contains("COPY --link: copied as without --link"), "--explain says what --link does here:\n{}", linked.stderr);
    // The same Dockerfile without --link, every step run again: the same layers.
    write(&ctx, "Dockerfile", &df("", "one"));
    let plain = build_env(&root, &ctx, &["--no-cache", "-t", "link:plain"], &env);
    assert!(plain.ok, "{}", plain.stderr);
    let ids = |tag: &str| config(&root, tag)["rootfs"]["diff_ids"].clone();
    assert_eq!(ids("link:1"), ids("link:plain"), "COPY --link makes the layers a plain COPY makes");
    let fs = rootfs(&root, "link:1");
    assert_eq!(read(fs.path(), "app/x"), "x\n");
    assert_eq!(read(fs.path(), "app/sub/y"), "y\n");
    assert_eq!(std::fs::read_link(fs.path().join("app/to-y")).unwrap(), std::path::Path::new("sub/y"));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(fs.path().join("app/a-copy")).unwrap().mode() & 0o777, 0o640);
    assert!(read(fs.path(), "etc/passwd").contains("root:"), "copying into an existing directory keeps what it holds");
    assert_eq!(read(fs.path(), "etc/a.txt"), "a\n");
    // An earlier step changes: the --link COPY's layer is not made again.
    write(&ctx, "Dockerfile", &df("--link", "two"));
    let after = build_env(&root, &ctx, &["-t", "link:2"], &env);
    assert!(after.ok, "{}", after.stderr);
    assert!(!after.was_cached("RUN echo two"));
    assert_eq!(after.stderr.matches("reusing layer").count(), 3, "{}", after.stderr);
    let (one, two) = (ids("link:1"), ids("link:2"));
    let (one, two) = (one.as_array().unwrap(), two.as_array().unwrap());
    let n = one.len();
    assert_ne!(one[n - 4], two[n - 4], "the RUN's layer changed");
    assert_eq!(one[n - 3..], two[n - 3..], "the COPY --link layers are the same");
    assert_clean(&root);
}

#[test]
fn network_host_reaches_the_host_and_default_does_not() {
    let Some(root) = setup("building images") else { return };
    // A server on the host's 127.0.0.1: reachable from the host's network only.
    // (No wget -T: Debian's busybox 1.35 wget crashes with it.)
    let url = serve("/net", b"from the host\n".to_vec());
    let df = format!("FROM bb:1\nRUN wget -q -O /got {url}/net\n");
    let ctx = context(&root, "network", &[("Dockerfile", &df)]);
    let host = build(&root, &ctx, &["--network", "host", "-t", "net:host"]);
    assert!(host.ok, "--network host reaches 127.0.0.1 of the host:\n{}", host.stderr);
    assert_eq!(read(rootfs(&root, "net:host").path(), "got"), "from the host\n");
    for mode in [None, Some("default"), Some("none")] {
        let mut args = vec!["-t", "net:isolated"];
        if let Some(m) = mode {
            args.extend(["--network", m]);
        }
        let out = build(&root, &ctx, &args);
        assert!(!out.ok, "--network {mode:?}: a RUN has loopback only, the host's listener is not there:\n{}", out.stderr);
        assert!(out.stderr.contains("exit status 1") && out.stderr.to_lowercase().contains("connection refused"), "{mode:?}: {}", out.stderr);
    }
    // Its loopback is its own and up: a listener inside the RUN is reachable from it.
    write(&ctx, "Dockerfile", "FROM bb:1\nRUN (echo inside | nc -l -p 8123 127.0.0.1 &); for i in $(seq 100); do nc 127.0.0.1 8123 > /lo </dev/null && [ -s /lo ] && break; sleep 0.05; done\n");
    build_ok(&root, &ctx, &["-t", "net:lo"]);
    assert_eq!(read(rootfs(&root, "net:lo").path(), "lo"), "inside\n");
    // The help says what default means.
    let help = root.cmd("ci-build").args(["build", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("default: loopback only until ci-net provides bridges"), "{help}");
    assert_clean(&root);
}

#[test]
fn a_change_to_a_later_copy_keeps_the_steps_before_it() {
    let Some(root) = setup("building images") else { return };
    let ctx = context(
        &root,
        "later-copy",
        &[
            ("Dockerfile", "FROM bb:1\nCOPY first/ /first/\nRUN cat /first/* > /first-sum\nENV STAGE=2\nCOPY second/ /second/\nRUN cat /second/* > /second-sum\nLABEL done=1\n"),
            ("first/a", "a1\n"),
            ("second/b", "b1\n"),
            ("second/c", "c1\n"),
        ],
    );
    let one = build_ok(&root, &ctx, &["-t", "later:1"]);
    assert_eq!(one.counts(), (0, 6), "{}", one.stderr);
    write(&ctx, "second/c", "c2\n");
    let two = build_ok(&root, &ctx, &["-t", "later:2"]);
    for before in ["COPY first/ /first/", "RUN cat /first/*", "ENV STAGE=2"] {
        assert!(two.was_cached(before), "{before} comes before the changed COPY:\n{}", two.stderr);
    }
    for after in ["COPY second/ /second/", "RUN cat /second/*", "LABEL done=1"] {
        assert!(!two.was_cached(after), "{after} is the changed COPY or after it:\n{}", two.stderr);
    }
    assert_eq!(two.counts(), (3, 3), "{}", two.stderr);
    let fs = rootfs(&root, "later:2");
    assert_eq!(read(fs.path(), "first-sum"), "a1\n");
    assert_eq!(read(fs.path(), "second-sum"), "b1\nc2\n");
    let ids = |tag: &str| config(&root, tag)["rootfs"]["diff_ids"].as_array().unwrap().clone();
    let (a, b) = (ids("later:1"), ids("later:2"));
    let n = a.len();
    assert_eq!(a[..n - 2], b[..n - 2], "the base, COPY first and RUN cat /first layers are reused");
    assert_ne!(a[n - 2], b[n - 2], "the COPY second layer changed");
    assert_ne!(a[n - 1], b[n - 1], "the RUN after it ran again");
    assert_clean(&root);
}
