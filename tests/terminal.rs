//! The tools on a real terminal (a pty of the test's, tests/support/pty.rs)
//! and in pipes: what a person sees (progress bars, the live build display,
//! the live stats table, aligned tables) and what a log or a pipe gets
//! (plain lines, JSON objects, no escapes). Screens are checked as a VT100
//! shows them, at 80 columns unless a table needs more.

mod lifecycle_common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ci_tests::pty::{has_terminal_controls, Finished, Session, Stream, ALL};
use ci_tests::registry::proxy::{Lies, Proxy};
use ci_tests::registry::{RegistryOptions, TestRegistry};
use ci_tests::{json_lines, tool_path, TestRoot};
use lifecycle_common::Lab;

/// A terminal as small as people keep them, tall enough to hold every line.
const SIZE: (u16, u16) = (50, 80);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `TOOL ARGS` on the store of `root` (and docker's config in a directory of the test).
fn tool(root: &Path, name: &str, args: &[&str]) -> Command {
    let mut c = Command::new(tool_path(name));
    c.env("CIROOT", root).env("DOCKER_CONFIG", root.join("docker-config")).env_remove("CIEXPLAIN").current_dir(root).args(args);
    c
}

/// Run on a terminal (the streams in `on`; the others piped); it must succeed.
fn on_terminal(cmd: Command, on: &[Stream]) -> (Session, Finished) {
    let what = format!("{cmd:?}");
    let mut t = Session::spawn(cmd, SIZE, on);
    let f = t.finish();
    assert!(f.status.success(), "{what}: {:?}\nterminal: {:?}\nstdout: {}\nstderr: {}", f.status, t.seen(), text(&f.stdout), text(&f.stderr));
    (t, f)
}

/// Incompressible bytes (xorshift), so compressed layers stay as big.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Layer sizes of the image the transfer tests move: some over 1 MB, so bars have something to draw.
const LAYERS: [usize; 5] = [1_400_000, 90_000, 2_100_000, 600_000, 1_200_000];

/// Build `name`: FROM scratch and one COPY (one layer) per entry of LAYERS.
fn build_layers(root: &TestRoot, name: &str) {
    let ctx = root.path().join("ctx-layers");
    std::fs::create_dir_all(&ctx).unwrap();
    let mut dockerfile = String::from("FROM scratch\n");
    for (i, n) in LAYERS.iter().enumerate() {
        std::fs::write(ctx.join(format!("f{i}")), noise(*n, i as u64 + 7)).unwrap();
        dockerfile.push_str(&format!("COPY f{i} /f{i}\n"));
    }
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    let out = tool(root.path(), "ci-build", &["-t", name, ctx.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "build {name}: {}", text(&out.stderr));
}

/// The short digests of an image's blobs in the store of `root`: its layers as
/// the store keeps them, and its config (the image id).
fn blobs(root: &Path, name: &str) -> Vec<String> {
    let out = tool(root, "ci-build", &["inspect", name]).output().unwrap();
    assert!(out.status.success(), "inspect {name}: {}", text(&out.stderr));
    let v = &json_lines(&out.stdout)[0];
    let short = |d: &serde_json::Value| d.as_str().unwrap().trim_start_matches("sha256:")[..12].to_string();
    let mut all: Vec<String> = v["manifest"]["layers"].as_array().unwrap().iter().map(|l| short(&l["digest"])).collect();
    assert_eq!(all.len(), LAYERS.len());
    all.push(short(&v["id"]));
    all
}

/// The final screen has one row per blob, each a finished bar: `state`
/// (the layers' state; the config's is `config_state`), the bar full, the
/// bytes done equal to the total; and no row runs past the width.
fn assert_bars(t: &Session, blobs: &[String], state: &str, config_state: &str) {
    let screen = t.screen();
    let all = screen.join("\n");
    // The terminal was blank: its first rows are the bars, one row each (none ran on into the next).
    for row in &screen[..blobs.len()] {
        assert!(blobs.iter().any(|b| row.starts_with(b.as_str())) && row.ends_with("/s"), "a whole bar in each of the first rows, the rate last: {row:?}\n{all}");
    }
    for (i, b) in blobs.iter().enumerate() {
        let want = if i + 1 == blobs.len() { config_state } else { state };
        let rows: Vec<&String> = screen.iter().filter(|r| r.starts_with(b.as_str())).collect();
        assert_eq!(rows.len(), 1, "one row for blob {b}:\n{all}");
        let row = rows[0];
        let rest = row[b.len()..].trim_start();
        assert!(rest.starts_with(&format!("{want} ")), "blob {b} ends {want:?}: {row:?}");
        let (bar, counts) = row.split_once('[').and_then(|(_, r)| r.split_once(']')).unwrap_or_else(|| panic!("a bar in {row:?}"));
        assert!(!bar.is_empty() && bar.chars().all(|c| c == '='), "blob {b}: the bar is full: {row:?}");
        let (done, total) = counts.split_once('/').unwrap_or_else(|| panic!("done/total in {row:?}"));
        assert!(total.trim_start().starts_with(done.trim()), "blob {b}: all its bytes: {row:?}");
    }
}

/// Stderr in a pipe: one line per blob, `TOOL: SHORT STATE (SIZE)`, nothing else
/// about blobs, and no escape sequences or carriage returns.
fn assert_plain(stderr: &[u8], tool: &str, blobs: &[String], state: &str, config_state: &str) {
    assert!(!has_terminal_controls(stderr), "escapes or \\r in a pipe: {:?}", text(stderr));
    let log = text(stderr);
    for (i, b) in blobs.iter().enumerate() {
        let want = format!("{tool}: {b} {} (", if i + 1 == blobs.len() { config_state } else { state });
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(b.as_str())).collect();
        assert!(lines.len() == 1 && lines[0].starts_with(&want) && lines[0].ends_with(')'), "one line {want}SIZE) for {b}:\n{log}");
    }
    assert_eq!(log.lines().count(), blobs.len(), "one line per blob:\n{log}");
}

/// ci-push and ci-pull: bars on a terminal, plain lines in a pipe; JSON
/// only on a piped stdout, a table on a terminal.
#[test]
fn transfers_draw_a_bar_per_blob_on_a_terminal_and_lines_in_a_pipe() {
    let Some(reg) = TestRegistry::start(RegistryOptions::default()) else { return };
    let src = TestRoot::new();
    let name = format!("{}/layers:1", reg.host());
    build_layers(&src, &name);
    let local = blobs(src.path(), &name);

    // Everything on the terminal: a bar per blob, then the table.
    let (t, _) = on_terminal(tool(src.path(), "ci-push", &[&name]), ALL);
    assert_bars(&t, &local, "pushed (gzip)", "pushed");
    let screen = t.screen().join("\n");
    assert!(!t.seen().contains("{\""), "no JSON on a terminal: {screen}");
    assert!(screen.contains("REFERENCE") && screen.contains(&name), "the table: {screen}");

    // stdout piped: the same bars, JSON on stdout.
    let (t, f) = on_terminal(tool(src.path(), "ci-push", &[&name]), &[Stream::Stderr]);
    assert_bars(&t, &local, "exists (gzip)", "exists");
    assert!(!t.seen().contains("{\""), "{:?}", t.seen());
    let objs = json_lines(&f.stdout);
    assert!(objs.len() == 1 && objs[0]["reference"] == name.as_str() && objs[0]["uploaded"] == 0, "{objs:?}");

    // Both piped: plain lines.
    let out = tool(src.path(), "ci-push", &[&name]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_plain(&out.stderr, "ci-push", &local, "exists (gzip)", "exists");
    assert_eq!(json_lines(&out.stdout).len(), 1);

    // A pull with stderr on the terminal and stdout piped, from a slow
    // registry (each blob held 300 ms), so the bars are drawn while they move.
    let slow = Proxy::start(&format!("http://{}", reg.host()), Lies { blob_delay: Some(Duration::from_millis(300)), ..Default::default() });
    let slow_name = format!("{}/layers:1", slow.host());
    let a = TestRoot::new();
    let (t, f) = on_terminal(tool(a.path(), "ci-pull", &[&slow_name]), &[Stream::Stderr]);
    let served = blobs(a.path(), &slow_name);
    assert!(t.seen().contains(" downloading "), "bars in progress: {:?}", t.seen());
    assert_bars(&t, &served, "downloaded", "downloaded");
    let objs = json_lines(&f.stdout);
    assert!(objs.len() == 1 && objs[0]["kind"] == "image", "{objs:?}");
    // Again: nothing to fetch.
    let (t, _) = on_terminal(tool(a.path(), "ci-pull", &[&slow_name]), &[Stream::Stderr]);
    assert_bars(&t, &served, "already here", "already here");

    // stderr piped, stdout on the terminal: plain lines, and a table.
    let b = TestRoot::new();
    let (t, f) = on_terminal(tool(b.path(), "ci-pull", &[&name]), &[Stream::Stdout]);
    assert_plain(&f.stderr, "ci-pull", &served, "downloaded", "downloaded");
    let screen = t.screen().join("\n");
    assert!(screen.starts_with("REFERENCE") && screen.contains(&name) && !t.seen().contains("{\""), "the table, no JSON: {screen}");
}

/// `-j N` bounds the blob transfers in flight, and they do overlap: a slow
/// registry (the proxy holds each blob transfer 500 ms) counts them.
#[test]
fn blob_transfers_run_in_parallel_within_the_bound() {
    let Some(reg) = TestRegistry::start(RegistryOptions::default()) else { return };
    let proxy = Proxy::start(&format!("http://{}", reg.host()), Lies { blob_delay: Some(Duration::from_millis(500)), ..Default::default() });
    let src = TestRoot::new();
    let name = format!("{}/layers:1", proxy.host());
    build_layers(&src, &name);
    let run = |root: &Path, t: &str, args: &[&str]| {
        let out = tool(root, t, args).output().unwrap();
        assert!(out.status.success(), "{t} {args:?}: {}", text(&out.stderr));
    };
    run(src.path(), "ci-push", &["-j", "2", &name]);
    assert_eq!(proxy.max_in_flight(), 2, "push -j 2 (5 layers): two uploads at a time");
    for (jobs, want) in [(Some("2"), 2), (None, ci_core::distribution::DEFAULT_JOBS)] {
        proxy.clear();
        let dest = TestRoot::new();
        let mut args = vec![name.as_str()];
        if let Some(j) = jobs {
            args.splice(0..0, ["-j", j]);
        }
        run(dest.path(), "ci-pull", &args);
        assert_eq!(proxy.max_in_flight(), want, "pull {args:?} (6 blobs): {want} downloads at a time");
        run(dest.path(), "ci-build", &["fsck"]);
    }
    // -j 1: one at a time.
    proxy.clear();
    let dest = TestRoot::new();
    run(dest.path(), "ci-pull", &["-j", "1", &name]);
    assert_eq!(proxy.max_in_flight(), 1);
}

/// The Dockerfile of the build tests: RUN steps with output lines and a
/// command longer than the terminal is wide.
const DOCKERFILE: &str = r#"FROM bb:1
COPY data.txt /data.txt
RUN for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo "output line $i of a step whose lines are longer than an eighty-column terminal is wide"; sleep 0.1; done
RUN echo a step whose command is longer than the terminal is wide, so that its label has to be cut to fit in one row && sleep 0.3
ENV DONE=1
"#;

/// The final screen of a tty build: one row per step, each ended (CACHED or
/// a time), nothing left of the RUN output shown under a running step, no
/// row wider than the terminal. Returns the step rows.
fn assert_steps(t: &Session, cached: bool) -> Vec<String> {
    let screen = t.screen();
    let all = screen.join("\n");
    let wrapped: Vec<&String> = (0..screen.len()).filter(|i| t.wrapped(*i)).map(|i| &screen[i]).collect();
    assert!(wrapped.is_empty(), "rows wider than the terminal: {wrapped:?}\nscreen:\n{all}");
    assert!(!all.contains('│'), "the RUN output under a running step is cleared when it ends:\n{all}");
    let steps: Vec<String> = screen.iter().filter(|r| r.starts_with(" => ")).cloned().collect();
    for n in 1..=5 {
        let tag = format!("[{n}/5] ");
        let rows: Vec<&String> = steps.iter().filter(|r| r.contains(&tag)).collect();
        assert_eq!(rows.len(), 1, "one row for step {n}:\n{all}");
        let r = rows[0];
        let timed = r.rsplit_once("  ").is_some_and(|(_, t)| t.strip_suffix('s').is_some_and(|s| s.parse::<f64>().is_ok()));
        let was_cached = r.starts_with(" => CACHED ");
        // FROM is never a cache hit; every other step is one exactly when `cached`.
        let want_cached = cached && n > 1;
        assert!(if want_cached { was_cached } else { timed && !was_cached }, "step {n} ends {}: {r:?}\n{all}", if want_cached { "CACHED" } else { "with its time" });
    }
    assert!(steps.iter().any(|r| r.starts_with(" => exporting to image")), "{all}");
    steps
}

/// ci-build: the live display on a terminal (`--progress tty`, and `auto`
/// when stderr is one), plain lines otherwise; the image id on a terminal,
/// the image object as JSON when stdout is piped.
#[test]
fn build_progress_on_a_terminal_and_in_a_pipe() {
    let Some(lab) = Lab::new("build RUN steps") else { return };
    let ctx = lab.root.path().join("ctx-build");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(ctx.join("data.txt"), "data\n").unwrap();
    let c = ctx.to_str().unwrap();
    let build = |args: &[&str]| {
        let mut a = vec!["-t", "app:1"];
        a.extend_from_slice(args);
        a.push(c);
        tool(&lab.store, "ci-build", &a)
    };

    // --progress tty, everything on the terminal.
    let (t, _) = on_terminal(build(&["--progress", "tty"]), ALL);
    assert!(t.seen().contains("│ output line 1 of a step"), "a running RUN shows its output: {:?}", t.seen());
    let steps = assert_steps(&t, false);
    let long = steps.iter().find(|r| r.contains("[4/5] RUN echo a step")).unwrap();
    assert!(long.ends_with('s') && long.chars().count() < SIZE.1 as usize, "a long label is cut to fit with its time: {long:?}");
    let screen = t.screen();
    let id = screen.iter().find(|r| r.starts_with("sha256:")).unwrap_or_else(|| panic!("the image id on stdout:\n{}", screen.join("\n")));
    assert_eq!(id.len(), 71, "{id:?}");
    assert!(screen.iter().any(|r| r.starts_with("built ") && r.contains(" as app:1")), "{}", screen.join("\n"));
    assert!(!t.seen().contains("{\""), "no JSON on a terminal: {:?}", t.seen());

    // auto with stderr on the terminal, stdout piped: the live display (all CACHED), JSON.
    let (t, f) = on_terminal(build(&[]), &[Stream::Stderr]);
    assert!(t.seen().contains("\x1b[K"), "auto on a terminal is the live display: {:?}", t.seen());
    assert_steps(&t, true);
    let objs = json_lines(&f.stdout);
    assert!(objs.len() == 1 && objs[0]["kind"] == "image" && format!("sha256:{}", &id[7..]) == objs[0]["id"].as_str().unwrap(), "{objs:?}");

    // --progress plain on the terminal: plain lines, no escapes.
    let (t, _) = on_terminal(build(&["--progress", "plain", "--no-cache"]), ALL);
    assert!(!t.raw().contains(&0x1b), "plain has no escapes: {:?}", t.seen());
    let shown = t.seen().replace("\r\n", "\n");
    for (n, step) in [(2, "[2/5] COPY data.txt /data.txt"), (3, "[3/5] RUN for i in"), (4, "[4/5] RUN echo a step")] {
        assert!(shown.contains(&format!("#{n} {step}")), "{shown}");
        assert!(shown.lines().any(|l| l.starts_with(&format!("#{n} DONE "))), "{shown}");
    }
    assert!(shown.lines().any(|l| l.starts_with("#3 ") && l.ends_with(" output line 12 of a step whose lines are longer than an eighty-column terminal is wide")), "plain relays the RUN output whole: {shown}");

    // auto with stderr piped and stdout on the terminal: plain lines; the id on the terminal.
    let (t, f) = on_terminal(build(&[]), &[Stream::Stdout]);
    assert!(!has_terminal_controls(&f.stderr), "a piped stderr gets no escapes: {:?}", text(&f.stderr));
    let log = text(&f.stderr);
    for n in 2..=5 {
        assert!(log.lines().any(|l| l == format!("#{n} CACHED")), "step {n} CACHED:\n{log}");
    }
    let screen: Vec<String> = t.screen().into_iter().filter(|r| !r.is_empty()).collect();
    assert!(screen.len() == 1 && screen[0].starts_with("sha256:") && screen[0].len() == 71, "only the id on stdout: {screen:?}");
}

/// Where each column of a table starts, checking it is laid out as
/// docker's tables are (text/tabwriter: each column as wide as its widest
/// cell plus 3 spaces, at least 10), with `headers` as its header row.
/// Returns the cells of each row after the header.
fn docker_table(rows: &[String], headers: &[&str]) -> Vec<Vec<String>> {
    let rows: Vec<Vec<char>> = rows.iter().map(|r| r.chars().collect()).collect();
    let head: String = rows[0].iter().collect();
    let mut starts = Vec::new();
    let mut from = 0;
    for h in headers {
        let at = head[from..].find(h).unwrap_or_else(|| panic!("header {h:?} in {head:?}")) + from;
        starts.push(head[..at].chars().count());
        from = at + h.len();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            (0..starts.len())
                .map(|i| {
                    let end = starts.get(i + 1).copied().unwrap_or(r.len()).min(r.len());
                    r[starts[i].min(end)..end].iter().collect::<String>().trim_end().to_string()
                })
                .collect()
        })
        .collect();
    let table = rows.iter().map(|r| r.iter().collect::<String>()).collect::<Vec<_>>().join("\n");
    assert_eq!(cells[0], headers, "the header row:\n{table}");
    assert_eq!(starts[0], 0);
    for i in 0..starts.len() - 1 {
        let widest = cells.iter().map(|r| r[i].chars().count()).max().unwrap();
        assert_eq!(starts[i + 1] - starts[i], (widest + 3).max(10), "column {:?} is its widest cell + 3, at least 10:\n{table}", headers[i]);
    }
    for r in &cells[1..] {
        for c in r {
            assert!(!c.starts_with(' '), "a cell begins at its column: {c:?}\n{table}");
        }
    }
    cells[1..].to_vec()
}

/// `ci-build ls` and `ci-run ps` on a terminal, without --format: docker's
/// headers, aligned columns; JSON lines when piped.
#[test]
fn tables_on_a_terminal() {
    let Some(lab) = Lab::new("containers") else { return };
    let tag = lab.tool("ci-build").args(["tag", "bb:1", "registry.example/a-longer-repository/name:v1.2"]).output().unwrap();
    assert!(tag.status.success(), "{}", text(&tag.stderr));
    let a = lab.run_d(&["--name", "t1"], &["sleep", "1000"]);
    let b = lab.run_d(&["--name", "a-container-with-a-long-name"], &["sh", "-c", "sleep 1000; echo a command longer than twenty"]);
    let wide = (20, 250);

    let mut ls = lab.tool("ci-build");
    ls.arg("ls");
    let mut t = Session::spawn(ls, wide, ALL);
    assert!(t.finish().status.success(), "{:?}", t.seen());
    let screen: Vec<String> = t.screen().into_iter().filter(|r| !r.is_empty()).collect();
    let rows = docker_table(&screen, &["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    let names: Vec<(String, String)> = rows.iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert_eq!(names.len(), 2, "{screen:?}");
    assert!(names.contains(&("bb".into(), "1".into())) && names.contains(&("registry.example/a-longer-repository/name".into(), "v1.2".into())), "{names:?}");
    assert!(rows.iter().all(|r| r[2].len() == 12 && r[2] == rows[0][2]), "short ids: {rows:?}");

    let mut t = Session::spawn(lab.cmd(&["ps"]), wide, ALL);
    assert!(t.finish().status.success(), "{:?}", t.seen());
    let screen: Vec<String> = t.screen().into_iter().filter(|r| !r.is_empty()).collect();
    let rows = docker_table(&screen, &["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]);
    assert_eq!(rows.len(), 2, "{screen:?}");
    // Newest first.
    assert_eq!(rows[0][0], b["id"].as_str().unwrap()[..12]);
    assert_eq!(rows[1][0], a["id"].as_str().unwrap()[..12]);
    assert_eq!(rows[0][2], "\"sh -c sleep 1000; e…\"", "commands cut at 20 characters: {rows:?}");
    assert_eq!(rows[1][2], "\"sleep 1000\"");
    assert!(rows.iter().all(|r| r[4].starts_with("Up ") && r[1] == "bb:1"), "{rows:?}");
    assert_eq!((rows[0][6].as_str(), rows[1][6].as_str()), ("a-container-with-a-long-name", "t1"));

    // Piped: JSON lines.
    assert_eq!(json_lines(lab.ok(&["ps"]).as_bytes()).len(), 2);
    let ls = json_lines(&lab.tool("ci-build").arg("ls").output().unwrap().stdout);
    assert!(ls.len() == 1 && ls[0]["tags"].as_array().unwrap().len() == 2, "one object per image (a row per name on a terminal): {ls:?}");
}

/// How many times the live stats table was drawn (each time from a cleared screen).
fn redraws(t: &Session) -> usize {
    t.seen().matches("\x1b[2J\x1b[HCONTAINER ID").count()
}

/// `ci-run stats` on a terminal: a table redrawn in place until Ctrl-C,
/// which ends it at once and leaves the container alone; `--no-stream`
/// draws it once; piped, JSON lines.
#[test]
fn stats_is_a_live_table_on_a_terminal_and_json_lines_in_a_pipe() {
    let Some(lab) = Lab::new("containers") else { return };
    let c = lab.run_d(&["--name", "ticker"], &["sleep", "1000"]);
    let id = c["id"].as_str().unwrap();
    let headers = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"];
    let size = (20, 160);

    let mut t = Session::spawn(lab.cmd(&["stats"]), size, ALL);
    t.wait_until("three redraws of the table", |t| redraws(t) >= 3);
    let screen: Vec<String> = t.screen().into_iter().filter(|r| !r.is_empty()).collect();
    let rows = docker_table(&screen, &headers);
    assert!(rows.len() == 1 && rows[0][0] == id[..12] && rows[0][1] == "ticker" && rows[0][7] == "1", "{screen:?}");
    assert!(rows[0][2].ends_with('%') && rows[0][3].contains(" / "), "{rows:?}");
    let typed = Instant::now();
    t.type_keys(b"\x03");
    let f = t.finish();
    assert!(typed.elapsed() < Duration::from_secs(5), "Ctrl-C ends stats at once (took {:?})", typed.elapsed());
    use std::os::unix::process::ExitStatusExt;
    assert!(f.status.signal() == Some(libc::SIGINT) || f.status.code() == Some(130), "ended by Ctrl-C: {:?}", f.status);
    assert!(!t.seen().contains("error"), "{:?}", t.seen());
    assert_eq!(lab.state("ticker"), "running", "Ctrl-C on stats leaves the container alone");

    // --no-stream: the table once, no clearing, exit 0.
    let (t, _) = {
        let mut t = Session::spawn(lab.cmd(&["stats", "--no-stream"]), size, ALL);
        let f = t.finish();
        assert!(f.status.success(), "{:?} {:?}", f.status, t.seen());
        (t, f)
    };
    assert!(!t.raw().contains(&0x1b), "--no-stream does not redraw: {:?}", t.seen());
    let screen: Vec<String> = t.screen().into_iter().filter(|r| !r.is_empty()).collect();
    assert_eq!(docker_table(&screen, &headers).len(), 1, "{screen:?}");

    // Piped: one JSON line per container per reading.
    let objs = json_lines(lab.ok(&["stats", "--no-stream"]).as_bytes());
    assert!(objs.len() == 1 && objs[0]["kind"] == "container" && objs[0]["id"] == id, "{objs:?}");
    let mut live = lab.cmd(&["stats"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(live.stdout.take().unwrap()));
    for _ in 0..2 {
        let l = lines.next().expect("a reading").unwrap();
        let v: serde_json::Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert_eq!(v["id"], id);
    }
    let _ = live.kill();
    let _ = live.wait();
}

