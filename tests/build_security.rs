//! Build attacks (SECURITY.md §5, items 20-25): cache mounts, bind mounts
//! from stages, mount-point cleanup, entitlements, cache poisoning, hostile
//! archives in ADD, symlinks out of the context. Items 18-19 (the parser
//! and .dockerignore corpora) are the dockerfile and dockerignore suites.

mod build_common;
use build_common::*;

fn setup(what: &str) -> Option<TestRoot> {
    if !privileged(what) {
        return None;
    }
    let root = TestRoot::new();
    busybox_base(&root)?;
    Some(root)
}

/// A host directory with a sentinel file; returns (dir, sentinel path).
fn sentinel(root: &TestRoot, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = root.path().join("host").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("v");
    std::fs::write(&f, "host data\n").unwrap();
    (dir, f)
}

#[test]
fn cache_mount_ids_cannot_name_host_paths() {
    // CVE-2024-9675: id=../../.. named a host directory in buildah.
    let Some(root) = setup("building images") else { return };
    let (host, _) = sentinel(&root, "cache-id");
    let id = format!("../../../../../../../..{}", host.display());
    let ctx = context(&root, "cacheid", &[("Dockerfile", &format!("FROM bb:1\nRUN --mount=type=cache,id={id},target=/x touch /x/BREAKOUT && ls /x > /listing\n"))]);
    build_ok(&root, &ctx, &["-t", "cid:1"]);
    assert!(!host.join("BREAKOUT").exists(), "the cache id reached a host directory");
    assert!(!read(rootfs(&root, "cid:1").path(), "listing").contains('v'), "the host sentinel was visible in the cache mount");
    // The file went into a cache directory of the store.
    let mounts = root.path().join("build-cache/mounts");
    let found = std::fs::read_dir(&mounts).unwrap().filter_map(|e| e.ok()).any(|e| e.path().join("BREAKOUT").exists());
    assert!(found);
    // A source= subpath of a cache (CVE-2024-23651's way in) is refused, as is bind-propagation (CVE-2024-9407).
    for bad in ["type=cache,target=/x,source=sub", "type=bind,target=/x,bind-propagation=rshared", "type=bind,target=/x,bind-propagation=foo"] {
        write(&ctx, "Dockerfile", &format!("FROM bb:1\nRUN --mount={bad} true\n"));
        let out = build(&root, &ctx, &[]);
        assert!(!out.ok && out.stderr.contains("unknown or unsupported option"), "{bad}: {}", out.stderr);
    }
    assert_clean(&root);
}

#[test]
fn bind_from_a_stage_stays_in_the_stage() {
    // CVE-2024-1753: a stage's /link -> / mounted the host's root.
    let Some(root) = setup("building images") else { return };
    let ctx = context(
        &root,
        "bindfrom",
        &[(
            "Dockerfile",
            "FROM bb:1 AS s\nRUN ln -s / /link && echo stage > /stage-marker\nFROM bb:1\nRUN --mount=type=bind,from=s,source=/link,target=/h ls /h > /listing && cat /h/stage-marker > /seen\n",
        )],
    );
    build_ok(&root, &ctx, &["-t", "bf:1"]);
    let fs = rootfs(&root, "bf:1");
    assert!(read(fs.path(), "listing").lines().any(|l| l == "stage-marker"), "the stage's root, not the host's");
    assert_eq!(read(fs.path(), "seen"), "stage\n");
    assert!(!fs.path().join("h").exists(), "the mount point is not left in the layer");
    // A bind of the context is read-only.
    write(&ctx, "Dockerfile", "FROM bb:1\nRUN --mount=type=bind,target=/src touch /src/new\n");
    let out = build(&root, &ctx, &[]);
    assert!(!out.ok, "a write through a build bind mount must fail");
    assert!(!ctx.join("new").exists());
    assert_clean(&root);
}

#[test]
fn mount_point_cleanup_never_follows_a_planted_symlink() {
    // CVE-2024-23652: removing mount stubs after the step deleted host files.
    let Some(root) = setup("building images") else { return };
    let (host, v) = sentinel(&root, "stub");
    let ctx = context(
        &root,
        "stub",
        &[("Dockerfile", &format!("FROM bb:1\nRUN --mount=type=tmpfs,target=/m/v sh -c 'rm -rf /m; ln -s {} /m; true'\n", host.display()))],
    );
    build_ok(&root, &ctx, &["-t", "stub:1"]);
    assert_eq!(std::fs::read_to_string(&v).unwrap(), "host data\n", "the host sentinel survives");
    assert_clean(&root);
}

#[test]
fn privileges_need_an_entitlement() {
    // CVE-2024-23653: a Dockerfile alone cannot raise its privileges.
    let Some(root) = setup("building images") else { return };
    let ctx = context(&root, "ent", &[("Dockerfile", "FROM bb:1\nRUN --network=host ls /sys/class/net > /nets\n")]);
    let out = build(&root, &ctx, &[]);
    assert!(!out.ok && out.stderr.contains("network.host") && out.stderr.contains("--allow network.host"), "{}", out.stderr);
    build_ok(&root, &ctx, &["--allow", "network.host", "-t", "ent:1"]);
    let nets = read(rootfs(&root, "ent:1").path(), "nets");
    assert!(nets.lines().count() > 1 || !nets.contains("lo\n"), "the host's interfaces are visible with --allow network.host: {nets}");
    write(&ctx, "Dockerfile", "FROM bb:1\nRUN --security=insecure true\n");
    let out = build(&root, &ctx, &[]);
    assert!(!out.ok && out.stderr.contains("security.insecure"), "{}", out.stderr);
    // Without --network, RUN has no network: only loopback.
    write(&ctx, "Dockerfile", "FROM bb:1\nRUN ls /sys/class/net > /nets\n");
    build_ok(&root, &ctx, &["-t", "ent:2"]);
    assert_eq!(read(rootfs(&root, "ent:2").path(), "nets"), "lo\n");
}

#[test]
fn only_true_hits_are_cache_hits() {
    // CVE-2024-24557: a change to only HEALTHCHECK, ONBUILD, a flag or a used ARG must miss.
    let Some(root) = setup("building images") else { return };
    let ctx = context(&root, "poison", &[("f", "x")]);
    let variants: &[(&str, &str, &[&str])] = &[
        ("HEALTHCHECK CMD true", "HEALTHCHECK CMD false", &[]),
        ("ONBUILD RUN a", "ONBUILD RUN b", &[]),
        ("COPY --chmod=644 f /f", "COPY --chmod=600 f /f", &[]),
        ("ARG V=1", "ARG V=2", &[]),
    ];
    for (i, (a, b, _)) in variants.iter().enumerate() {
        let df = |line: &str| format!("FROM bb:1\n{line}\nRUN echo $V > /v{i}\n");
        write(&ctx, "Dockerfile", &df(a));
        build_ok(&root, &ctx, &[]);
        let same = build_ok(&root, &ctx, &[]);
        assert_eq!(same.counts().1, 0, "unchanged: all cached\n{}", same.stderr);
        write(&ctx, "Dockerfile", &df(b));
        let changed = build_ok(&root, &ctx, &[]);
        if !b.starts_with("ARG") {
            // (An ARG line itself is only its name; the steps using the value miss, as in docker.)
            assert!(!changed.was_cached(b), "{b} must miss:\n{}", changed.stderr);
        }
        assert!(!changed.was_cached("RUN echo"), "the RUN after {b} must miss:\n{}", changed.stderr);
    }
    // A --build-arg value used by a RUN misses; an unchanged one hits.
    write(&ctx, "Dockerfile", "FROM bb:1\nARG V\nRUN echo $V > /v\n");
    build_ok(&root, &ctx, &["--build-arg", "V=1"]);
    assert!(build_ok(&root, &ctx, &["--build-arg", "V=1"]).was_cached("RUN echo"));
    assert!(!build_ok(&root, &ctx, &["--build-arg", "V=2"]).was_cached("RUN echo"));
}

fn tar_of(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        {
            let raw = h.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn add_of_hostile_archives_is_confined() {
    // CVE-2020-10696: ADD of a crafted tarball wrote outside the rootfs.
    let Some(root) = setup("building images") else { return };
    let (host, v) = sentinel(&root, "add");
    let host_s = host.display().to_string();
    let ctx = context(&root, "evil", &[]);
    // A symlink to a host directory, then a file through it: lands inside the image.
    let through = tar_of(&[
        ("l", tar::EntryType::Symlink, &host_s, b""),
        ("l/pwn", tar::EntryType::Regular, "", b"pwned"),
        ("abs", tar::EntryType::Symlink, "/", b""),
        ("abs/etc/pwn2", tar::EntryType::Regular, "", b"pwned"),
    ]);
    std::fs::write(ctx.join("through.tar"), &through).unwrap();
    write(&ctx, "Dockerfile", "FROM bb:1\nADD through.tar /x/\n");
    build_ok(&root, &ctx, &["-t", "evil:1"]);
    assert!(!host.join("pwn").exists(), "an archive entry reached the host");
    let fs = rootfs(&root, "evil:1");
    let inside = fs.path().join("x").join(host_s.trim_start_matches('/')).join("pwn");
    assert!(inside.exists() || !fs.path().join("x/pwn").exists(), "the entry lands inside the image, under the link's target resolved there");
    assert!(!std::path::Path::new("/etc/pwn2").exists());
    // A name climbing out is a breakout error, and nothing is written.
    let climb = tar_of(&[("../../../../../../../../escape-ci-build-test", tar::EntryType::Regular, "", b"pwned")]);
    std::fs::write(ctx.join("climb.tar"), &climb).unwrap();
    write(&ctx, "Dockerfile", "FROM bb:1\nADD climb.tar /x/\n");
    let out = build(&root, &ctx, &[]);
    assert!(!out.ok, "{}", out.stderr);
    assert!(!std::path::Path::new("/escape-ci-build-test").exists());
    assert_eq!(std::fs::read_to_string(&v).unwrap(), "host data\n");
    // The same archive from a URL is a single file, never extracted.
    let url = serve("/evil.tar", through.clone());
    write(&ctx, "Dockerfile", &format!("FROM bb:1\nADD {url}/evil.tar /dl/\n"));
    build_ok(&root, &ctx, &["-t", "evil:2"]);
    let fs = rootfs(&root, "evil:2");
    assert_eq!(std::fs::read(fs.path().join("dl/evil.tar")).unwrap(), through);
    assert_eq!(std::fs::read_dir(fs.path().join("dl")).unwrap().count(), 1);
    assert_clean(&root);
}

#[test]
fn context_symlinks_do_not_lead_to_the_host() {
    let Some(root) = setup("building images") else { return };
    let ctx = context(&root, "ctxlink", &[]);
    std::os::unix::fs::symlink("/etc", ctx.join("link")).unwrap();
    for src in ["link/passwd", "link"] {
        write(&ctx, "Dockerfile", &format!("FROM bb:1\nCOPY {src} /got\n"));
        let out = build(&root, &ctx, &["-t", "leak:1"]);
        assert!(!out.ok, "COPY {src} through a link to /etc must fail:\n{}", out.stderr);
        assert!(out.stderr.contains("does not exist in the build context"), "{}", out.stderr);
    }
    // Inside a copied directory, the link is copied as a link.
    std::fs::create_dir_all(ctx.join("d")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", ctx.join("d/pw")).unwrap();
    write(&ctx, "Dockerfile", "FROM bb:1\nCOPY d /d/\n");
    build_ok(&root, &ctx, &["-t", "leak:2"]);
    let fs = rootfs(&root, "leak:2");
    assert_eq!(std::fs::read_link(fs.path().join("d/pw")).unwrap(), std::path::Path::new("/etc/passwd"));
    let host_passwd = std::fs::read("/etc/passwd").unwrap();
    assert_ne!(std::fs::read(fs.path().join("etc/passwd")).unwrap(), host_passwd);
}
