//! A registry that lies: an HTTP/1.1 proxy in front of a real registry
//! that relays every request and, when told, alters what it relays the
//! ways hostile or broken registries do (SECURITY.md 2.5, 3.8): corrupt
//! blobs, a wrong `Docker-Content-Digest`, a document that is both a
//! manifest and an index, sizes that lie, relative `Location`s with a
//! query, blob redirects to another port, a Bearer token service, chunked
//! uploads that keep fewer bytes than sent or answer 416, mounts that fall
//! back to an upload; or it is only slow. It records every request (whether it
//! carried credentials, and what was answered) and how many blob transfers
//! were in flight at once, so tests can check what the client did. Plain std sockets; one thread per
//! connection; everything stops when the proxy is dropped.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;

/// What to lie about (all off: an honest relay).
#[derive(Debug, Clone, Default)]
pub struct Lies {
    /// Flip a byte in every blob served.
    pub corrupt_blobs: bool,
    /// Flip a byte only in blobs larger than this (layers, not configs).
    pub corrupt_blobs_over: Option<usize>,
    /// Send only half of each blob, then close the connection.
    pub truncate_blobs: bool,
    /// A `Docker-Content-Digest` that is not the manifest's.
    pub wrong_digest_header: bool,
    /// Add `"manifests":[]` to manifests (both a manifest and an index).
    pub ambiguous_manifest: bool,
    /// Serve manifests with the index Content-Type.
    pub content_type_mismatch: bool,
    /// Declare each layer one byte larger than it is.
    pub layer_size_lie: bool,
    /// Give manifests a media type nobody knows.
    pub unknown_media_type: bool,
    /// Serve a Docker schema 1 manifest.
    pub schema1: bool,
    /// Serve layer digests like `sha256:../../../etc/passwd`.
    pub traversal_digest: bool,
    /// Upload `Location`s relative, with an extra query parameter (`lie=1`).
    pub relative_location: bool,
    /// Answer blob GETs with a 307 to a "storage" server on another port.
    pub redirect_blobs: bool,
    /// Require Bearer tokens from this proxy's /token, which wants these Basic credentials (None: anonymous tokens).
    pub bearer: Option<Option<(String, String)>>,
    /// Upload `Location`s as paths relative to the request's directory (`UUID?_state=…`).
    pub path_relative_location: bool,
    /// Relay the n-th PATCH (from 1, counted since the lies were set) with only
    /// the first half of its body: the registry keeps less than was sent, and its
    /// `Range` says so.
    pub short_patch: Option<usize>,
    /// Answer the n-th PATCH with 416 (out of step) without relaying it.
    pub refuse_patch: Option<usize>,
    /// Relay mount POSTs without `mount`/`from`: the registry opens an upload
    /// (202) as it does for a blob it cannot mount.
    pub refuse_mounts: bool,
    /// Hold every blob transfer (see [`is_blob_transfer`]) this long before
    /// relaying it, a slow link: transfers a client runs in parallel then
    /// surely overlap, and [`Proxy::max_in_flight`] shows how many did.
    pub blob_delay: Option<Duration>,
}

/// One request as the proxy (or its storage server) received it, and the answer.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub authorization: Option<String>,
    /// The request's `Content-Range`.
    pub content_range: Option<String>,
    pub status: u16,
    /// The `Location` answered, as the client got it.
    pub location: Option<String>,
    /// The `Range` answered.
    pub range: Option<String>,
}

struct State {
    upstream: String,
    port: u16,
    storage_port: u16,
    lies: Mutex<Lies>,
    seen: Mutex<Vec<Seen>>,
    storage_seen: Mutex<Vec<Seen>>,
    stored: Mutex<HashMap<String, Vec<u8>>>,
    tokens: Mutex<HashMap<String, Vec<String>>>,
    token_fetches: AtomicUsize,
    patches: AtomicUsize,
    /// Blob transfers being served now, and the most there ever were.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    agent: ureq::Agent,
}

pub struct Proxy {
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send only this many body bytes, then hang up (the Content-Length stays).
    cut_at: Option<usize>,
}

impl Response {
    fn new(status: u16, body: Vec<u8>) -> Response {
        Response { status, headers: Vec::new(), body, cut_at: None }
    }
    fn header(mut self, k: &str, v: impl Into<String>) -> Response {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
        self.headers.push((k.to_string(), v.into()));
        self
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str())
    }
}

impl Proxy {
    /// Relay to `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str, lies: Lies) -> Proxy {
        let main = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let storage = TcpListener::bind("127.0.0.1:0").expect("bind storage");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .build()
            .new_agent();
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            port: main.local_addr().unwrap().port(),
            storage_port: storage.local_addr().unwrap().port(),
            lies: Mutex::new(lies),
            seen: Mutex::default(),
            storage_seen: Mutex::default(),
            stored: Mutex::default(),
            tokens: Mutex::default(),
            token_fetches: AtomicUsize::new(0),
            patches: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            agent,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (listener, is_storage) in [(main, false), (storage, true)] {
            let (state, stop) = (state.clone(), stop.clone());
            listener.set_nonblocking(true).unwrap();
            threads.push(std::thread::spawn(move || accept_loop(listener, state, stop, is_storage)));
        }
        Proxy { state, stop, threads }
    }

    pub fn port(&self) -> u16 {
        self.state.port
    }
    /// `127.0.0.1:PORT`, to use in image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.state.port)
    }
    pub fn set_lies(&self, lies: Lies) {
        *self.state.lies.lock().unwrap() = lies;
        self.state.patches.store(0, Ordering::SeqCst);
    }
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
    pub fn storage_seen(&self) -> Vec<Seen> {
        self.state.storage_seen.lock().unwrap().clone()
    }
    /// The most blob transfers that were in flight at once since the start (or [`Proxy::clear`]).
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
    pub fn token_fetches(&self) -> usize {
        self.state.token_fetches.load(Ordering::SeqCst)
    }
    pub fn clear(&self) {
        self.state.seen.lock().unwrap().clear();
        self.state.storage_seen.lock().unwrap().clear();
        self.state.max_in_flight.store(0, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>, stop: Arc<AtomicBool>, is_storage: bool) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((conn, _)) => {
                let state = state.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &state, &stop, is_storage);
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break,
        }
    }
}

fn serve(conn: TcpStream, state: &State, stop: &AtomicBool, is_storage: bool) -> io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut out = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    loop {
        let req = match read_request(&mut r) {
            Ok(Some(req)) => req,
            Ok(None) => return Ok(()),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        // Counted from the request until its answer is written: the whole transfer.
        let transfer = (!is_storage && is_blob_transfer(&req)).then(|| InFlight::start(state));
        let resp = if is_storage {
            let id = req.target.trim_start_matches("/blob/").to_string();
            match state.stored.lock().unwrap().get(&id) {
                Some(b) => Response::new(200, b.clone()).header("content-type", "application/octet-stream"),
                None => Response::new(404, Vec::new()),
            }
        } else {
            handle(&req, state)
        };
        let seen = Seen {
            method: req.method.clone(),
            target: req.target.clone(),
            authorization: req.header("authorization").map(str::to_string),
            content_range: req.header("content-range").map(str::to_string),
            status: resp.status,
            location: resp.get("location").map(str::to_string),
            range: resp.get("range").map(str::to_string),
        };
        if is_storage { &state.storage_seen } else { &state.seen }.lock().unwrap().push(seen);
        write_response(&mut out, &req, &resp)?;
        drop(transfer);
        if resp.cut_at.is_some() {
            return Ok(()); // hang up mid-body
        }
    }
}

/// A request that moves a blob's bytes: a GET of a blob, or a PATCH or PUT
/// of an upload (not HEADs, mounts or the POST that opens an upload).
fn is_blob_transfer(req: &Request) -> bool {
    let path = req.target.split('?').next().unwrap_or("");
    (req.method == "GET" && path.contains("/blobs/sha256:")) || (matches!(req.method.as_str(), "PATCH" | "PUT") && path.contains("/blobs/uploads/"))
}

/// One blob transfer in flight, until dropped.
struct InFlight<'s>(&'s State);

impl<'s> InFlight<'s> {
    fn start(state: &'s State) -> InFlight<'s> {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if let Some(d) = state.lies.lock().unwrap().blob_delay {
            std::thread::sleep(d);
        }
        InFlight(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut req = Request { method, target, headers, body: Vec::new() };
    if let Some(n) = req.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut body = vec![0u8; n];
        read_exact_patiently(r, &mut body)?;
        req.body = body;
    } else if req.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            let mut chunk = vec![0u8; n + 2];
            read_exact_patiently(r, &mut chunk)?;
            if n == 0 {
                break;
            }
            req.body.extend_from_slice(&chunk[..n]);
        }
    }
    Ok(Some(req))
}

fn read_exact_patiently(r: &mut impl Read, buf: &mut [u8]) -> io::Result<()> {
    let mut n = 0;
    let mut idle = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(k) => {
                n += k;
                idle = 0;
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) && idle < 60 => idle += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        _ => "Status",
    }
}

fn write_response(out: &mut TcpStream, req: &Request, resp: &Response) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    let head_only = req.method == "HEAD";
    for (k, v) in &resp.headers {
        if k.eq_ignore_ascii_case("content-length") && !head_only {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !head_only || resp.get("content-length").is_none() {
        head.push_str(&format!("Content-Length: {}\r\n", if head_only { 0 } else { resp.body.len() }));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if !head_only {
        let n = resp.cut_at.unwrap_or(resp.body.len());
        out.write_all(&resp.body[..n])?;
    }
    out.flush()
}

/// The repository a /v2/ path is about, and the kind of request.
fn repo_of(path: &str) -> Option<String> {
    let p = path.strip_prefix("/v2/")?;
    for marker in ["/blobs/", "/manifests/", "/tags/"] {
        if let Some(i) = p.find(marker) {
            return Some(p[..i].to_string());
        }
    }
    None
}

fn query_param(target: &str, key: &str) -> Vec<String> {
    let q = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn grants(scopes: &[String], repo: &str, action: &str) -> bool {
    scopes.iter().any(|s| {
        let mut it = s.splitn(3, ':');
        let (kind, name, actions) = (it.next(), it.next(), it.next().unwrap_or(""));
        kind == Some("repository") && name == Some(repo) && actions.split(',').any(|a| a == action || a == "*")
    })
}

fn handle(req: &Request, state: &State) -> Response {
    let lies = state.lies.lock().unwrap().clone();
    let path = req.target.split('?').next().unwrap_or("");
    if let Some(creds) = &lies.bearer {
        if path == "/token" {
            if let Some((u, p)) = creds {
                let want = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")));
                if req.header("authorization") != Some(want.as_str()) {
                    return Response::new(401, br#"{"details":"wrong credentials"}"#.to_vec());
                }
            }
            let n = state.token_fetches.fetch_add(1, Ordering::SeqCst);
            // Distinctive, so a test can grep any output for it.
            let token = format!("citoken-{n}-d2f7a1c9e4");
            let scopes: Vec<String> = query_param(&req.target, "scope").iter().flat_map(|s| s.split(' ').map(str::to_string).collect::<Vec<_>>()).collect();
            state.tokens.lock().unwrap().insert(token.clone(), scopes);
            return Response::new(200, format!(r#"{{"token":"{token}","expires_in":300}}"#).into_bytes()).header("content-type", "application/json");
        }
        let granted = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .and_then(|t| state.tokens.lock().unwrap().get(t).cloned());
        let mut needed: Vec<(String, &str)> = Vec::new();
        if let Some(repo) = repo_of(path) {
            let action = if matches!(req.method.as_str(), "GET" | "HEAD") { "pull" } else { "push" };
            needed.push((repo, action));
            for from in query_param(&req.target, "from") {
                needed.push((from, "pull"));
            }
        }
        let ok = match &granted {
            None => false,
            Some(scopes) => needed.iter().all(|(r, a)| grants(scopes, r, a)),
        };
        if !ok {
            let scope = needed.iter().map(|(r, a)| format!("repository:{r}:{}", if *a == "push" { "pull,push" } else { "pull" })).collect::<Vec<_>>().join(" ");
            let mut ch = format!("Bearer realm=\"http://127.0.0.1:{}/token\",service=\"ci-proxy\"", state.port);
            if !scope.is_empty() {
                ch.push_str(&format!(",scope=\"{scope}\""));
            }
            return Response::new(401, br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_vec())
                .header("www-authenticate", ch)
                .header("content-type", "application/json");
        }
    }
    let is_blob_get = req.method == "GET" && path.contains("/blobs/sha256:");
    let is_manifest_get = req.method == "GET" && path.contains("/manifests/");
    let mut relayed = None;
    if req.method == "PATCH" {
        let n = state.patches.fetch_add(1, Ordering::SeqCst) + 1;
        if lies.refuse_patch == Some(n) {
            return Response::new(416, br#"{"errors":[{"code":"RANGE_INVALID","message":"invalid content range"}]}"#.to_vec())
                .header("content-type", "application/json");
        }
        if lies.short_patch == Some(n) {
            let start: usize = req.header("content-range").and_then(|r| r.split('-').next()).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            let half = req.body.len() / 2;
            let mut headers: Vec<(String, String)> = req.headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("content-range")).cloned().collect();
            headers.push(("Content-Range".into(), format!("{start}-{}", start + half - 1)));
            relayed = Some(Request { method: req.method.clone(), target: req.target.clone(), headers, body: req.body[..half].to_vec() });
        }
    }
    if lies.refuse_mounts && req.method == "POST" && req.target.contains("mount=") {
        relayed = Some(Request { method: req.method.clone(), target: path.to_string(), headers: req.headers.clone(), body: req.body.clone() });
    }
    let mut resp = forward(relayed.as_ref().unwrap_or(req), state, lies.bearer.is_some());
    let upstream = state.upstream.clone();
    if let Some(loc) = resp.get("location").map(str::to_string) {
        let own = format!("http://127.0.0.1:{}", state.port);
        let mut l = loc.replace(&upstream, &own);
        if lies.relative_location && l.contains("/blobs/uploads/") {
            l = l.replacen(&own, "", 1);
            l.push_str(if l.contains('?') { "&lie=1" } else { "?lie=1" });
        }
        if lies.path_relative_location && l.contains("/blobs/uploads/") {
            let dir = &path[..path.rfind('/').map(|i| i + 1).unwrap_or(0)];
            let abs = l.strip_prefix(&own).unwrap_or(&l).to_string();
            if let Some(rest) = abs.strip_prefix(dir) {
                l = rest.to_string();
            }
        }
        resp = resp.header("location", l);
    }
    if is_blob_get && resp.status == 200 {
        if (lies.corrupt_blobs || lies.corrupt_blobs_over.is_some_and(|n| resp.body.len() > n)) && !resp.body.is_empty() {
            let mid = resp.body.len() / 2;
            resp.body[mid] ^= 0xff;
        }
        if lies.truncate_blobs && resp.body.len() > 1 {
            resp.cut_at = Some(resp.body.len() / 2);
        }
        if lies.redirect_blobs {
            let id = format!("b{}", state.stored.lock().unwrap().len());
            state.stored.lock().unwrap().insert(id.clone(), resp.body.clone());
            return Response::new(307, Vec::new()).header("location", format!("http://127.0.0.1:{}/blob/{id}", state.storage_port));
        }
    }
    if is_manifest_get && resp.status == 200 {
        let mut doc: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        let mut rewritten = false;
        if lies.ambiguous_manifest && doc.get("layers").is_some() {
            doc["manifests"] = serde_json::json!([]);
            rewritten = true;
        }
        if lies.layer_size_lie {
            if let Some(layers) = doc.get_mut("layers").and_then(|l| l.as_array_mut()) {
                for l in layers {
                    l["size"] = serde_json::json!(l["size"].as_u64().unwrap_or(0) + 1);
                }
                rewritten = true;
            }
        }
        if lies.traversal_digest {
            if let Some(layers) = doc.get_mut("layers").and_then(|l| l.as_array_mut()) {
                for l in layers {
                    l["digest"] = serde_json::json!("sha256:../../../etc/passwd");
                }
                rewritten = true;
            }
        }
        if lies.unknown_media_type {
            doc["mediaType"] = serde_json::json!("application/vnd.example.thing.v1+json");
            resp = resp.header("content-type", "application/vnd.example.thing.v1+json");
            rewritten = true;
        }
        if lies.schema1 {
            doc = serde_json::json!({"schemaVersion": 1, "name": "x", "tag": "1", "architecture": "amd64", "fsLayers": [], "history": []});
            resp = resp.header("content-type", "application/vnd.docker.distribution.manifest.v1+prettyjws");
            rewritten = true;
        }
        if rewritten {
            resp.body = serde_json::to_vec(&doc).unwrap();
            // Honest about the new bytes (the lie is in the content), unless told otherwise below.
            resp.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("docker-content-digest"));
        }
        if lies.content_type_mismatch {
            resp = resp.header("content-type", "application/vnd.oci.image.index.v1+json");
        }
        if lies.wrong_digest_header {
            resp = resp.header("docker-content-digest", "sha256:0000000000000000000000000000000000000000000000000000000000000000");
        }
    }
    resp
}

fn forward(req: &Request, state: &State, strip_auth: bool) -> Response {
    let url = format!("{}{}", state.upstream, req.target);
    let mut b = ureq::http::Request::builder().method(req.method.as_str()).uri(url.as_str());
    for (k, v) in &req.headers {
        let lk = k.to_ascii_lowercase();
        if ["host", "content-length", "transfer-encoding", "connection"].contains(&lk.as_str()) || (strip_auth && lk == "authorization") {
            continue;
        }
        b = b.header(k.as_str(), v.as_str());
    }
    let needs_len = matches!(req.method.as_str(), "POST" | "PUT" | "PATCH");
    if needs_len {
        b = b.header("content-length", req.body.len().to_string());
    }
    let mut body = &req.body[..];
    let result = if needs_len {
        state.agent.run(b.body(ureq::SendBody::from_reader(&mut body)).unwrap())
    } else {
        state.agent.run(b.body(ureq::SendBody::none()).unwrap())
    };
    let mut up = match result {
        Ok(r) => r,
        Err(e) => return Response::new(502, format!("upstream: {e}").into_bytes()),
    };
    let mut resp = Response::new(up.status().as_u16(), Vec::new());
    for (k, v) in up.headers() {
        if ["transfer-encoding", "connection"].contains(&k.as_str()) {
            continue;
        }
        resp.headers.push((k.to_string(), v.to_str().unwrap_or("").to_string()));
    }
    if req.method != "HEAD" {
        let _ = up.body_mut().as_reader().read_to_end(&mut resp.body);
    }
    resp
}
