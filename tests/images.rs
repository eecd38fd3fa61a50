//! End-to-end: images in the store through `ci-build` — import, ls, tag,
//! inspect, history, rm, prune, the `-` pipe forms, bad input that must
//! leave the store as it was, and real readers (skopeo, umoci,
//! oci-image-tool) reading the store as it is.

use std::io::Write;
use std::process::{Command, Stdio};

use ci_tests::{json_lines, skip, TestRoot};

/// What a command must not change: index.json and the set of blobs.
fn snapshot(root: &TestRoot) -> (Vec<u8>, Vec<String>) {
    let index = std::fs::read(root.path().join("images/index.json")).unwrap_or_default();
    let mut blobs: Vec<String> = std::fs::read_dir(root.path().join("images/blobs/sha256"))
        .map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default();
    blobs.sort();
    (index, blobs)
}

fn ls(root: &TestRoot) -> Vec<serde_json::Value> {
    json_lines(&root.cmd("ci-build").arg("ls").assert().success().get_output().stdout)
}

/// A tiny tar holding one file with the given content.
fn tiny_tar(content: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "file", content.as_bytes()).unwrap();
    b.into_inner().unwrap()
}

fn has_tool(name: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {name}")]).stdout(Stdio::null()).status().map(|s| s.success()).unwrap_or(false)
}

#[test]
fn import_list_tag_inspect_history_rm() {
    let root = TestRoot::new();
    let Some(id) = root.busybox_image("bb:1") else { return };
    let images = ls(&root);
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["kind"], "image");
    assert_eq!(images[0]["id"], id.as_str());
    assert_eq!(images[0]["tags"], serde_json::json!(["bb:1"]));

    root.cmd("ci-build").args(["tag", "bb:1", "bb:2", "localhost:5000/ns/app:v1"]).assert().success();
    let tags = &ls(&root)[0]["tags"];
    assert_eq!(tags, &serde_json::json!(["bb:1", "bb:2", "localhost:5000/ns/app:v1"]));

    // inspect: manifest and config of the real image, by tag, full id and id prefix.
    for name in ["bb:2", id.as_str(), &id["sha256:".len().."sha256:".len() + 6]] {
        let out = root.cmd("ci-build").args(["inspect", name]).assert().success();
        let v = &json_lines(&out.get_output().stdout)[0];
        assert_eq!(v["id"], id.as_str(), "inspect {name}");
        assert_eq!(v["config"]["os"], "linux");
        assert_eq!(v["config"]["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
        assert_eq!(v["manifest"]["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar");
    }

    let hist = json_lines(&root.cmd("ci-build").args(["history", "bb:1"]).assert().success().get_output().stdout);
    assert_eq!(hist.len(), 1);
    assert_eq!(hist[0]["comment"], "Imported from -");

    // Removing a name keeps the image while other names remain.
    let out = root.cmd("ci-build").args(["rm", "bb:2"]).assert().success();
    assert_eq!(json_lines(&out.get_output().stdout)[0]["deleted"], false);
    // By id, an image with several names needs -f.
    root.cmd("ci-build").args(["rm", &id]).assert().failure().stderr(predicates::str::contains("several names"));
    let out = root.cmd("ci-build").args(["rm", "-f", &id]).assert().success();
    assert_eq!(json_lines(&out.get_output().stdout)[0]["deleted"], true);
    assert!(ls(&root).is_empty());
    // Nothing is left of it: no blob, no unpacked layer.
    assert!(snapshot(&root).1.is_empty(), "blobs left after rm: {:?}", snapshot(&root).1);
    root.cmd("ci-build").arg("fsck").assert().success();
}

#[test]
fn pipes_take_images_from_stdin() {
    let root = TestRoot::new();
    let imported = root.cmd("ci-build").args(["import", "-"]).write_stdin(tiny_tar("a")).assert().success();
    let obj = imported.get_output().stdout.clone();
    // ci-build import … | ci-build tag - app:1
    root.cmd("ci-build").args(["tag", "-", "app:1"]).write_stdin(obj.clone()).assert().success();
    let out = root.cmd("ci-build").args(["inspect", "-"]).write_stdin(obj.clone()).assert().success();
    assert_eq!(json_lines(&out.get_output().stdout)[0]["tags"], serde_json::json!(["app:1"]));
    // ls output feeds rm.
    let listed = root.cmd("ci-build").arg("ls").assert().success().get_output().stdout.clone();
    root.cmd("ci-build").args(["rm", "-"]).write_stdin(listed).assert().success();
    assert!(ls(&root).is_empty());
}

#[test]
fn history_digests_root_flag_and_exit_codes() {
    let root = TestRoot::new();
    let a = root.cmd("ci-build").args(["import", "-t", "a:1", "-"]).write_stdin(tiny_tar("a")).assert().success();
    let obj = a.get_output().stdout.clone();
    root.cmd("ci-build").args(["import", "-t", "b:1", "-"]).write_stdin(tiny_tar("b")).assert().success();
    // history - takes the image object from stdin; two objects are refused.
    let h = root.cmd("ci-build").args(["history", "-"]).write_stdin(obj.clone()).assert().success();
    assert_eq!(json_lines(&h.get_output().stdout).len(), 1);
    let two = [obj.clone(), obj.clone()].concat();
    let out = root.cmd("ci-build").args(["history", "-"]).write_stdin(two).assert().code(2);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("stdin held 2 image objects; history takes one image"));

    // name@digest names that repository's manifest, not another's with the same digest.
    let inspect = root.cmd("ci-build").args(["inspect", "a:1"]).assert().success();
    let digest = json_lines(&inspect.get_output().stdout)[0]["digest"].as_str().unwrap().to_string();
    root.cmd("ci-build").args(["inspect", &format!("a@{digest}")]).assert().success();
    let out = root.cmd("ci-build").args(["inspect", &format!("b@{digest}")]).assert().code(1);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("no such image"));

    // rm: a malformed name is a usage error (2); a missing image a failure (1), whatever comes first.
    root.cmd("ci-build").args(["rm", "Bad:Name"]).assert().code(2);
    root.cmd("ci-build").args(["rm", "Bad:Name", "nosuch:1"]).assert().code(1);
    root.cmd("ci-build").args(["rm", "nosuch:1", "Bad:Name"]).assert().code(1);

    // --root on the command line beats $CIROOT.
    let other = TestRoot::new();
    root.cmd("ci-build").arg("--root").arg(other.path()).args(["import", "-t", "elsewhere:1", "-"]).write_stdin(tiny_tar("c")).assert().success();
    assert!(ls(&root).iter().all(|i| i["tags"] != serde_json::json!(["elsewhere:1"])));
    assert_eq!(ls(&other).len(), 1);

    // On a terminal (forced here with --format table) ls prints aligned columns.
    let t = root.cmd("ci-build").args(["ls", "--format", "table"]).assert().success();
    let text = String::from_utf8_lossy(&t.get_output().stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("REPOSITORY") && lines.len() == 3, "{text}");
    let col = lines[0].find("TAG").unwrap();
    assert!(lines[1..].iter().all(|l| l.as_bytes()[col - 1] == b' ' && l.as_bytes()[col] != b' '), "TAG column not aligned:\n{text}");
}

#[test]
fn dangling_images_and_prune() {
    let root = TestRoot::new();
    root.cmd("ci-build").args(["import", "-t", "x:1", "-"]).write_stdin(tiny_tar("one")).assert().success();
    // Moving the tag leaves the first image dangling, as docker does.
    root.cmd("ci-build").args(["import", "-t", "x:1", "-"]).write_stdin(tiny_tar("two")).assert().success();
    let dangling = json_lines(&root.cmd("ci-build").args(["ls", "--filter", "dangling=true"]).assert().success().get_output().stdout);
    assert_eq!(dangling.len(), 1);
    assert_eq!(dangling[0]["tags"], serde_json::json!([]));
    let quiet = root.cmd("ci-build").args(["ls", "-q", "--filter", "reference=x"]).assert().success();
    assert_eq!(String::from_utf8_lossy(&quiet.get_output().stdout).lines().count(), 1);

    root.cmd("ci-build").arg("prune").assert().success();
    let left = ls(&root);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["tags"], serde_json::json!(["x:1"]));
    root.cmd("ci-build").args(["prune", "-a"]).assert().success();
    assert!(ls(&root).is_empty());
    assert!(snapshot(&root).1.is_empty());
}

#[test]
fn compressed_imports_are_recognised_by_content() {
    let root = TestRoot::new();
    let tar = tiny_tar("compressed");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    let mut xz = xz2::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(&tar).unwrap();
    let xz = xz.finish().unwrap();
    let mut ids = Vec::new();
    for data in [tar.clone(), gz, zst, xz] {
        let out = root.cmd("ci-build").args(["import", "-"]).write_stdin(data).assert().success();
        let v = &json_lines(&out.get_output().stdout)[0];
        let inspect = root.cmd("ci-build").args(["inspect", v["id"].as_str().unwrap()]).assert().success();
        let cfg = &json_lines(&inspect.get_output().stdout)[0]["config"];
        ids.push(cfg["rootfs"]["diff_ids"][0].as_str().unwrap().to_string());
    }
    // The layer is stored uncompressed: the same diff_id whatever the input's compression.
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let root = TestRoot::new();
    root.cmd("ci-build").args(["import", "-t", "keep:1", "-"]).write_stdin(tiny_tar("keep")).assert().success();
    let before = snapshot(&root);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tiny_tar(&"x".repeat(100_000))).unwrap();
    let mut truncated = gz.finish().unwrap();
    truncated.truncate(truncated.len() / 2);

    let cases: Vec<(Vec<&str>, Vec<u8>, &str)> = vec![
        (vec!["import", "-"], b"this is not a tar archive at all, just text that is long enough".repeat(20), "not a tar archive"),
        (vec!["import", "-"], truncated, "not a gzip-compressed tar archive, or truncated"),
        (vec!["import", "-"], Vec::new(), "empty input"),
        (vec!["import", "-t", "Bad:Name", "-"], tiny_tar("x"), "lowercase"),
        (vec!["import", "-t", "app:-tag", "-"], tiny_tar("x"), "invalid tag"),
        (vec!["inspect", "nosuch:1"], Vec::new(), "no such image: nosuch:1"),
        (vec!["rm", "nosuch:1"], Vec::new(), "no such image"),
        (vec!["tag", "keep:1", "x@sha256:e58fcf7418d4390dec8e8fb69d88c06ec07039d651fedd3aa72af9972e7d046b"], Vec::new(), "digest"),
        (vec!["tag", "-", "x:1"], b"{\"kind\":\"image\"\ngarbage".to_vec(), "stdin line 1"),
        (vec!["tag", "-", "x:1"], b"\x00\x01\x02".to_vec(), "not JSON"),
        (vec!["tag", "-", "x:1"], b"{\"kind\":\"volume\",\"id\":\"v\"}".to_vec(), "expected an image object"),
        (vec!["tag", "-", "x:1"], Vec::new(), "stdin held no image object"),
        (vec!["ls", "--filter", "color=red"], Vec::new(), "unknown filter"),
    ];
    for (args, stdin, want) in cases {
        let out = root.cmd("ci-build").args(&args).write_stdin(stdin).assert().failure();
        let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(err.starts_with("ci-build: error: "), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: expected {want:?} in {err:?}");
        assert_eq!(snapshot(&root), before, "{args:?} changed the store");
    }
    // A usage error exits 2, a failure 1.
    root.cmd("ci-build").args(["inspect", "nosuch:1"]).assert().code(1);
    root.cmd("ci-build").args(["import", "-t", "Bad", "-"]).write_stdin(tiny_tar("x")).assert().code(2);
    root.cmd("ci-build").arg("fsck").assert().success();
}

#[test]
fn ambiguous_id_prefix_lists_the_candidates() {
    let root = TestRoot::new();
    // 17 images: two must share the first hex digit of their id.
    let mut ids = Vec::new();
    for i in 0..17 {
        let out = root.cmd("ci-build").args(["import", "-"]).write_stdin(tiny_tar(&format!("image {i}"))).assert().success();
        ids.push(json_lines(&out.get_output().stdout)[0]["id"].as_str().unwrap()[7..].to_string());
    }
    let shared = ids.iter().find(|a| ids.iter().filter(|b| b[..1] == a[..1]).count() > 1).unwrap();
    let prefix = &shared[..1];
    let before = snapshot(&root);
    let out = root.cmd("ci-build").args(["rm", prefix]).assert().failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("ambiguous"), "{err}");
    for id in ids.iter().filter(|i| i.starts_with(prefix)) {
        assert!(err.contains(&id[..12]), "candidate {id} not listed: {err}");
    }
    assert_eq!(snapshot(&root), before);
}

#[test]
fn concurrent_taggers_lose_no_update() {
    let root = TestRoot::new();
    root.cmd("ci-build").args(["import", "-t", "base:1", "-"]).write_stdin(tiny_tar("base")).assert().success();
    let children: Vec<_> = (0..8)
        .map(|i| {
            Command::new(ci_tests::tool_path("ci-build"))
                .env("CIROOT", root.path())
                .args(["tag", "base:1", &format!("t{i}:1"), &format!("u{i}:1")])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let tags = ls(&root)[0]["tags"].as_array().unwrap().len();
    assert_eq!(tags, 17, "every tag of every concurrent writer must survive");
    root.cmd("ci-build").arg("fsck").assert().success();
}

#[test]
fn kill_9_during_import_never_corrupts_the_store() {
    let root = TestRoot::new();
    // A few MB of incompressible data so the import takes a while.
    let mut data = vec![0u8; 8 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..4 {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, format!("blob{i}"), &data[..]).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let file = root.path().join("big.tar");
    std::fs::write(&file, &tar).unwrap();
    for i in 0..20u64 {
        let mut child = Command::new(ci_tests::tool_path("ci-build"))
            .env("CIROOT", root.path().join("store"))
            .args(["import", "-t", &format!("big:{i}"), file.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill at a different moment each time, from "just started" to "probably done".
        std::thread::sleep(std::time::Duration::from_millis(i * 7));
        let _ = child.kill();
        let _ = child.wait();
        let mut c = assert_cmd::Command::new(ci_tests::tool_path("ci-build"));
        c.env("CIROOT", root.path().join("store")).arg("fsck").assert().success();
        let mut c = assert_cmd::Command::new(ci_tests::tool_path("ci-build"));
        c.env("CIROOT", root.path().join("store")).arg("ls").assert().success();
    }
    // Nothing half-written is left in tmp, and a rerun completes.
    let mut c = assert_cmd::Command::new(ci_tests::tool_path("ci-build"));
    c.env("CIROOT", root.path().join("store")).args(["import", "-t", "big:done", file.to_str().unwrap()]).assert().success();
    let leftovers: Vec<_> = std::fs::read_dir(root.path().join("store/tmp")).unwrap().collect();
    assert!(leftovers.is_empty(), "tmp not cleaned: {leftovers:?}");
}

#[test]
fn real_readers_accept_the_store() {
    let root = TestRoot::new();
    let Some(_) = root.busybox_image("bb:1") else { return };
    let layout = root.path().join("images");
    let oci = format!("oci:{}:docker.io/library/bb:1", layout.display());
    for tool in ["skopeo", "umoci", "oci-image-tool"] {
        if !has_tool(tool) {
            skip(&format!("{tool} is not installed (apt-get install {tool})"));
            return;
        }
    }
    let out = Command::new("skopeo").args(["inspect", &oci]).output().unwrap();
    assert!(out.status.success(), "skopeo inspect: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1);

    let out = Command::new("umoci").args(["stat", "--image", &format!("{}:docker.io/library/bb:1", layout.display())]).output().unwrap();
    assert!(out.status.success(), "umoci stat: {}", String::from_utf8_lossy(&out.stderr));

    let out = Command::new("oci-image-tool")
        .args(["validate", "--type", "image", "--ref", "name=docker.io/library/bb:1", layout.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oci-image-tool validate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
