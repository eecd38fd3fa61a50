//! Several tools on one store at once (SECURITY.md §4.4 item 6, §5 item
//! 36): parallel pulls of the same and of overlapping images, parallel
//! builds tagging one name, tag loops against rm loops, and `ci-run --rm`
//! of a fresh image racing `ci-build rm -f` and `prune`. Afterwards fsck is
//! clean, no tag is lost, each blob is stored once, a tag names a complete
//! image, and a run either works or fails with a clear error.

mod hardening_common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use ci_tests::registry::{RegistryOptions, TestRegistry};
use hardening_common::*;

/// Run the commands at once; their results in order.
fn all_at_once(cmds: Vec<Command>) -> Vec<Run> {
    let threads: Vec<_> = cmds.into_iter().map(|c| std::thread::spawn(move || run(c))).collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// The blobs the store holds, and those still staged by pulls.
fn blobs(root: &Path) -> (BTreeSet<String>, usize) {
    let names = |d: &Path| -> BTreeSet<String> {
        std::fs::read_dir(d).into_iter().flatten().flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect()
    };
    let staged = names(&root.join("distribution/incoming/images/blobs/sha256")).len();
    (names(&root.join("images/blobs/sha256")), staged)
}

/// Every blob an image needs (manifest, config, layers), by hex.
fn image_blobs(root: &TestRoot, image: &str) -> BTreeSet<String> {
    let v = one_object(&run(cmd(root, "ci-build", &["inspect", image])).expect_ok("inspect").stdout);
    let hex = |d: &serde_json::Value| d.as_str().unwrap().trim_start_matches("sha256:").to_string();
    let mut s = BTreeSet::from([hex(&v["digest"]), hex(&v["manifest"]["config"]["digest"])]);
    for l in v["manifest"]["layers"].as_array().unwrap() {
        s.insert(hex(&l["digest"]));
    }
    s
}

fn fsck(root: &TestRoot) {
    run(cmd(root, "ci-build", &["fsck"])).expect_ok("fsck");
    assert!(tmp_entries(root.path()).is_empty(), "ROOT/tmp: {:?}", tmp_entries(root.path()));
    assert!(mounts_under(root.path()).is_empty(), "mounts: {:?}", mounts_under(root.path()));
    assert_no_stray_temps(root, "after the concurrent commands");
}

#[test]
fn parallel_pulls_of_the_same_and_of_overlapping_images() {
    if !privileged("building the pulled images needs root") {
        return;
    }
    let Some(reg) = TestRegistry::start(RegistryOptions::default()) else { return };
    let Some((src, multi)) = push_multi_layer(&reg, "parallel-pull") else { return };
    // A second image on top of the first: every layer of multi:1 is its base.
    let ctx = src.path().join("ctx/more");
    write_random(&ctx, "d", &mut Rng::new(7), 2);
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {multi}\nCOPY d /d\n")).unwrap();
    let more = format!("{}/more:1", reg.host());
    run(cmd(&src, "ci-build", &["--progress", "plain", "-t", &more, ctx.to_str().unwrap()])).expect_ok("build more:1");
    run(cmd(&src, "ci-push", &[&more])).expect_ok("push more:1");

    let rounds = iterations(2);
    for round in 0..rounds {
        // Eight pulls of the same image.
        let root = TestRoot::new();
        let runs = all_at_once((0..8).map(|_| cmd(&root, "ci-pull", &[&multi])).collect());
        for r in &runs {
            assert!(r.ok(), "round {round}: a parallel pull failed: {}", r.stderr);
        }
        let ids: BTreeSet<String> = runs.iter().map(|r| one_object(&r.stdout)["id"].as_str().unwrap().to_string()).collect();
        assert_eq!(ids.len(), 1, "every pull names the same image");
        fsck(&root);
        let (stored, staged) = blobs(root.path());
        assert_eq!(stored, image_blobs(&root, &multi), "each blob of the image once, nothing else");
        assert_eq!(staged, 0, "no staged copy left behind");
        let ls = json_lines(run(cmd(&root, "ci-build", &["ls"])).expect_ok("ls").stdout.as_bytes());
        assert_eq!(ls.len(), 1, "one image: {ls:?}");

        // Four and four of two images sharing their base layers.
        let root = TestRoot::new();
        let runs = all_at_once((0..8).map(|i| cmd(&root, "ci-pull", &[if i % 2 == 0 { &multi } else { &more }])).collect());
        for r in &runs {
            assert!(r.ok(), "round {round}: a parallel pull failed: {}", r.stderr);
        }
        fsck(&root);
        let (stored, staged) = blobs(root.path());
        let want: BTreeSet<String> = image_blobs(&root, &multi).union(&image_blobs(&root, &more)).cloned().collect();
        assert_eq!(stored, want, "each blob of both images once");
        assert_eq!(staged, 0);
        let ls = json_lines(run(cmd(&root, "ci-build", &["ls"])).expect_ok("ls").stdout.as_bytes());
        let tags: BTreeSet<String> = ls.iter().flat_map(|v| v["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string())).collect();
        assert_eq!(tags, BTreeSet::from([multi.clone(), more.clone()]));
    }
}

#[test]
fn parallel_builds_tagging_one_name() {
    if !privileged("ci-build RUN needs root") {
        return;
    }
    let Some((root, mut rng)) = root_with_base("parallel-build", 0) else { return };
    let mut ctxs = Vec::new();
    for which in ["A", "B"] {
        let ctx = root.path().join("ctx").join(which);
        write_random(&ctx, "data", &mut rng, 2);
        std::fs::write(
            ctx.join("Dockerfile"),
            format!("FROM bb:1\nLABEL which={which}\nCOPY data /payload\nRUN echo {which} > /which && md5sum /payload > /sum\n"),
        )
        .unwrap();
        ctxs.push(ctx);
    }
    for round in 0..iterations(3) {
        let runs = all_at_once(ctxs.iter().map(|c| cmd(&root, "ci-build", &["--progress", "plain", "--no-cache", "-t", "same:1", c.to_str().unwrap()])).collect());
        for r in &runs {
            assert!(r.ok(), "round {round}: a build failed: {}", r.stderr);
        }
        fsck(&root);
        // The tag names one complete image: its label, its files and its layers agree.
        let v = one_object(&run(cmd(&root, "ci-build", &["inspect", "same:1"])).expect_ok("inspect").stdout);
        let which = v["config"]["config"]["Labels"]["which"].as_str().unwrap().to_string();
        let out = run(cmd(&root, "ci-run", &["--rm", "same:1", "cat", "/which", "/sum"])).expect_ok("run same:1");
        assert!(out.stdout.starts_with(&format!("{which}\n")), "label says {which}, the files say {}", out.stdout);
        let ids: Vec<String> = runs.iter().map(|r| one_object(&r.stdout)["id"].as_str().unwrap().to_string()).collect();
        assert!(ids.contains(&v["id"].as_str().unwrap().to_string()), "same:1 is one of the two builds");
        // The other build is still there, dangling and complete.
        let ls = json_lines(run(cmd(&root, "ci-build", &["ls"])).expect_ok("ls").stdout.as_bytes());
        assert_eq!(ls.iter().filter(|i| i["tags"].as_array().unwrap().iter().any(|t| t == "same:1")).count(), 1);
        run(cmd(&root, "ci-build", &["prune"])).expect_ok("prune the dangling one");
    }
}

#[test]
fn tag_loop_against_rm_loop() {
    let Some((root, mut rng)) = root_with_base("tag-rm-race", 0) else { return };
    let n = iterations(60);
    let tar = rootfs_tar(&mut rng, 1).unwrap();
    let tagger = {
        let cmds: Vec<Command> = (0..n).map(|i| cmd(&root, "ci-build", &["tag", "bb:1", &format!("keep:{i}")])).collect();
        std::thread::spawn(move || cmds.into_iter().map(run).collect::<Vec<_>>())
    };
    let churner = {
        let mut cmds = Vec::new();
        for i in 0..n {
            cmds.push(cmd(&root, "ci-build", &["tag", "bb:1", &format!("tmp:{i}")]));
            cmds.push(cmd(&root, "ci-build", &["rm", &format!("tmp:{i}")]));
        }
        std::thread::spawn(move || cmds.into_iter().map(run).collect::<Vec<_>>())
    };
    // Meanwhile, images come and go: rm of a last name collects garbage.
    let collector = {
        let cmds: Vec<(Command, Command)> = (0..n / 2)
            .map(|_| (cmd(&root, "ci-build", &["import", "-t", "gone:1", "-"]), cmd(&root, "ci-build", &["rm", "gone:1"])))
            .collect();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            for (imp, rm) in cmds {
                out.push(run_with_stdin(imp, tar.clone()));
                out.push(run(rm));
            }
            out
        })
    };
    // Every loop ends before anything is checked (none may outlive the root).
    let results: Vec<(&str, Vec<Run>)> = [("tag keep", tagger), ("tag/rm tmp", churner), ("import/rm", collector)]
        .into_iter()
        .map(|(what, t)| (what, t.join().unwrap()))
        .collect();
    for (what, runs) in &results {
        for r in runs {
            assert!(r.ok(), "{what}: {}", r.stderr);
        }
    }
    fsck(&root);
    let ls = json_lines(run(cmd(&root, "ci-build", &["ls"])).expect_ok("ls").stdout.as_bytes());
    assert_eq!(ls.len(), 1, "bb:1 alone is left: {ls:?}");
    let tags: BTreeSet<String> = ls[0]["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    let want: BTreeSet<String> = (0..n).map(|i| format!("keep:{i}")).chain(["bb:1".to_string()]).collect();
    assert_eq!(tags, want, "no tag lost, no removed tag back");
    let (stored, _) = blobs(root.path());
    assert_eq!(stored, image_blobs(&root, "bb:1"), "the removed images' blobs are gone, bb:1's are whole");
}

/// Runs of a fresh image race its removal: each run prints the file or
/// fails with a clear error before the command starts (125).
#[test]
fn runs_of_a_fresh_image_racing_rm_and_prune() {
    if !privileged("ci-run needs root") {
        return;
    }
    let Some((root, mut rng)) = root_with_base("run-rm-race", 0) else { return };
    let fresh = |rng: &mut Rng| -> String {
        let tar = rootfs_tar(rng, 2).unwrap();
        let out = run_with_stdin(cmd(&root, "ci-build", &["import", "-t", "fresh:1", "-"]), tar).expect_ok("import");
        one_object(&out.stdout)["id"].as_str().unwrap().to_string()
    };
    let start = |id: &str| -> Command {
        let mut c = cmd(&root, "ci-run", &["--rm", id, "md5sum", "/data/random"]);
        c.env("CIEXPLAIN", "true");
        c
    };
    // Six runs at once of an image never run: its layer is unpacked once.
    let id = fresh(&mut rng);
    let runs = all_at_once((0..6).map(|_| start(&id)).collect());
    for r in &runs {
        assert!(r.ok(), "a run failed: {}", r.stderr);
    }
    let sums: BTreeSet<&str> = runs.iter().map(|r| r.stdout.as_str()).collect();
    assert_eq!(sums.len(), 1, "every run read the same file: {sums:?}");
    assert_eq!(runs.iter().filter(|r| r.stderr.contains(": unpack blob ")).count(), 1, "the layer is unpacked by exactly one run");
    let duration = runs.iter().map(|r| r.elapsed).min().unwrap();
    eprintln!("a run takes about {duration:?}");
    run(cmd(&root, "ci-build", &["rm", "-f", &id])).expect_ok("rm");

    // Then fresh images whose runs race `rm -f` and `prune -a`, sent at random moments.
    let (mut worked, mut refused) = (0, BTreeSet::new());
    for round in 0..iterations(4) {
        let id = fresh(&mut rng);
        // Each command starts at its own random moment within one run's duration.
        let mut later = |c: Command| {
            let delay = duration.mul_f64(rng.unit());
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                run(c)
            })
        };
        let runners: Vec<_> = (0..6).map(|_| later(start(&id))).collect();
        let removers: Vec<_> = [later(cmd(&root, "ci-build", &["rm", "-f", &id])), later(cmd(&root, "ci-build", &["prune", "-a"]))].into();
        let runs: Vec<Run> = runners.into_iter().map(|t| t.join().unwrap()).collect();
        for r in removers.into_iter().map(|t: std::thread::JoinHandle<Run>| t.join().unwrap()) {
            assert!(r.ok() || r.stderr.contains("no such image"), "rm -f / prune: {}", r.stderr);
        }
        let sums: BTreeSet<&str> = runs.iter().filter(|r| r.ok()).map(|r| r.stdout.as_str()).collect();
        assert!(sums.len() <= 1, "runs that started saw different files: {sums:?}");
        assert!(runs.iter().filter(|r| r.stderr.contains(": unpack blob ")).count() <= 1, "round {round}: the layer was unpacked twice");
        for r in &runs {
            if r.ok() {
                worked += 1;
                continue;
            }
            assert_eq!(r.code(), Some(125), "a failed run fails before its command (126/127 would be a broken rootfs): {}", r.stderr);
            let msg = r.stderr.lines().find(|l| l.starts_with("ci-run: error: ")).unwrap_or_else(|| panic!("no error line: {}", r.stderr));
            assert!(msg.starts_with(&format!("ci-run: error: no such image: {id}")), "a clear error naming the image: {}", r.stderr);
            let when = if r.stderr.contains("while its layers were being prepared") { " (after it was resolved)" } else { "" };
            refused.insert(format!("{}{when}", msg.split(&id[7..]).next().unwrap_or(msg)));
        }
        assert!(container_ids(root.path()).is_empty(), "--rm containers left: {:?}", container_ids(root.path()));
        // Whatever rm -f had to keep (in use at that moment), prune -a removes now.
        run(cmd(&root, "ci-build", &["prune", "-a"])).expect_ok("prune -a");
        fsck(&root);
        let ls = json_lines(run(cmd(&root, "ci-build", &["ls"])).expect_ok("ls").stdout.as_bytes());
        assert!(ls.is_empty(), "everything is gone: {ls:?}");
        assert_eq!(std::fs::read_dir(root.path().join("layers")).unwrap().count(), 0, "no unpacked layer without an image");
    }
    eprintln!("runs racing rm -f/prune: {worked} worked; the others were refused with: {refused:#?}");
}
