//! End-to-end: `ci-build import --change INSTRUCTION`, like
//! `docker import --change`: the instructions land in the image config that
//! `ci-build inspect` shows, and a change docker does not accept is refused
//! with the flag and the instruction named, leaving the store as it was.

use ci_tests::{busybox_rootfs_tar, json_lines, TestRoot};
use serde_json::json;

#[test]
fn changes_land_in_the_config() {
    let root = TestRoot::new();
    let Some(tar) = busybox_rootfs_tar() else { return };
    let changes = [
        "ENV APP_HOME=/srv/app",
        "ENV PATH=/bin:$APP_HOME/bin",
        "WORKDIR $APP_HOME",
        "WORKDIR data",
        "USER nobody",
        "EXPOSE 8080 53/udp 9000-9001",
        "LABEL org.opencontainers.image.title=\"busy box\" version=1",
        "VOLUME [\"/var/cache\", \"/data\"]",
        "STOPSIGNAL SIGQUIT",
        "ONBUILD RUN echo triggered",
        "ENTRYPOINT [\"/bin/busybox\"]",
        "CMD sh -c 'echo hi'",
    ];
    let mut cmd = root.cmd("ci-build");
    cmd.args(["import", "-t", "bb:changed"]);
    for c in changes {
        cmd.args(["--change", c]);
    }
    cmd.arg("-").write_stdin(tar).assert().success();

    let out = root.cmd("ci-build").args(["inspect", "bb:changed"]).assert().success();
    let inspected = &json_lines(&out.get_output().stdout)[0];
    let config = &inspected["config"]["config"];
    assert_eq!(config["Env"], json!(["APP_HOME=/srv/app", "PATH=/bin:/srv/app/bin"]));
    assert_eq!(config["WorkingDir"], "/srv/app/data", "a relative WORKDIR follows the previous one");
    assert_eq!(config["User"], "nobody");
    assert_eq!(
        config["ExposedPorts"],
        json!({"53/udp": {}, "8080/tcp": {}, "9000/tcp": {}, "9001/tcp": {}})
    );
    assert_eq!(config["Labels"], json!({"org.opencontainers.image.title": "busy box", "version": "1"}));
    assert_eq!(config["Volumes"], json!({"/data": {}, "/var/cache": {}}));
    assert_eq!(config["StopSignal"], "SIGQUIT");
    assert_eq!(config["OnBuild"], json!(["RUN echo triggered"]), "docker's OnBuild survives the store");
    assert_eq!(config["Entrypoint"], json!(["/bin/busybox"]));
    assert_eq!(config["Cmd"], json!(["/bin/sh", "-c", "sh -c 'echo hi'"]), "shell form runs under /bin/sh -c");
    // The rest of the config is still a valid import.
    assert_eq!(inspected["config"]["os"], "linux");
    assert_eq!(inspected["config"]["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
}

#[test]
fn a_bad_change_is_refused_and_stores_nothing() {
    let root = TestRoot::new();
    let Some(tar) = busybox_rootfs_tar() else { return };
    for (change, expected) in [
        ("RUN echo hi", "--change \"RUN echo hi\": RUN cannot be used with --change; it accepts CMD, ENTRYPOINT, ENV"),
        ("HEALTHCHECK CMD true", "--change \"HEALTHCHECK CMD true\": HEALTHCHECK cannot be used with --change"),
        ("CMDD [\"x\"]", "--change \"CMDD [\\\"x\\\"]\": unknown instruction \"CMDD\" — did you mean CMD?"),
        ("EXPOSE http", "--change \"EXPOSE http\": EXPOSE http:"),
        ("ENV PATH", "--change \"ENV PATH\": ENV PATH has no value"),
    ] {
        let out = root
            .cmd("ci-build")
            .args(["import", "-t", "bb:bad", "--change", change, "-"])
            .write_stdin(tar.clone())
            .assert()
            .failure();
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(stderr.contains(expected), "for {change:?}: {stderr}");
    }
    // Nothing was stored: no image, no blob.
    let ls = root.cmd("ci-build").arg("ls").assert().success();
    assert!(json_lines(&ls.get_output().stdout).is_empty());
    let blobs = std::fs::read_dir(root.path().join("images/blobs/sha256")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(blobs, 0, "a refused change must not leave a layer blob behind");
}
