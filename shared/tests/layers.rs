//! Layers against the real kernel: the layer cache in a store, whiteouts
//! and opaque directories read back through overlayfs, layers made from an
//! overlay upper directory and applied again, concurrency, corrupt blobs and
//! a full disk. Every mount is detached by a guard, also when a test fails.

mod layer_support;

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use ci_core::compression::{self, Compression};
use ci_core::digest::Digest;
use ci_core::image::{self, Image, Layer};
use ci_core::layer::{self, DiffOptions};
use ci_core::store::Store;
use ci_core::testsupport::privileged;
use layer_support::*;

fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = compression::writer_for(c, &mut out, None).unwrap();
    w.write_all(data).unwrap();
    w.finish_box().unwrap();
    out
}

/// Store `tar` as a layer blob in compression `c`, with the given media type.
fn put_layer(store: &Store, tar: &[u8], c: Compression, media_type: &str) -> Layer {
    let (blob, size) = store.put_blob(&compress(c, tar)).unwrap();
    Layer { blob, size, media_type: media_type.to_string(), diff_id: Digest::sha256_of(tar) }
}

fn image_of(store: &Store, layers: &[Layer]) -> Image {
    let diff_ids = layers.iter().map(|l| l.diff_id.to_string()).collect();
    let history = layers.iter().map(|_| ("test".to_string(), String::new())).collect();
    let config = image::config::new_config(diff_ids, history, "2024-01-01T00:00:00Z");
    image::commit(store, &config, layers, &[]).unwrap()
}

fn new_store() -> (tempfile::TempDir, Store) {
    let tmp = tempfile::Builder::new().prefix("ci-layers-").tempdir().unwrap();
    let store = Store::open(&tmp.path().join("root")).unwrap();
    (tmp, store)
}

fn is_whiteout(p: &Path) -> bool {
    std::fs::symlink_metadata(p).map(|m| m.file_type().is_char_device() && m.rdev() == 0).unwrap_or(false)
}

#[test]
fn whiteouts_and_opaque_dirs_through_overlayfs() {
    if !privileged("overlayfs mounts") {
        return;
    }
    let (tmp, store) = new_store();
    let l1 = tar(&[
        Raw::dir("etc"),
        Raw::file("etc/keep", "kept"),
        Raw::file("etc/gone", "deleted by layer 2"),
        Raw::symlink("etc/link", "/etc/keep"),
        Raw::dir("app"),
        Raw::file("app/old1", "1"),
        Raw::dir("app/sub"),
        Raw::file("app/sub/x", "x"),
    ]);
    let l2 = tar(&[
        Raw::dir("etc"),
        Raw::file("etc/.wh.gone", ""),
        Raw::file("etc/.wh.link", ""),
        Raw::dir("app"),
        Raw::file("app/new", "replaced"),
        Raw::file("app/.wh..wh..opq", ""),
    ]);
    // Two compressions, named by media type; the image says which is which.
    let layers = [
        put_layer(&store, &l1, Compression::Gzip, "application/vnd.oci.image.layer.v1.tar+gzip"),
        put_layer(&store, &l2, Compression::Zstd, "application/vnd.oci.image.layer.v1.tar+zstd"),
    ];
    let img = image_of(&store, &layers);
    let dirs = layer::ensure_image_unpacked(&store, &img).unwrap();
    assert_eq!(dirs.len(), 2);
    assert_eq!(dirs[0], layer::layer_dir(&store, &layers[0].diff_id).join("diff"));
    // On disk, the overlayfs way.
    assert!(is_whiteout(&dirs[1].join("etc/gone")) && is_whiteout(&dirs[1].join("etc/link")));
    assert_eq!(xattr::get(dirs[1].join("app"), "trusted.overlay.opaque").unwrap().as_deref(), Some(&b"y"[..]));
    assert!(!dirs[1].join("app/.wh..wh..opq").exists() && !dirs[1].join("etc/.wh.gone").exists());

    let merged = tmp.path().join("merged");
    std::fs::create_dir(&merged).unwrap();
    let m = Overlay::mount(&[&dirs[1], &dirs[0]], &merged);
    assert_eq!(std::fs::read(merged.join("etc/keep")).unwrap(), b"kept");
    assert!(!merged.join("etc/gone").exists(), "the deleted file is gone");
    assert!(std::fs::symlink_metadata(merged.join("etc/link")).is_err(), "the deleted symlink is gone");
    assert_eq!(tree(&merged.join("app")), vec!["new"], "the replaced directory is opaque");
    m.unmount();

    // A second container from the same image unpacks nothing.
    for l in &layers {
        assert!(!layer::ensure(&store, l).unwrap().unpacked);
    }
    assert_eq!(layer::ensure_image_unpacked(&store, &img).unwrap(), dirs);
}

#[test]
fn an_opaque_root_hides_every_layer_below() {
    if !privileged("overlayfs mounts") {
        return;
    }
    let (tmp, store) = new_store();
    let l1 = tar(&[Raw::file("old", "o"), Raw::dir("d"), Raw::file("d/x", "x")]);
    let l2 = tar(&[Raw::file("mid", "m")]);
    let l3 = tar(&[Raw::file(".wh..wh..opq", ""), Raw::file("new", "n")]);
    let l4 = tar(&[Raw::file("top", "t")]);
    let layers: Vec<Layer> = [l1, l2, l3, l4]
        .iter()
        .map(|t| put_layer(&store, t, Compression::None, image::LAYER_TAR))
        .collect();
    let img = image_of(&store, &layers);
    let dirs = layer::ensure_image_unpacked(&store, &img).unwrap();
    assert_eq!(dirs.len(), 2, "layers 1 and 2 are hidden by layer 3's opaque root");
    let merged = tmp.path().join("merged");
    std::fs::create_dir(&merged).unwrap();
    let _m = Overlay::mount(&[&dirs[1], &dirs[0]], &merged);
    assert_eq!(tree(&merged), vec!["new", "top"]);
}

/// Make the same set of changes through a writable overlay.
fn change(merged: &Path) {
    let p = |s: &str| merged.join(s);
    std::fs::write(p("new-file"), "created").unwrap(); // create
    std::fs::write(p("etc/config"), "modified").unwrap(); // modify
    std::fs::set_permissions(p("bin/tool"), std::fs::Permissions::from_mode(0o4711)).unwrap(); // chmod (setuid)
    nix::unistd::chown(&p("etc/owned"), Some(1000.into()), Some(1000.into())).unwrap(); // chown
    std::fs::remove_file(p("etc/obsolete")).unwrap(); // delete a file
    std::fs::remove_dir_all(p("var/cache")).unwrap(); // delete a tree
    std::fs::remove_dir_all(p("opt/app")).unwrap(); // replace a directory ...
    std::fs::create_dir(p("opt/app")).unwrap();
    std::fs::write(p("opt/app/only"), "fresh").unwrap(); // ... wholesale: opaque
    std::fs::rename(p("etc/old-name"), p("etc/new-name")).unwrap(); // rename a file
    std::os::unix::fs::symlink("../etc/config", p("bin/cfg")).unwrap();
    std::fs::write(p("bin/a"), "linked").unwrap();
    std::fs::hard_link(p("bin/a"), p("bin/b")).unwrap();
    xattr::set(p("new-file"), "user.origin", b"test").unwrap();
    nix::unistd::mkfifo(&p("run/fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    std::fs::create_dir_all(p("deep/er/est")).unwrap();
    std::fs::write(p("deep/er/est/file"), vec![7u8; 300_000]).unwrap();
    std::fs::write(p("sparse"), vec![0u8; 1 << 20]).unwrap();
}

fn lower_tar() -> Vec<u8> {
    tar(&[
        Raw::dir("bin"),
        Raw::file("bin/tool", "#!/bin/sh\n").mode(0o755),
        Raw::dir("etc"),
        Raw::file("etc/config", "original"),
        Raw::file("etc/owned", "o"),
        Raw::file("etc/obsolete", "x"),
        Raw::file("etc/old-name", "renamed"),
        Raw::dir("var"),
        Raw::dir("var/cache"),
        Raw::dir("var/cache/a"),
        Raw::file("var/cache/a/b", "b"),
        Raw::dir("opt"),
        Raw::dir("opt/app"),
        Raw::file("opt/app/lib", "l"),
        Raw::dir("opt/app/plugins"),
        Raw::file("opt/app/plugins/p", "p"),
        Raw::dir("run"),
    ])
}

/// Unpack the lower layer, change things through a writable overlay, and
/// return (the merged view's snapshot, the upper dir). Keeps `tmp` alive.
fn changed_upper(tmp: &Path) -> (std::collections::BTreeMap<String, Node>, PathBuf) {
    let lower = tmp.join("lower");
    let (upper, work, merged) = (tmp.join("upper"), tmp.join("work"), tmp.join("merged"));
    for d in [&lower, &upper, &work, &merged] {
        std::fs::create_dir(d).unwrap();
    }
    layer::unpack(&lower_tar()[..], &lower).unwrap();
    let m = Overlay::mount_rw(&[&lower], &upper, &work, &merged);
    change(&merged);
    let snap = snapshot(&merged, true);
    m.unmount();
    (snap, upper)
}

#[test]
fn diff_of_an_overlay_upper_dir_round_trips() {
    if !privileged("overlayfs mounts") {
        return;
    }
    let tmp = tempfile::Builder::new().prefix("ci-diff-").tempdir().unwrap();
    let (merged, upper) = changed_upper(tmp.path());
    // The upper dir holds overlayfs's own records of the changes.
    assert!(is_whiteout(&upper.join("etc/obsolete")) && is_whiteout(&upper.join("var/cache")));
    assert_eq!(xattr::get(upper.join("opt/app"), "trusted.overlay.opaque").unwrap().as_deref(), Some(&b"y"[..]));

    let layer_tar = layer::write_diff(&upper, Vec::new(), &DiffOptions::default()).unwrap();
    let names: Vec<String> = tar::Archive::new(&layer_tar[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().to_string())
        .collect();
    for want in ["etc/.wh.obsolete", "etc/.wh.old-name", "var/.wh.cache", "opt/app/.wh..wh..opq", "etc/", "etc/config"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        names.iter().filter(|n| !n.ends_with(".wh..wh..opq")).collect::<Vec<_>>(),
        sorted.iter().filter(|n| !n.ends_with(".wh..wh..opq")).collect::<Vec<_>>(),
        "entries are sorted by name (opaque markers right after their directory)"
    );

    // Applied on top of a copy of the lower layer, it gives the merged tree.
    let target = tmp.path().join("target");
    std::fs::create_dir(&target).unwrap();
    layer::apply(&lower_tar()[..], &target).unwrap();
    layer::apply(&layer_tar[..], &target).unwrap();
    let d = diff_snapshots(&merged, &snapshot(&target, true));
    assert!(d.is_empty(), "applied diff differs from the merged view:\n{}", d.join("\n"));

    // And as a layer directory stacked under overlayfs, too.
    let (lower_dir, diff_dir, view) = (tmp.path().join("l1"), tmp.path().join("l2"), tmp.path().join("view"));
    for d in [&lower_dir, &diff_dir, &view] {
        std::fs::create_dir(d).unwrap();
    }
    layer::unpack(&lower_tar()[..], &lower_dir).unwrap();
    layer::unpack(&layer_tar[..], &diff_dir).unwrap();
    let m = Overlay::mount(&[&diff_dir, &lower_dir], &view);
    let d = diff_snapshots(&merged, &snapshot(&view, true));
    m.unmount();
    assert!(d.is_empty(), "stacked diff differs from the merged view:\n{}", d.join("\n"));

    // Into the store: the blob is the tar, uncompressed, digest == diff_id.
    let store = Store::open(&tmp.path().join("root")).unwrap();
    let l = layer::diff(&store, &upper, &DiffOptions::default()).unwrap();
    assert_eq!(l.diff_id, Digest::sha256_of(&layer_tar));
    assert_eq!((l.blob.clone(), l.media_type.as_str()), (l.diff_id.clone(), image::LAYER_TAR));
}

#[test]
fn the_same_change_gives_the_same_digest_with_source_date_epoch() {
    if !privileged("overlayfs mounts") {
        return;
    }
    let opts = DiffOptions { clamp_mtime: Some(1_500_000_000) };
    let mut digests = Vec::new();
    for _ in 0..2 {
        let tmp = tempfile::Builder::new().prefix("ci-diff-repro-").tempdir().unwrap();
        let (_, upper) = changed_upper(tmp.path());
        let t = layer::write_diff(&upper, Vec::new(), &opts).unwrap();
        for e in tar::Archive::new(&t[..]).entries().unwrap() {
            let e = e.unwrap();
            assert!(e.header().mtime().unwrap() <= 1_500_000_000, "clamped");
        }
        digests.push(Digest::sha256_of(&t));
        // A second run a second later must not differ because of the clock.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn tar_dir_makes_a_layer_of_a_plain_tree() {
    if !privileged("ownership") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let stage = tmp.path().join("stage");
    std::fs::create_dir_all(stage.join("app/lib")).unwrap();
    std::fs::write(stage.join("app/lib/a.so"), vec![1u8; 70_000]).unwrap();
    std::fs::write(stage.join("app/run.sh"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(stage.join("app/run.sh"), std::fs::Permissions::from_mode(0o750)).unwrap();
    nix::unistd::chown(&stage.join("app/run.sh"), Some(33.into()), Some(33.into())).unwrap();
    std::os::unix::fs::symlink("lib/a.so", stage.join("app/a")).unwrap();
    let long = "n".repeat(240);
    std::fs::write(stage.join("app").join(&long), "long").unwrap();
    let t = layer::write_tar_dir(&stage, Vec::new(), &DiffOptions::default()).unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    layer::unpack(&t[..], &out).unwrap();
    let d = diff_snapshots(&snapshot(&stage, true), &snapshot(&out, true));
    assert!(d.is_empty(), "{}", d.join("\n"));
    // The same tree twice: the same bytes.
    assert_eq!(t, layer::write_tar_dir(&stage, Vec::new(), &DiffOptions::default()).unwrap());
}

#[test]
fn concurrent_users_of_one_layer_unpack_it_once() {
    if !privileged("extracting layers") {
        return;
    }
    let (_tmp, store) = new_store();
    let mut entries = vec![Raw::dir("d")];
    for i in 0..1500 {
        entries.push(Raw::file(format!("d/f{i:04}"), format!("content {i}")));
    }
    let l = put_layer(&store, &tar(&entries), Compression::Gzip, "application/vnd.oci.image.layer.v1.tar+gzip");
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (store, l, barrier) = (store.clone(), l.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let c = layer::ensure(&store, &l).unwrap();
                // Whoever returns sees the whole layer.
                let n = std::fs::read_dir(c.diff.join("d")).unwrap().count();
                let last = std::fs::read(c.diff.join("d/f1499")).unwrap();
                let ino = std::fs::metadata(c.diff.parent().unwrap()).unwrap().ino();
                (c.unpacked, c.diff, n, last, ino)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.0).count(), 1, "exactly one unpack");
    for r in &results {
        assert_eq!((r.2, r.3.as_slice()), (1500, &b"content 1499"[..]));
        assert_eq!((&r.1, r.4), (&results[0].1, results[0].4), "one directory, never replaced");
    }
    assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0, "no temporary left");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results[0].1.parent().unwrap().join("layer.json")).unwrap()).unwrap();
    assert_eq!(record["compression"], "gzip");
    assert_eq!(record["stats"]["entries"], 1501);
}

#[test]
fn a_corrupt_blob_fails_and_leaves_no_layer() {
    if !privileged("extracting layers") {
        return;
    }
    let (_tmp, store) = new_store();
    let good = tar(&[Raw::file("f", "the real content")]);
    // 1. The image claims a diff_id the content does not have.
    let mut lying = put_layer(&store, &good, Compression::Gzip, "application/vnd.oci.image.layer.v1.tar+gzip");
    lying.diff_id = Digest::sha256_of(b"something else");
    let err = layer::ensure_unpacked(&store, &lying).unwrap_err().to_string();
    assert!(err.contains("hashes to") && err.contains(&lying.diff_id.to_string()), "{err}");
    // 2. The blob's bytes changed on disk after it was stored.
    let other = tar(&[Raw::file("g", "another layer, stored and then damaged")]);
    let damaged = put_layer(&store, &other, Compression::None, image::LAYER_TAR);
    let path = store.blob_path(&damaged.blob);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let i = bytes.windows(7).position(|w| w == b"another").unwrap();
    bytes[i] = b'A';
    std::fs::write(&path, &bytes).unwrap();
    let err = layer::ensure_unpacked(&store, &damaged).unwrap_err().to_string();
    assert!(err.contains("is corrupt") || err.contains("hashes to"), "{err}");
    // 3. gzip bytes under a zstd media type.
    let mislabelled = put_layer(&store, &good, Compression::Gzip, "application/vnd.oci.image.layer.v1.tar+zstd");
    let mut mislabelled = mislabelled;
    mislabelled.diff_id = Digest::sha256_of(&tar(&[Raw::file("h", "unique")]));
    let err = layer::ensure_unpacked(&store, &mislabelled).unwrap_err().to_string();
    assert!(err.contains(&format!("unpack layer {}", mislabelled.diff_id)), "{err}");

    assert_eq!(std::fs::read_dir(store.layers_dir()).unwrap().count(), 0, "no layer directory kept");
    assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0, "no temporary left");

    // 4. A damaged cache entry (the directory without its diff/) is reported, not used.
    let fine = put_layer(&store, &good, Compression::None, image::LAYER_TAR);
    let dir = layer::layer_dir(&store, &fine.diff_id);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("junk"), "x").unwrap();
    let err = layer::ensure_unpacked(&store, &fine).unwrap_err().to_string();
    assert!(err.contains("holds no unpacked layer"), "{err}");
    assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0, "no temporary left");
}

#[test]
fn compression_comes_from_the_media_type_or_the_content() {
    if !privileged("extracting layers") {
        return;
    }
    let (_tmp, store) = new_store();
    let t = tar(&[Raw::dir("x"), Raw::file("x/y", "same in every form")]);
    for (c, mt) in [
        (Compression::None, "application/vnd.docker.image.rootfs.diff.tar"),
        (Compression::Gzip, "application/vnd.docker.image.rootfs.diff.tar.gzip"),
        (Compression::Zstd, "application/vnd.oci.image.layer.v1.tar+zstd"),
        (Compression::Gzip, "application/x-unknown"),
        (Compression::Zstd, "application/x-unknown"),
        (Compression::Xz, "application/x-unknown"),
    ] {
        let l = put_layer(&store, &t, c, mt);
        // Same diff_id each time: the first unpacks, the others find it.
        let got = layer::ensure(&store, &l).unwrap();
        assert_eq!(std::fs::read(got.diff.join("x/y")).unwrap(), b"same in every form", "{c:?} {mt}");
        std::fs::remove_dir_all(got.diff.parent().unwrap()).unwrap();
    }
}

/// A tmpfs mounted for one test, detached on drop.
struct Tmpfs(PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn enospc_is_a_clean_error_and_the_store_is_unchanged() {
    if !privileged("mounting a tmpfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    nix::mount::mount(Some("tmpfs"), &mnt, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=16m")).unwrap();
    let _guard = Tmpfs(mnt.clone());
    let store = Store::open(&mnt.join("root")).unwrap();
    // 64 MiB of a non-zero pattern (no holes possible) in a small gzip blob.
    let mut big = Raw::file("big", b"");
    big.data = Data::Bytes(b"0123456789abcdef".repeat(4 << 20));
    let l = put_layer(&store, &tar(&[Raw::file("small", "s"), big]), Compression::Gzip, "application/vnd.oci.image.layer.v1.tar+gzip");
    let blobs = store.list_blobs().unwrap();
    let err = layer::ensure_unpacked(&store, &l).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.errno(), Some(libc::ENOSPC), "{msg}");
    assert!(msg.contains("big") && msg.contains(&l.diff_id.to_string()), "names the entry and the layer: {msg}");
    assert_eq!(std::fs::read_dir(store.layers_dir()).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0, "the half layer is gone");
    assert_eq!(store.list_blobs().unwrap(), blobs);
}

/// A staging tree with every kind of inode a layer carries.
fn varied_tree(dir: &Path) {
    let p = |s: &str| dir.join(s);
    std::fs::create_dir_all(p("usr/bin")).unwrap();
    std::fs::create_dir_all(p("etc/ssl")).unwrap();
    std::fs::write(p("usr/bin/tool"), vec![9u8; 100_000]).unwrap();
    std::fs::set_permissions(p("usr/bin/tool"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::hard_link(p("usr/bin/tool"), p("usr/bin/tool-alias")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/tool", p("usr/bin/abs-link")).unwrap();
    std::fs::write(p("etc/ssl/key"), "secret").unwrap();
    std::fs::set_permissions(p("etc/ssl/key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    nix::unistd::chown(&p("etc/ssl/key"), Some(101.into()), Some(102.into())).unwrap();
    xattr::set(p("etc/ssl/key"), "user.kind", b"pem").unwrap();
    std::fs::set_permissions(p("etc"), std::fs::Permissions::from_mode(0o751)).unwrap();
    nix::unistd::mkfifo(&p("etc/pipe"), nix::sys::stat::Mode::from_bits_truncate(0o640)).unwrap();
    std::fs::write(p(&format!("etc/{}", "long-name-".repeat(20))), "long").unwrap();
}

fn run(cmd: &mut std::process::Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn gnu_tar_reads_our_layers_and_we_read_its_archives() {
    if !privileged("ownership and fifos") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (stage, by_gnu, by_us) = (tmp.path().join("stage"), tmp.path().join("by-gnu"), tmp.path().join("by-us"));
    for d in [&stage, &by_gnu, &by_us] {
        std::fs::create_dir(d).unwrap();
    }
    varied_tree(&stage);
    let want = snapshot(&stage, true);

    // Ours, read by GNU tar.
    let ours = tmp.path().join("ours.tar");
    std::fs::write(&ours, layer::write_tar_dir(&stage, Vec::new(), &DiffOptions::default()).unwrap()).unwrap();
    run(std::process::Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
        .arg(&ours)
        .arg("-C")
        .arg(&by_gnu));
    let d = diff_snapshots(&want, &snapshot(&by_gnu, true));
    assert!(d.is_empty(), "GNU tar's reading of our layer differs:\n{}", d.join("\n"));

    // GNU tar's PAX archive (with its ./ entry), read by us.
    let gnu = std::process::Command::new("tar")
        .args(["--format=pax", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C"])
        .arg(&stage)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(gnu.status.success());
    layer::unpack(&gnu.stdout[..], &by_us).unwrap();
    let d = diff_snapshots(&want, &snapshot(&by_us, true));
    assert!(d.is_empty(), "our reading of GNU tar's archive differs:\n{}", d.join("\n"));
}

#[test]
fn umoci_flattens_our_layers_as_we_do() {
    if !privileged("overlayfs mounts") {
        return;
    }
    let tmp = tempfile::Builder::new().prefix("ci-umoci-").tempdir().unwrap();
    let (_, upper) = changed_upper(tmp.path());
    let store = Store::open(&tmp.path().join("root")).unwrap();
    let base = put_layer(&store, &lower_tar(), Compression::Gzip, "application/vnd.oci.image.layer.v1.tar+gzip");
    let top = layer::diff(&store, &upper, &DiffOptions::default()).unwrap();
    let name = ci_core::reference::Reference::parse_normalized("localhost/ci-layers-test:1").unwrap();
    let diff_ids = vec![base.diff_id.to_string(), top.diff_id.to_string()];
    let config = image::config::new_config(diff_ids, vec![("a".into(), String::new()), ("b".into(), String::new())], "2024-01-01T00:00:00Z");
    image::commit(&store, &config, &[base.clone(), top.clone()], std::slice::from_ref(&name)).unwrap();

    // umoci flattens the image from our OCI layout (it verifies every digest on the way).
    let bundle = tmp.path().join("bundle");
    run(std::process::Command::new("umoci")
        .args(["raw", "unpack", "--image"])
        .arg(format!("{}:{name}", store.images_dir().display()))
        .arg(&bundle));
    // We flatten the same two layers.
    let flat = tmp.path().join("flat");
    std::fs::create_dir(&flat).unwrap();
    for l in [&base, &top] {
        let (_, reader) = compression::decompress(store.open_blob(&l.blob).unwrap()).unwrap();
        layer::apply(reader, &flat).unwrap();
    }
    let d = diff_snapshots(&snapshot(&bundle, false), &snapshot(&flat, false));
    assert!(d.is_empty(), "umoci and ci disagree:\n{}", d.join("\n"));
}

/// `--explain`: the unpack and the cache hit each print a step with the
/// equivalent shell command (checked in a child, where stderr is ours).
#[test]
fn explain_shows_the_unpack_and_the_cache_hit() {
    if !privileged("extracting layers") {
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["explain_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("CI_LAYER_EXPLAIN_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let unpack = stderr.find("+ layer ").expect("an unpack step");
    assert!(stderr[unpack..].contains("$ mkdir -p ") && stderr.contains("zcat ") && stderr.contains("| tar -xpf - --numeric-owner"), "{stderr}");
    assert!(stderr.contains("already unpacked in ") && stderr.contains("$ test -d "), "{stderr}");
    println!("{stderr}");
}

#[test]
fn explain_child() {
    if std::env::var("CI_LAYER_EXPLAIN_CHILD").is_err() {
        return;
    }
    ci_core::explain::enable(true);
    let (_tmp, store) = new_store();
    let l = put_layer(&store, &tar(&[Raw::file("f", "x")]), Compression::Gzip, "application/vnd.oci.image.layer.v1.tar+gzip");
    layer::ensure_unpacked(&store, &l).unwrap();
    layer::ensure_unpacked(&store, &l).unwrap();
}
