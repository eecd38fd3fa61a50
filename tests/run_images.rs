//! Containers from images in the store: the image config as docker honours
//! it (Entrypoint/Cmd, Env, WorkingDir, User), layers stacked with
//! overlayfs (whiteouts, opaque directories), each layer unpacked once,
//! and `-` reading an image object from stdin.

mod run_common;
use run_common::*;

use std::path::Path;
use std::process::{Command, Stdio};

use ci_core::image::{self, Layer, LAYER_TAR};
use ci_core::reference::Reference;
use ci_core::store::Store;

struct Images {
    root: TestRoot,
    tar: Vec<u8>,
}

fn setup_images() -> Option<Images> {
    if !privileged("containers") {
        return None;
    }
    let root = TestRoot::new();
    let tar = ci_tests::busybox_rootfs_tar()?;
    Some(Images { root, tar })
}

impl Images {
    /// `ci-build import --change C... -t TAG` of the busybox rootfs.
    fn import(&self, tag: &str, changes: &[&str]) {
        let mut c = self.root.cmd("ci-build");
        c.args(["import", "-t", tag]);
        for ch in changes {
            c.args(["--change", ch]);
        }
        c.arg("-").write_stdin(self.tar.clone()).assert().success();
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new(tool_path("ci-run"));
        c.env("CIROOT", self.root.path()).env_remove("CIEXPLAIN").current_dir(self.root.path()).stdin(Stdio::null());
        c.args(args).output().unwrap()
    }

    fn out(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "ci-run {args:?}: {:?} {}", o.status, text(&o.stderr));
        text(&o.stdout).trim().to_string()
    }
}

/// Docker's Entrypoint/Cmd table, each case run for real.
#[test]
fn entrypoint_and_cmd_matrix() {
    let Some(t) = setup_images() else { return };
    t.import("none:1", &[]);
    t.import("cmd-exec:1", &[r#"CMD ["echo", "cmd-exec"]"#]);
    t.import("cmd-shell:1", &["CMD echo cmd-shell $HOSTNAME_SET"]);
    t.import("ep-exec:1", &[r#"ENTRYPOINT ["echo", "ep"]"#]);
    t.import("ep-exec-cmd:1", &[r#"ENTRYPOINT ["echo", "ep"]"#, r#"CMD ["cmd"]"#]);
    t.import("ep-exec-cmd-shell:1", &[r#"ENTRYPOINT ["echo", "ep"]"#, "CMD echo cmd"]);
    t.import("ep-shell-cmd:1", &["ENTRYPOINT echo ep-shell", r#"CMD ["ignored"]"#]);
    let none = t.run(&["--rm", "none:1"]);
    assert_eq!(code(&none), 125);
    assert!(text(&none.stderr).contains("no command specified"), "{}", text(&none.stderr));
    assert_eq!(t.out(&["--rm", "none:1", "echo", "given"]), "given");
    assert_eq!(t.out(&["--rm", "cmd-exec:1"]), "cmd-exec");
    assert_eq!(t.out(&["--rm", "cmd-shell:1"]), "cmd-shell");
    assert_eq!(t.out(&["--rm", "cmd-exec:1", "echo", "replaced"]), "replaced");
    assert_eq!(t.out(&["--rm", "ep-exec:1"]), "ep");
    assert_eq!(t.out(&["--rm", "ep-exec-cmd:1"]), "ep cmd");
    assert_eq!(t.out(&["--rm", "ep-exec-cmd-shell:1"]), "ep /bin/sh -c echo cmd");
    assert_eq!(t.out(&["--rm", "ep-exec-cmd:1", "a", "b"]), "ep a b");
    assert_eq!(t.out(&["--rm", "ep-shell-cmd:1"]), "ep-shell", "a shell-form entrypoint ignores CMD and arguments");
    assert_eq!(t.out(&["--rm", "ep-shell-cmd:1", "x"]), "ep-shell");
    assert_eq!(t.out(&["--rm", "--entrypoint", "/bin/echo", "ep-exec-cmd:1"]), "", "--entrypoint drops the image's CMD");
    assert_eq!(t.out(&["--rm", "--entrypoint", "/bin/echo", "ep-exec-cmd:1", "z"]), "z");
    assert_eq!(t.out(&["--rm", "--entrypoint", "", "cmd-exec:1"]), "cmd-exec", "--entrypoint '' keeps CMD");
}

#[test]
fn image_env_workdir_and_user() {
    let Some(t) = setup_images() else { return };
    t.import("cfg:1", &["ENV GREETING=hello PATH=/bin:/custom", "WORKDIR /srv/app", "USER nobody", "STOPSIGNAL SIGQUIT"]);
    let out = t.out(&["--rm", "cfg:1", "sh", "-c", "echo $GREETING $PATH; pwd; id -u"]);
    assert_eq!(out, "hello /bin:/custom\n/srv/app\n65534");
    assert_eq!(t.out(&["--rm", "-u", "0", "-w", "/", "-e", "GREETING=bye", "cfg:1", "sh", "-c", "echo $GREETING; pwd; id -u"]), "bye\n/\n0");
    // The record names the image (so `ci-build rm` keeps it) and its stop signal.
    let o = t.run(&["--name", "kept", "cfg:1", "true"]);
    assert!(o.status.success());
    let dir = std::fs::read_dir(t.root.path().join("containers")).unwrap().next().unwrap().unwrap().path();
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("container.json")).unwrap()).unwrap();
    assert_eq!(rec["image_name"], "cfg:1");
    assert!(rec["image"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(rec["stop_signal"], "SIGQUIT");
    let rm = t.root.cmd("ci-build").args(["rm", "cfg:1"]).assert().failure();
    assert!(text(&rm.get_output().stderr).contains("kept"), "{}", text(&rm.get_output().stderr));
}

#[test]
fn image_from_stdin() {
    let Some(t) = setup_images() else { return };
    let imported = t.root.cmd("ci-build").args(["import", "-"]).write_stdin(t.tar.clone()).assert().success();
    let obj = imported.get_output().stdout.clone();
    let mut c = Command::new(tool_path("ci-run"));
    c.env("CIROOT", t.root.path()).args(["--rm", "-", "echo", "from-stdin"]).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&obj).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout).trim(), "from-stdin");
    // Two image objects on stdin: which one to run is not guessed.
    let mut two = obj.clone();
    two.extend_from_slice(&obj);
    let out = t.root.cmd("ci-run").args(["--rm", "-", "true"]).write_stdin(two).assert().code(125);
    assert!(text(&out.get_output().stderr).contains("stdin held 2 image objects"), "{}", text(&out.get_output().stderr));
}

/// 20 containers at once from an image never unpacked before: all run, and
/// its layer was unpacked exactly once. Each ci-run says (--explain)
/// whether it unpacked the layer or found it unpacked: one did, 19 found
/// it. No half-unpacked directory is left in the store's tmp/, and the
/// layer's record describes one complete unpack of the whole tar.
#[test]
fn twenty_concurrent_starts_unpack_once() {
    let Some(t) = setup_images() else { return };
    t.import("fresh:1", &[]);
    assert_eq!(std::fs::read_dir(t.root.path().join("layers")).map(|r| r.count()).unwrap_or(0), 0);
    let kids: Vec<_> = (0..20)
        .map(|i| {
            Command::new(tool_path("ci-run"))
                .env("CIROOT", t.root.path())
                .args(["--rm", "--explain", "fresh:1", "sh", "-c", &format!("echo n{i}")])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut unpacked, mut cached) = (0, 0);
    for (i, k) in kids.into_iter().enumerate() {
        let o = k.wait_with_output().unwrap();
        assert!(o.status.success(), "{i}: {}", text(&o.stderr));
        assert_eq!(text(&o.stdout).trim(), format!("n{i}"));
        let e = text(&o.stderr);
        let (u, c) = (e.matches(": unpack blob ").count(), e.matches(": already unpacked in ").count());
        assert_eq!(u + c, 1, "{i} says once what it did with the layer:\n{e}");
        unpacked += u;
        cached += c;
    }
    assert_eq!((unpacked, cached), (1, 19), "one ci-run unpacked the layer, the others found it");
    let layers: Vec<_> = std::fs::read_dir(t.root.path().join("layers")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(layers.len(), 1, "one layer directory");
    let mut inside: Vec<_> = std::fs::read_dir(&layers[0]).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    inside.sort();
    assert_eq!(inside, ["diff", "layer.json"]);
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(layers[0].join("layer.json")).unwrap()).unwrap();
    let hex = layers[0].file_name().unwrap().to_str().unwrap();
    assert_eq!(rec["diff_id"], format!("sha256:{hex}"));
    let tar = t.root.path().join("layer.tar");
    std::fs::write(&tar, &t.tar).unwrap();
    let entries = text(&Command::new("tar").arg("-tf").arg(&tar).output().unwrap().stdout).lines().count();
    assert_eq!(rec["stats"]["entries"], entries, "the record is of one unpack of every entry: {rec}");
    let tmp: Vec<_> = std::fs::read_dir(t.root.path().join("tmp")).map(|r| r.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    assert!(tmp.is_empty(), "the store's tmp/ is empty: {tmp:?}");
    assert_eq!(std::fs::read_dir(t.root.path().join("containers")).unwrap().count(), 0);
}

fn tar_of(dir: &Path) -> Vec<u8> {
    let o = Command::new("tar").arg("-C").arg(dir).args(["-cf", "-", "."]).output().unwrap();
    assert!(o.status.success());
    o.stdout
}

/// A second layer deletes a file (whiteout) and replaces a directory
/// wholesale (opaque): the container sees exactly that.
#[test]
fn two_layers_whiteout_and_opaque_directory() {
    let Some(t) = setup_images() else { return };
    let l2 = t.root.path().join("l2");
    std::fs::create_dir_all(l2.join("etc")).unwrap();
    std::fs::create_dir_all(l2.join("bin")).unwrap();
    std::fs::write(l2.join("bin/.wh.ls"), "").unwrap();
    std::fs::write(l2.join("etc/.wh..wh..opq"), "").unwrap();
    std::fs::write(l2.join("etc/only-new"), "new\n").unwrap();
    let store = Store::open(t.root.path()).unwrap();
    let mut layers = Vec::new();
    for data in [t.tar.clone(), tar_of(&l2)] {
        let (d, size) = store.put_blob(&data).unwrap();
        layers.push(Layer { blob: d.clone(), size, media_type: LAYER_TAR.to_string(), diff_id: d });
    }
    let config = image::config::new_config(layers.iter().map(|l| l.diff_id.to_string()).collect(), vec![("l1".into(), String::new()), ("l2".into(), String::new())], "2026-01-01T00:00:00Z");
    image::commit(&store, &config, &layers, &[Reference::parse("two:1").unwrap()]).unwrap();
    let out = t.out(&["--rm", "two:1", "sh", "-c", "test -e /bin/ls && echo ls-present; ls /etc | grep -v -e hostname -e hosts -e resolv.conf; test -e /bin/cat && echo cat-present"]);
    assert_eq!(out, "only-new\ncat-present", "the whiteout hid /bin/ls, the opaque /etc hid passwd and group");
}

/// Hostile layers through `ci-run`: `../` refused with a clear error; an
/// absolute path, a path through a symlink to `/`, and a hardlink to
/// `/etc/passwd` all land inside the root. The host is untouched.
#[test]
fn hostile_layers_stay_inside() {
    let Some(t) = setup_images() else { return };
    let tag = format!("{}", std::process::id());
    let passwd_before = std::fs::read("/etc/passwd").unwrap();
    let craft = |name: &str, script: &str| -> Vec<u8> {
        let out = t.root.path().join(format!("{name}.tar"));
        let py = format!(
            "import tarfile, io\nt = tarfile.open({:?}, 'w', format=tarfile.GNU_FORMAT)\n\
             def f(n, data=b'x'):\n    i = tarfile.TarInfo(n); i.size = len(data); t.addfile(i, io.BytesIO(data))\n\
             def l(n, to, hard=False):\n    i = tarfile.TarInfo(n); i.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE; i.linkname = to; t.addfile(i)\n{script}\nt.close()\n",
            out.to_str().unwrap()
        );
        assert!(Command::new("python3").arg("-c").arg(&py).status().unwrap().success());
        std::fs::read(out).unwrap()
    };
    let import = |tar: Vec<u8>, name: &str| {
        // A two-layer image: busybox, then the hostile layer.
        let store = Store::open(t.root.path()).unwrap();
        let mut layers = Vec::new();
        for data in [t.tar.clone(), tar] {
            let (d, size) = store.put_blob(&data).unwrap();
            layers.push(Layer { blob: d.clone(), size, media_type: LAYER_TAR.to_string(), diff_id: d });
        }
        let config = image::config::new_config(layers.iter().map(|l| l.diff_id.to_string()).collect(), vec![("a".into(), String::new()), ("b".into(), String::new())], "2026-01-01T00:00:00Z");
        image::commit(&store, &config, &layers, &[Reference::parse(name).unwrap()]).unwrap();
    };
    let escape = format!("ci-escape-{tag}");
    import(craft("dotdot", &format!("f('../../../../tmp/{escape}')")), "dotdot:1");
    let o = t.run(&["--rm", "dotdot:1", "true"]);
    assert_eq!(code(&o), 125, "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains(".."), "a clear error naming the entry: {}", text(&o.stderr));
    assert!(!Path::new(&format!("/tmp/{escape}")).exists());

    let abs = format!("ci-abs-{tag}");
    let pwn = format!("ci-pwn-{tag}");
    import(
        craft("inside", &format!("f('/tmp/{abs}')\nl('rootlink', '/')\nf('rootlink/tmp/{pwn}')")),
        "inside:1",
    );
    let o = t.run(&["--rm", "inside:1", "sh", "-c", &format!("ls /tmp/{abs} /tmp/{pwn}")]);
    let s = text(&o.stdout);
    assert!(o.status.success() && s.contains(&format!("/tmp/{abs}")) && s.contains(&format!("/tmp/{pwn}")), "inside the root: {s} {}", text(&o.stderr));
    for p in [format!("/tmp/{abs}"), format!("/tmp/{pwn}")] {
        assert!(!Path::new(&p).exists(), "{p} appeared on the host");
    }
    // A hardlink to /etc/passwd (not an entry of its layer), then a write through it: refused, clearly.
    import(craft("hardlink", "l('hl', '/etc/passwd', hard=True)\nf('hl', b'root::0:0::/:/bin/sh\\n')"), "hardlink:1");
    let o = t.run(&["--rm", "hardlink:1", "true"]);
    assert_eq!(code(&o), 125);
    assert!(text(&o.stderr).contains("hardlink target \"/etc/passwd\""), "{}", text(&o.stderr));
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd_before, "host /etc/passwd untouched");
}

/// CVE-2024-21626 with WORKDIR in the image, and CVE-2022-23648: an image
/// config's Volumes ("", "/", "../../etc") expose nothing of the host.
#[test]
fn hostile_image_configs() {
    let Some(t) = setup_images() else { return };
    t.import("wd:1", &["WORKDIR /proc/self/fd/7"]);
    let o = t.run(&["--rm", "wd:1", "pwd"]);
    assert_eq!(code(&o), 125, "{}", text(&o.stdout));
    assert!(text(&o.stderr).contains("symbolic link"), "{}", text(&o.stderr));
    t.import("vol:1", &[r#"VOLUME ["/", "../../etc", "/proc/../.."]"#]);
    let out = t.out(&["--rm", "vol:1", "sh", "-c", "cat /proc/mounts; test -e /work && echo HOST; true"]);
    assert!(!out.contains("HOST"));
    assert!(!out.lines().any(|l| l.starts_with("/dev/") && !l.contains("/etc/")), "no host directory is mounted: {out}");
}

/// CVE-2024-40635, CVE-2026-46680: an image's numeric `User` beyond 31 bits
/// (or negative) is an error before anything runs, never uid 0.
#[test]
fn image_user_out_of_range_is_refused() {
    let Some(t) = setup_images() else { return };
    for (i, user) in ["4294967295", "2147483648", "4294967296:0", "0:4294967296", "99999999999999999999", "-1"].iter().enumerate() {
        let tag = format!("user{i}:1");
        t.import(&tag, &[&format!("USER {user}")]);
        let o = t.run(&["--rm", &tag, "id", "-u"]);
        assert_eq!(code(&o), 125, "USER {user}: ran, printing {:?}", text(&o.stdout));
        assert!(text(&o.stdout).is_empty());
        assert!(text(&o.stderr).contains("out of range"), "USER {user}: {}", text(&o.stderr));
    }
    // The largest id is fine, and is not root.
    t.import("max:1", &["USER 2147483647:2147483647"]);
    assert_eq!(t.out(&["--rm", "max:1", "sh", "-c", "id -u; id -g"]), "2147483647\n2147483647");
    assert_eq!(std::fs::read_dir(t.root.path().join("containers")).unwrap().count(), 0);
}
