//! ci-push and ci-pull against the real distribution registry, with skopeo
//! as the second client: what we push, skopeo reads; what skopeo pushes, we
//! pull; a re-push sends nothing; a push to another repository mounts.

use ci_tests::registry::{cmd, run_skopeo, skopeo, RegistryOptions, TestRegistry};
use ci_tests::{json_lines, TestRoot};
use serde_json::Value;

fn one(out: &assert_cmd::assert::Assert) -> Value {
    let v = json_lines(&out.get_output().stdout);
    assert_eq!(v.len(), 1, "one object expected: {v:?}");
    v.into_iter().next().unwrap()
}

fn skopeo_digest(reference: &str) -> String {
    let v: Value = serde_json::from_str(&run_skopeo(&["inspect", "--tls-verify=false", reference])).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

#[test]
fn push_repush_mount_and_pull_back() {
    let Some(reg) = TestRegistry::start(RegistryOptions::default()) else { return };
    if !skopeo() {
        return;
    }
    let root = TestRoot::new();
    let name = format!("{}/bb:1", reg.host());
    let Some(id) = root.busybox_image(&name) else { return };

    let pushed = one(&cmd(&root, "ci-push").arg(&name).assert().success());
    assert_eq!(pushed["kind"], "image");
    assert_eq!(pushed["id"], id.as_str());
    assert_eq!(pushed["reference"], name.as_str());
    assert_eq!(pushed["uploaded"], 2, "a layer and a config: {pushed}");
    let digest = pushed["digest"].as_str().unwrap().to_string();
    // skopeo reads what we pushed, and sees the same manifest digest.
    assert_eq!(skopeo_digest(&format!("docker://{name}")), digest);
    assert!(reg.requests("PATCH", "/blobs/uploads/") >= 1, "the layer goes up in chunks");

    // A second push sends nothing: no upload session, no blob, no manifest PUT.
    let (posts, patches, puts) = (reg.requests("POST", "/blobs/uploads/"), reg.requests("PATCH", "/"), reg.requests("PUT", "/"));
    let heads = reg.requests("HEAD", "/blobs/sha256:");
    let again = one(&cmd(&root, "ci-push").arg(&name).assert().success());
    assert_eq!(again["uploaded"], 0);
    assert_eq!(again["digest"], digest.as_str(), "compression is deterministic and remembered");
    assert_eq!((reg.requests("POST", "/blobs/uploads/"), reg.requests("PATCH", "/"), reg.requests("PUT", "/")), (posts, patches, puts));
    assert_eq!(reg.requests("HEAD", "/blobs/sha256:"), heads + 2, "one HEAD per blob, nothing else");

    // Another repository of the same registry: the blobs are mounted, not uploaded.
    let other = format!("{}/team/other:2", reg.host());
    let mounted = one(&cmd(&root, "ci-push").args([&name, &other]).assert().success());
    assert_eq!(mounted["uploaded"], 0);
    assert_eq!(reg.requests("POST", "mount=sha256:"), 2, "layer and config mounted: {}", reg.log());
    assert_eq!(reg.requests("PATCH", "/"), patches);
    assert_eq!(skopeo_digest(&format!("docker://{other}")), digest);

    // Remove it locally and pull it back: the registry's manifest, byte for byte.
    cmd(&root, "ci-build").args(["rm", &name]).assert().success();
    let pulled = one(&cmd(&root, "ci-pull").arg(&name).assert().success());
    assert_eq!(pulled["id"], id.as_str());
    assert_eq!(pulled["digest"], digest.as_str());
    let ls = json_lines(&cmd(&root, "ci-build").args(["ls", "--format", "json"]).assert().success().get_output().stdout);
    assert_eq!(ls.len(), 1);
    assert_eq!(ls[0]["digest"], digest.as_str());
    cmd(&root, "ci-build").arg("fsck").assert().success();
    // And it runs: its gzip layer (stored as the registry served it) unpacks and boots.
    let ran = cmd(&root, "ci-run").args(["--rm", &name, "sh", "-c", "echo pulled-and-running; cat /etc/passwd"]).assert().success();
    let out = String::from_utf8_lossy(&ran.get_output().stdout).to_string();
    assert!(out.starts_with("pulled-and-running\nroot:x:0:0:"), "{out}");
    // The pulled image goes back out as it came: same digest, nothing uploaded.
    let back = one(&cmd(&root, "ci-push").args([&name, &format!("{}/back:1", reg.host())]).assert().success());
    assert_eq!((back["digest"].as_str(), back["uploaded"].as_u64()), (Some(digest.as_str()), Some(0)));
    // skopeo copies what we pushed.
    let oci = root.path().join("skopeo-oci");
    run_skopeo(&["copy", "--src-tls-verify=false", &format!("docker://{name}"), &format!("oci:{}:x", oci.display())]);
    // A pull by digest names the image by digest.
    let fresh = TestRoot::new();
    let by_digest = format!("{}/bb@{digest}", reg.host());
    let p = one(&cmd(&fresh, "ci-pull").arg(&by_digest).assert().success());
    assert_eq!(p["digest"], digest.as_str());
    assert_eq!(p["tags"][0], by_digest.as_str());
}

#[test]
fn skopeo_pushes_docker_schema2_and_we_pull_it() {
    let Some(reg) = TestRegistry::start(RegistryOptions::default()) else { return };
    if !skopeo() {
        return;
    }
    let root = TestRoot::new();
    if root.busybox_image("bb:1").is_none() {
        return;
    }
    let layout = root.path().join("layout");
    cmd(&root, "ci-push").args(["bb:1", &format!("oci:{}:1", layout.display())]).assert().success();
    let dest = format!("{}/sk:1", reg.host());
    run_skopeo(&["copy", "--format", "v2s2", "--dest-tls-verify=false", &format!("oci:{}:1", layout.display()), &format!("docker://{dest}")]);
    let theirs = skopeo_digest(&format!("docker://{dest}"));

    let fresh = TestRoot::new();
    let p = one(&cmd(&fresh, "ci-pull").arg(&dest).assert().success());
    assert_eq!(p["digest"], theirs.as_str(), "stored as served");
    let index: Value = serde_json::from_slice(&std::fs::read(fresh.path().join("images/index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    let inspect = json_lines(&cmd(&fresh, "ci-build").args(["inspect", &dest]).assert().success().get_output().stdout);
    assert_eq!(inspect[0]["digest"], theirs.as_str());
    // Pushed back unchanged, it keeps skopeo's digest.
    let back = format!("{}/sk2:1", reg.host());
    let b = one(&cmd(&fresh, "ci-push").args([&dest, &back]).assert().success());
    assert_eq!(b["digest"], theirs.as_str());
    assert_eq!(skopeo_digest(&format!("docker://{back}")), theirs);
}

#[test]
fn zstd_all_tags_and_platforms() {
    let Some(reg) = TestRegistry::start(RegistryOptions::default()) else { return };
    if !skopeo() {
        return;
    }
    let root = TestRoot::new();
    let repo = format!("{}/multi", reg.host());
    if root.busybox_image(&format!("{repo}:a")).is_none() {
        return;
    }
    cmd(&root, "ci-build").args(["tag", &format!("{repo}:a"), &format!("{repo}:b")]).assert().success();
    let out = cmd(&root, "ci-push").args(["--all-tags", "--compression", "zstd", &repo]).assert().success();
    let objs = json_lines(&out.get_output().stdout);
    assert_eq!(objs.len(), 2);
    let raw: Value = serde_json::from_str(&run_skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{repo}:b")])).unwrap();
    assert_eq!(raw["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd");

    let fresh = TestRoot::new();
    let out = cmd(&fresh, "ci-pull").args(["--all-tags", &repo]).assert().success();
    let mut tags: Vec<String> = json_lines(&out.get_output().stdout).iter().map(|o| o["reference"].as_str().unwrap().to_string()).collect();
    tags.sort();
    assert_eq!(tags, vec![format!("{repo}:a"), format!("{repo}:b")]);

    // An index with two platforms (one real, one made up), pushed by skopeo.
    let layout = root.path().join("idx");
    cmd(&root, "ci-push").args([&format!("{repo}:a"), &format!("oci:{}:one", layout.display())]).assert().success();
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = &index["manifests"][0];
    let img_index = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"], "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"], "platform": {"os": "linux", "architecture": "amd64"}}
        ]
    });
    let bytes = serde_json::to_vec(&img_index).unwrap();
    let d = ci_core::digest::Digest::sha256_of(&bytes);
    std::fs::write(layout.join("blobs/sha256").join(d.encoded()), &bytes).unwrap();
    let mut top = index.clone();
    top["manifests"] = serde_json::json!([{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d.to_string(), "size": bytes.len(), "annotations": {"org.opencontainers.image.ref.name": "idx"}}]);
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    run_skopeo(&["copy", "--all", "--dest-tls-verify=false", &format!("oci:{}:idx", layout.display()), &format!("docker://{repo}:idx")]);
    let p = TestRoot::new();
    let got = one(&cmd(&p, "ci-pull").arg(format!("{repo}:idx")).assert().success());
    assert_eq!(got["digest"], m["digest"], "the amd64 manifest, not the index");
    let got = one(&cmd(&p, "ci-pull").args(["--platform", "linux/arm64", &format!("{repo}:idx")]).assert().success());
    assert_eq!(got["digest"], m["digest"]);
    let e = cmd(&p, "ci-pull").args(["--platform", "linux/s390x", &format!("{repo}:idx")]).assert().failure();
    let err = String::from_utf8_lossy(&e.get_output().stderr).to_string();
    assert!(err.contains("linux/s390x") && err.contains("linux/arm64/v8, linux/amd64"), "{err}");
    // The same index straight from the layout.
    let got = one(&cmd(&TestRoot::new(), "ci-pull").arg(format!("oci:{}:idx", layout.display())).assert().success());
    assert_eq!(got["digest"], m["digest"]);
}

#[test]
fn archives_for_docker_load_and_from_skopeo() {
    if !skopeo() {
        return;
    }
    let root = TestRoot::new();
    let Some(id) = root.busybox_image("bb:1") else { return };
    let tar = root.path().join("bb.tar");
    let o = one(&cmd(&root, "ci-push").args(["bb:1", &format!("docker-archive:{}:saved/bb:7", tar.display())]).assert().success());
    assert_eq!(o["id"], id.as_str());
    // skopeo reads our `docker save` archive: the same config, so the same image id.
    let conf = run_skopeo(&["inspect", "--config", "--raw", &format!("docker-archive:{}", tar.display())]);
    assert_eq!(ci_core::digest::Digest::sha256_of(conf.as_bytes()).to_string(), id);
    let mj: Value = {
        let out = std::process::Command::new("tar").args(["-xOf", tar.to_str().unwrap(), "manifest.json"]).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(mj[0]["RepoTags"][0], "saved/bb:7");

    // skopeo writes a docker-archive; we load it, from a file and from stdin.
    let sk = root.path().join("sk.tar");
    run_skopeo(&["copy", &format!("docker-archive:{}", tar.display()), &format!("docker-archive:{}:from/skopeo:1", sk.display())]);
    let fresh = TestRoot::new();
    let l = one(&cmd(&fresh, "ci-pull").arg(format!("docker-archive:{}", sk.display())).assert().success());
    assert_eq!(l["id"], id.as_str());
    assert_eq!(l["tags"][0], "from/skopeo:1");
    let l = one(&cmd(&TestRoot::new(), "ci-pull").arg("-").write_stdin(std::fs::read(&tar).unwrap()).assert().success());
    assert_eq!((l["id"].as_str(), l["tags"][0].as_str()), (Some(id.as_str()), Some("saved/bb:7")));
    cmd(&fresh, "ci-build").arg("fsck").assert().success();

    // OCI archive and directory: skopeo reads both; we read them back.
    let oa = root.path().join("bb.oci.tar");
    let o = one(&cmd(&root, "ci-push").args(["bb:1", &format!("oci-archive:{}:v1", oa.display())]).assert().success());
    let sk: Value = serde_json::from_str(&run_skopeo(&["inspect", &format!("oci-archive:{}:v1", oa.display())])).unwrap();
    assert_eq!(sk["Digest"], o["digest"]);
    let l = one(&cmd(&TestRoot::new(), "ci-pull").arg(format!("oci-archive:{}:v1", oa.display())).assert().success());
    assert_eq!((&l["id"], &l["digest"]), (&o["id"], &o["digest"]));
    let od = root.path().join("bb.oci");
    let o2 = one(&cmd(&root, "ci-push").args(["bb:1", &format!("oci:{}:v1", od.display())]).assert().success());
    assert_eq!(o2["digest"], o["digest"], "the same compressed layers whatever the destination");
    let sk: Value = serde_json::from_str(&run_skopeo(&["inspect", &format!("oci:{}:v1", od.display())])).unwrap();
    assert_eq!(sk["Digest"], o["digest"]);
}

/// A manifest as the registry serves it for `accept`: its bytes.
fn get_manifest(reg: &TestRegistry, repo_ref: &str, accept: &str) -> Vec<u8> {
    let (repo, r) = repo_ref.split_once(':').unwrap();
    let mut resp = ureq::get(format!("http://{}/v2/{repo}/manifests/{r}", reg.host())).header("accept", accept).call().expect("GET manifest");
    resp.body_mut().read_to_vec().expect("manifest body")
}

#[test]
fn docker_manifest_lists_choose_the_platform() {
    const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    let Some(reg) = TestRegistry::start(RegistryOptions::default()) else { return };
    if !skopeo() {
        return;
    }
    // Two different images, each pushed by skopeo as a Docker schema2 manifest.
    let root = TestRoot::new();
    let Some(host_id) = root.busybox_image("bb:1") else { return };
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(8);
    h.set_mode(0o644);
    b.append_data(&mut h, "platform", &b"ppc64le\n"[..]).unwrap();
    let out = cmd(&root, "ci-build").args(["import", "-t", "other:1", "-"]).write_stdin(b.into_inner().unwrap()).assert().success();
    let other_id = one(&out)["id"].as_str().unwrap().to_string();
    let layout = root.path().join("layout");
    let mut entries = Vec::new();
    let host = ci_core::distribution::manifest::Platform::host();
    for (tag, image, platform) in [
        ("other", "other:1", serde_json::json!({"os": "linux", "architecture": "ppc64le"})),
        ("host", "bb:1", serde_json::json!({"os": host.os, "architecture": host.architecture, "variant": host.variant})),
    ] {
        cmd(&root, "ci-push").args([image, &format!("oci:{}:{tag}", layout.display())]).assert().success();
        run_skopeo(&["copy", "--format", "v2s2", "--dest-tls-verify=false", &format!("oci:{}:{tag}", layout.display()), &format!("docker://{}/ml:{tag}", reg.host())]);
        let bytes = get_manifest(&reg, &format!("ml:{tag}"), DOCKER_MANIFEST);
        let digest = ci_core::digest::Digest::sha256_of(&bytes).to_string();
        assert_eq!(skopeo_digest(&format!("docker://{}/ml:{tag}", reg.host())), digest);
        let mut p = platform;
        if p["variant"].is_null() {
            p.as_object_mut().unwrap().remove("variant");
        }
        entries.push(serde_json::json!({"mediaType": DOCKER_MANIFEST, "size": bytes.len(), "digest": digest, "platform": p}));
    }
    // The manifest list, put by hand (the other platform first: the choice must be made).
    let list = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": entries})).unwrap();
    ureq::put(format!("http://{}/v2/ml/manifests/list", reg.host())).header("content-type", DOCKER_LIST).send(&list[..]).expect("PUT the manifest list");
    let served: Value = serde_json::from_str(&run_skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{}/ml:list", reg.host())])).unwrap();
    assert_eq!(served["mediaType"], DOCKER_LIST);

    let name = format!("{}/ml:list", reg.host());
    let fresh = TestRoot::new();
    let got = one(&cmd(&fresh, "ci-pull").arg(&name).assert().success());
    assert_eq!((got["id"].as_str(), &got["digest"]), (Some(host_id.as_str()), &entries[1]["digest"]), "this machine's platform ({host}), not the first entry");
    let index: Value = serde_json::from_slice(&std::fs::read(fresh.path().join("images/index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["mediaType"], DOCKER_MANIFEST, "the chosen manifest is stored, not the list");
    let ran = cmd(&fresh, "ci-run").args(["--rm", &name, "echo", "the host image"]).assert().success();
    assert_eq!(String::from_utf8_lossy(&ran.get_output().stdout), "the host image\n");
    let other = TestRoot::new();
    let got = one(&cmd(&other, "ci-pull").args(["--platform", "linux/ppc64le", &name]).assert().success());
    assert_eq!((got["id"].as_str(), &got["digest"]), (Some(other_id.as_str()), &entries[0]["digest"]));
    let e = cmd(&other, "ci-pull").args(["--platform", "linux/s390x", &name]).assert().failure();
    let err = String::from_utf8_lossy(&e.get_output().stderr).to_string();
    assert!(err.contains("linux/s390x") && err.contains(&format!("linux/ppc64le, {host}")), "{err}");
    cmd(&other, "ci-build").arg("fsck").assert().success();
}

#[test]
fn push_of_an_image_object_on_stdin() {
    let Some(reg) = TestRegistry::start(RegistryOptions::default()) else { return };
    if !skopeo() {
        return;
    }
    let root = TestRoot::new();
    let Some(tar) = ci_tests::busybox_rootfs_tar() else { return };
    let tar_path = root.path().join("rootfs.tar");
    std::fs::write(&tar_path, tar).unwrap();
    // A real pipe: `ci-build import … | ci-push - DEST`, and `ci-push -` to the image's own name.
    let dest = format!("{}/piped/bb:1", reg.host());
    let own = format!("{}/own/bb:2", reg.host());
    let pipe = |script: &str| {
        let out = std::process::Command::new("sh")
            .args(["-c", script, "sh", ci_tests::tool_path("ci-build").to_str().unwrap(), ci_tests::tool_path("ci-push").to_str().unwrap(), tar_path.to_str().unwrap(), &dest, &own])
            .env("CIROOT", root.path())
            .env("DOCKER_CONFIG", ci_tests::registry::docker_config_dir(&root))
            .env_remove("CIEXPLAIN")
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
        json_lines(&out.stdout)
    };
    let pushed = pipe(r#""$1" import -t local/bb:1 - < "$3" | "$2" - "$4""#);
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    let ls = json_lines(&cmd(&root, "ci-build").args(["ls", "--format", "json"]).assert().success().get_output().stdout);
    assert_eq!((pushed[0]["id"].as_str(), pushed[0]["reference"].as_str(), pushed[0]["uploaded"].as_u64()), (ls[0]["id"].as_str(), Some(dest.as_str()), Some(2)));
    assert_eq!(skopeo_digest(&format!("docker://{dest}")), pushed[0]["digest"].as_str().unwrap());
    // Another image (its config differs by a --change) with the same layer, pushed to its
    // only name: the layer is mounted from the first repository.
    let mounts = reg.requests("POST", "mount=");
    let again = pipe(r#""$1" import -c "ENV SECOND=1" -t "$5" - < "$3" | "$2" -"#);
    assert_eq!((again[0]["reference"].as_str(), again[0]["uploaded"].as_u64()), (Some(own.as_str()), Some(1)), "{again:?}");
    assert_eq!(reg.requests("POST", "mount="), mounts + 1);
    assert_eq!(skopeo_digest(&format!("docker://{own}")), again[0]["digest"].as_str().unwrap());
    // Something on stdin that is no image object is refused before any request.
    let requests = reg.log().lines().filter(|l| l.contains("\"GET /v2/")).count();
    let e = cmd(&root, "ci-push").args(["-", &dest]).write_stdin("not an object\n").assert().failure();
    let err = String::from_utf8_lossy(&e.get_output().stderr).to_string();
    assert!(err.contains("stdin"), "{err}");
    assert_eq!(reg.log().lines().filter(|l| l.contains("\"GET /v2/")).count(), requests);
}
