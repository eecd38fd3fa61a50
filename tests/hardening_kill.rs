//! kill -9 during every operation that changes the store (SECURITY.md §4.4,
//! §5 item 35): import, pull, build, tag/rm, push. Each loop first times
//! the operation, then kills it at seeded random delays spread over that
//! duration. After every kill: `ci-build fsck` is clean, `ci-build ls`
//! works, ROOT/tmp is empty after that next command, no mount under the
//! root, no cgroup or container record of the dead process, no stray
//! temporary file; then the operation runs again to completion.
//!
//! 50 kills per operation by default; `CITEST_SOAK=4` for 200 (a factor),
//! `CITEST_SEED=S` to replay a sequence.

mod hardening_common;

use std::process::Command;
use std::time::Duration;

use ci_tests::registry::{RegistryOptions, TestRegistry};
use hardening_common::*;

const KILLS: usize = 50;

/// Kill `op` at random moments, `iterations(KILLS)` times. `reset` runs
/// after each completed rerun (to make the next kill meet the same work).
fn kill_loop(name: &str, root: &TestRoot, op: &dyn Fn() -> Command, reset: &dyn Fn()) {
    let n = iterations(KILLS);
    let mut rng = Rng::new(seed(name));
    let first = run(op()).expect_ok(&format!("{name} (first run)"));
    // The span of the delays: the median duration of the complete runs seen.
    let mut seen = vec![first.elapsed];
    let mut duration = first.elapsed;
    reset();
    let mut landed = 0;
    for i in 0..n {
        let delay = duration.mul_f64(rng.unit() * 1.1);
        if kill_after(op(), delay) {
            landed += 1;
        }
        let ids = container_ids(root.path());
        assert_recovered(root, &format!("{name} #{i} (SIGKILL after {delay:?})"));
        let again = run(op());
        assert!(again.ok(), "{name} #{i}: the rerun after a kill at {delay:?} failed: {}", again.stderr);
        assert_no_containers_left(root, &ids, &format!("{name} #{i}, after the rerun"));
        assert_no_stray_temps(root, &format!("{name} #{i}, after the rerun"));
        seen.push(again.elapsed);
        seen.sort();
        duration = seen[seen.len() / 2];
        reset();
    }
    eprintln!("{name}: {landed} of {n} kills landed before the operation ended (it takes about {duration:?})");
    // Timing varies with the machine's load: a third is enough to know the delays cover the operation.
    assert!(landed * 3 >= n, "{name}: only {landed} of {n} kills landed mid-operation; the delays do not cover it");
}

#[test]
fn kill_during_import() {
    let root = TestRoot::new();
    let mut rng = Rng::new(seed("import-data"));
    let Some(tar) = rootfs_tar(&mut rng, 24) else { return };
    let file = root.path().join("work/rootfs.tar");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, tar).unwrap();
    let f = file.to_str().unwrap();
    kill_loop("import", &root, &|| cmd(&root, "ci-build", &["import", "-t", "big:1", f]), &|| {
        run(cmd(&root, "ci-build", &["rm", "big:1"])).expect_ok("rm big:1");
    });
}

#[test]
fn kill_during_build() {
    if !privileged("ci-build RUN needs root") {
        return;
    }
    let Some((root, mut rng)) = root_with_base("build", 1) else { return };
    let ctx = root.path().join("ctx/app");
    write_random(&ctx, "data", &mut rng, 6);
    std::fs::write(ctx.join("Dockerfile"), "FROM bb:1\nCOPY data /data/\nRUN cat /data/data /data/data > /twice && md5sum /twice > /sum\n").unwrap();
    let c = ctx.to_str().unwrap().to_string();
    let count = std::cell::Cell::new(0);
    kill_loop("build", &root, &|| cmd(&root, "ci-build", &["--progress", "plain", "--no-cache", "-t", "out:1", &c]), &|| {
        // Each build leaves the previous out:1 dangling: clear them now and then.
        count.set(count.get() + 1);
        if count.get() % 10 == 0 {
            run(cmd(&root, "ci-build", &["prune"])).expect_ok("prune");
        }
    });
    let sum = run(cmd(&root, "ci-run", &["--rm", "out:1", "cat", "/sum"])).expect_ok("run the built image");
    assert!(sum.stdout.ends_with("  /twice\n"), "{}", sum.stdout);
}

#[test]
fn kill_during_tag_and_rm() {
    let Some((root, mut rng)) = root_with_base("tag-rm", 0) else { return };
    let n = iterations(KILLS);
    // tag and rm take a few milliseconds, most of it process start: time
    // them (the median of five, then of every rerun).
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(run(cmd(&root, "ci-build", &["tag", "bb:1", "t:timing"])).expect_ok("tag").elapsed);
        seen.push(run(cmd(&root, "ci-build", &["rm", "t:timing"])).expect_ok("rm").elapsed);
    }
    seen.sort();
    let mut duration = seen[seen.len() / 2];
    let mut landed = 0;
    for i in 0..n {
        let name = format!("t:{i}");
        let delay = duration.mul_f64(rng.unit() * 1.1);
        landed += kill_after(cmd(&root, "ci-build", &["tag", "bb:1", &name]), delay) as usize;
        assert_recovered(&root, &format!("tag #{i} (SIGKILL after {delay:?})"));
        // The rerun completes: the tag is there afterwards, whatever the kill left.
        seen.push(run(cmd(&root, "ci-build", &["tag", "bb:1", &name])).expect_ok("tag again").elapsed);
        seen.sort();
        duration = seen[seen.len() / 2];
        let delay = duration.mul_f64(rng.unit() * 1.1);
        landed += kill_after(cmd(&root, "ci-build", &["rm", &name]), delay) as usize;
        assert_recovered(&root, &format!("rm #{i} (SIGKILL after {delay:?})"));
        let again = run(cmd(&root, "ci-build", &["rm", &name]));
        assert!(again.ok() || again.stderr.contains("no such image"), "rm #{i} again: {}", again.stderr);
        let ls = run(cmd(&root, "ci-build", &["ls"])).expect_ok("ls");
        assert!(!ls.stdout.contains(&format!("\"t:{i}\"")), "t:{i} survived its rm: {}", ls.stdout);
        assert!(ls.stdout.contains("\"bb:1\""), "bb:1 lost: {}", ls.stdout);
    }
    // An image whose last name goes is deleted with its blobs: kill that too.
    for i in 0..n / 5 {
        let tar = rootfs_tar(&mut rng, 1).unwrap();
        run_with_stdin(cmd(&root, "ci-build", &["import", "-t", "gone:1", "-"]), tar).expect_ok("import");
        let delay = duration.mul_f64(rng.unit() * 1.5);
        kill_after(cmd(&root, "ci-build", &["rm", "gone:1"]), delay);
        assert_recovered(&root, &format!("rm (deleting) #{i} (SIGKILL after {delay:?})"));
        let again = run(cmd(&root, "ci-build", &["rm", "gone:1"]));
        assert!(again.ok() || again.stderr.contains("no such image"), "{}", again.stderr);
    }
    let ls = run(cmd(&root, "ci-build", &["ls"])).expect_ok("ls");
    assert_eq!(json_lines(ls.stdout.as_bytes()).len(), 1, "only bb:1 is left: {}", ls.stdout);
    eprintln!("tag/rm: {landed} of {} kills landed before the command ended (a tag takes about {duration:?})", 2 * n);
    assert!(landed * 3 >= 2 * n, "tag/rm: only {landed} of {} kills landed mid-command", 2 * n);
}

#[test]
fn kill_during_pull() {
    if !privileged("building the pulled image needs root") {
        return;
    }
    let Some(reg) = TestRegistry::start(RegistryOptions::default()) else { return };
    let Some((_src, reference)) = push_multi_layer(&reg, "pull") else { return };
    let root = TestRoot::new();
    kill_loop("pull", &root, &|| cmd(&root, "ci-pull", &[&reference]), &|| {
        run(cmd(&root, "ci-build", &["rm", &reference])).expect_ok("rm the pulled image");
    });
}

#[test]
fn kill_during_push() {
    if !privileged("building the pushed image needs root") {
        return;
    }
    let Some(reg) = TestRegistry::start(RegistryOptions::default()) else { return };
    let Some((root, reference)) = push_multi_layer(&reg, "push") else { return };
    let target = format!("{}/pushed:1", reg.host());
    let storage = reg.storage();
    kill_loop("push", &root, &|| cmd(&root, "ci-push", &[&reference, &target]), &|| {
        // Empty the registry (it caches nothing in memory): the next push uploads everything again.
        let _ = std::fs::remove_dir_all(storage.join("docker/registry/v2/repositories/pushed"));
        let _ = std::fs::remove_dir_all(storage.join("docker/registry/v2/blobs"));
    });
    // A push killed midway, then a complete one: the registry holds a complete image.
    kill_after(cmd(&root, "ci-push", &[&reference, &target]), Duration::from_millis(30));
    run(cmd(&root, "ci-push", &[&reference, &target])).expect_ok("push");
    let check = TestRoot::new();
    run(cmd(&check, "ci-pull", &[&target])).expect_ok("pull what was pushed");
    run(cmd(&check, "ci-build", &["fsck"])).expect_ok("fsck");
}

/// Named crash points (`CITEST_CRASH_AT`, debug builds): the instants that
/// random kills rarely hit.
#[test]
fn crash_points() {
    let Some((root, mut rng)) = root_with_base("crash-points", 1) else { return };
    let tar = rootfs_tar(&mut rng, 4).unwrap();
    let file = root.path().join("work/rootfs.tar");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, tar).unwrap();
    let f = file.to_str().unwrap();
    let import = || cmd(&root, "ci-build", &["import", "-t", "imp:1", f]);
    for point in ["blob-linked:1", "blob-linked:2", "blob-linked:3", "write-atomic-renaming:1", "index-saved:1"] {
        crash_at(import(), point);
        assert_recovered(&root, &format!("import crashed at {point}"));
        run(import()).expect_ok(&format!("import after a crash at {point}"));
        run(cmd(&root, "ci-build", &["rm", "imp:1"])).expect_ok("rm imp:1");
    }
    for point in ["write-atomic-renaming:1", "index-saved:1"] {
        let tag = || cmd(&root, "ci-build", &["tag", "bb:1", "crashed:1"]);
        crash_at(tag(), point);
        assert_recovered(&root, &format!("tag crashed at {point}"));
        run(tag()).expect_ok("tag after a crash");
        let rm = || cmd(&root, "ci-build", &["rm", "crashed:1"]);
        crash_at(rm(), point);
        assert_recovered(&root, &format!("rm crashed at {point}"));
        let again = run(rm());
        assert!(again.ok() || again.stderr.contains("no such image"), "{}", again.stderr);
    }
    // A pull whose blobs are in the store but whose image is not yet named.
    let layout = root.path().join("work/layout");
    let l = format!("oci:{}:1", layout.display());
    run(import()).expect_ok("import");
    run(cmd(&root, "ci-push", &["imp:1", &l])).expect_ok("push to an OCI layout");
    run(cmd(&root, "ci-build", &["rm", "imp:1"])).expect_ok("rm imp:1");
    crash_at(cmd(&root, "ci-pull", &[&l]), "pull-committed:1");
    assert_recovered(&root, "pull crashed at pull-committed");
    run(cmd(&root, "ci-pull", &[&l])).expect_ok("pull after a crash");
    // What a process killed while creating a container leaves (a directory
    // without its record): the next build or prune removes it.
    let half = root.path().join("containers").join("ab".repeat(32));
    std::fs::create_dir_all(half.join("upper")).unwrap();
    run(cmd(&root, "ci-build", &["prune"])).expect_ok("prune");
    assert!(!half.exists(), "a half-made container directory survived prune");
    if !privileged("ci-run needs root") {
        return;
    }
    // A layer cut off mid-extract, and one complete but not renamed into the cache.
    for point in ["extract-entry:3", "layer-unpacked:1"] {
        let fresh = rootfs_tar(&mut rng, 2).unwrap();
        run(cmd(&root, "ci-build", &["rm", "-f", "fresh:1"]));
        run_with_stdin(cmd(&root, "ci-build", &["import", "-t", "fresh:1", "-"]), fresh).expect_ok("import fresh:1");
        let start = || cmd(&root, "ci-run", &["--rm", "fresh:1", "wc", "-c", "/data/random"]);
        crash_at(start(), point);
        let ids = container_ids(root.path());
        assert_recovered(&root, &format!("ci-run crashed at {point}"));
        let out = run(start()).expect_ok(&format!("run after a crash at {point}"));
        assert_no_containers_left(&root, &ids, &format!("ci-run crashed at {point}"));
        assert_eq!(out.stdout.trim(), format!("{} /data/random", 2 << 20), "the whole file is in the unpacked layer");
        let layers: Vec<_> = std::fs::read_dir(root.path().join("layers")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(layers.len(), 1, "fresh:1's layer, unpacked once: {layers:?}");
        assert!(layers[0].join("diff").is_dir() && layers[0].join("layer.json").is_file(), "a complete layer");
    }
}
