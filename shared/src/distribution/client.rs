//! HTTP to one registry: the `/v2/` API of the OCI distribution spec over
//! ureq (blocking HTTP/1.1, rustls). One [`Registry`] per host holds the
//! connection pool, the TLS settings, the scheme found by the ping, and the
//! authentication state; it is shared by the threads of a transfer.
//!
//! Rules kept here, once for every request:
//! - `Authorization` goes only to the registry's own origin (scheme, host
//!   and port). Redirects are followed by hand, and a hop to any other
//!   origin (blob storage, another port) gets no credentials (CVE-2021-41092).
//! - `Location` headers are followed exactly as given, relative or
//!   absolute, query included; never rebuilt.
//! - Errors say what was asked of whom, what the registry answered (its
//!   `{"errors":[…]}` body decoded), and what to do.

use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

use ureq::http::{self, Method, StatusCode};
use ureq::{Agent, SendBody};

use super::auth::{self, Auth, Challenge, TokenReply};
use super::credentials::{Credentials, DockerConfig};
use super::tls;
use crate::error::{Error, Result};
use crate::explain;

pub type Response = http::Response<ureq::Body>;

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Allow plain HTTP and unverified certificates for any registry.
    pub insecure: bool,
    /// Certificates to use instead of /etc/docker/certs.d/HOST:PORT.
    pub cert_dir: Option<PathBuf>,
}

/// A request body.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A stream, with its length when known (else sent chunked).
    Stream(&'a mut dyn Read, Option<u64>),
}

/// One request to the registry.
pub struct Call<'a> {
    pub method: Method,
    pub url: String,
    /// Token scopes the request needs (`repository:NAME:pull`, ...).
    pub scopes: Vec<String>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body<'a>,
}

impl<'a> Call<'a> {
    pub fn new(method: Method, url: String, scopes: Vec<String>) -> Call<'a> {
        Call { method, url, scopes, headers: Vec::new(), body: Body::Empty }
    }
    pub fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }
    pub fn body(mut self, b: Body<'a>) -> Self {
        self.body = b;
        self
    }
}

/// A registry we are talking to.
pub struct Registry {
    /// The host as references write it (`docker.io`, `127.0.0.1:5000`).
    host: String,
    /// `https://host:port` or `http://host:port`, as the ping found.
    base: String,
    agent: Agent,
    pub auth: Auth,
    insecure: bool,
}

const USER_AGENT: &str = concat!("ci/", env!("CARGO_PKG_VERSION"));
/// The most redirects followed for one GET (docker follows 10; storage needs 1).
const MAX_REDIRECTS: usize = 5;
/// Error bodies are read up to this size for their message.
const MAX_ERROR_BODY: u64 = 64 << 10;

impl Registry {
    /// Reach a registry with the user's stored credentials for it.
    pub fn connect(host: &str, opts: &ClientOptions) -> Result<Registry> {
        let creds = DockerConfig::load()?.get(host)?.map(|(c, _)| c);
        Registry::connect_with(host, opts, creds)
    }

    /// Reach a registry: choose the scheme by pinging `/v2/`, and learn how it authenticates.
    pub fn connect_with(host: &str, opts: &ClientOptions, creds: Option<Credentials>) -> Result<Registry> {
        let tls = tls::config_for(host, opts.cert_dir.as_deref(), opts.insecure)?;
        let agent = Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(300)))
            .user_agent(USER_AGENT)
            .max_idle_connections_per_host(16)
            .build()
            .new_agent();
        let authority = authority(host);
        let https = format!("https://{authority}");
        let plain_ok = opts.insecure || tls::is_loopback(host);
        let (base, resp) = match ping(&agent, &https) {
            Ok(r) => (https, r),
            Err(e) if is_certificate_error(&e) && !opts.insecure => {
                return Err(net_error("connect to", &https, e).hint(format!(
                    "the registry's certificate is not trusted: put its CA in {}/ca.crt or give --cert-dir DIR; --insecure skips verification",
                    tls::certs_dir_for(host).display()
                )));
            }
            Err(e) if plain_ok && is_not_tls(&e) => {
                let http = format!("http://{authority}");
                match ping(&agent, &http) {
                    Ok(r) => (http, r),
                    Err(_) => return Err(net_error("connect to", &https, e).hint(unreachable_hint(host))),
                }
            }
            Err(e) => {
                let mut hint = unreachable_hint(host);
                if !plain_ok {
                    hint.push_str("; a registry that serves plain HTTP needs --insecure");
                }
                return Err(net_error("connect to", &https, e).hint(hint));
            }
        };
        let challenge = challenge_of(&base, resp)?;
        explain!("registry {host}: {base}/v2/ answered, authentication: {}", describe_challenge(&challenge));
        Ok(Registry { host: host.to_string(), base, agent, auth: Auth::new(challenge, creds), insecure: opts.insecure })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// `scheme://host:port` of the registry.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// An absolute URL for a path (`/v2/...`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Send a request, authenticated for its scopes if it goes to the registry itself.
    /// A 401 on a replayable request means the registry wants another token
    /// (a new challenge or a wider scope): fetch one and retry once.
    pub fn send(&self, mut call: Call<'_>) -> Result<Response> {
        let own = origin(&call.url) == origin(&self.base);
        let authz = if own { self.authorization(&call.scopes, false)? } else { None };
        let resp = self.raw(&mut call, authz.as_deref())?;
        let replayable = !matches!(call.body, Body::Stream(..));
        if resp.status() != StatusCode::UNAUTHORIZED || !own || !replayable {
            return Ok(resp);
        }
        let Some(challenge) = best_challenge(&resp) else { return Ok(resp) };
        let mut scopes = call.scopes.clone();
        if let Challenge::Bearer { scope: Some(s), .. } = &challenge {
            for s in s.split(' ') {
                if !scopes.iter().any(|x| x == s) {
                    scopes.push(s.to_string());
                }
            }
        }
        // Retry only where something can change: a Bearer challenge (a fresh
        // token, maybe for a wider scope), or Basic when we had sent nothing.
        let retry = match &challenge {
            Challenge::Bearer { .. } => true,
            Challenge::Basic => authz.is_none() && self.auth.creds.is_some(),
            Challenge::Anonymous => false,
        };
        self.auth.set_challenge(challenge);
        if !retry {
            return Ok(resp);
        }
        drain(resp);
        let authz = self.authorization(&scopes, true)?;
        self.raw(&mut call, authz.as_deref())
    }

    /// GET, following redirects by hand (credentials only to the registry's own origin).
    pub fn get(&self, url: String, scopes: Vec<String>, headers: &[(&'static str, String)]) -> Result<Response> {
        let mut url = url;
        for _ in 0..=MAX_REDIRECTS {
            let mut call = Call::new(Method::GET, url.clone(), scopes.clone());
            call.headers = headers.to_vec();
            let resp = self.send(call)?;
            if resp.status().is_redirection() {
                if let Some(loc) = header(&resp, "location") {
                    let next = resolve(&url, &loc);
                    explain!("redirected to {next}{}", if origin(&next) != origin(&self.base) { " (another origin: no credentials sent)" } else { "" });
                    drain(resp);
                    url = next;
                    continue;
                }
            }
            return Ok(resp);
        }
        Err(Error::io("GET", &url, io::Error::other(format!("more than {MAX_REDIRECTS} redirects"))))
    }

    fn raw(&self, call: &mut Call<'_>, authz: Option<&str>) -> Result<Response> {
        explain!("{} {}", call.method, call.url);
        let mut b = http::Request::builder().method(call.method.clone()).uri(call.url.as_str());
        for (k, v) in &call.headers {
            b = b.header(*k, v.as_str());
        }
        if let Some(a) = authz {
            b = b.header("authorization", a);
        }
        let bad = |e: http::Error| Error::invalid(format!("cannot make a request for {}: {e}", call.url));
        let op = method_op(&call.method);
        let result = match &mut call.body {
            Body::Empty => {
                if [Method::POST, Method::PUT, Method::PATCH].contains(&call.method) {
                    b = b.header("content-length", "0");
                }
                self.agent.run(b.body(SendBody::none()).map_err(bad)?)
            }
            Body::Bytes(bytes) => {
                b = b.header("content-length", bytes.len().to_string());
                self.agent.run(b.body(SendBody::from_reader(bytes)).map_err(bad)?)
            }
            Body::Stream(r, len) => {
                if let Some(n) = len {
                    b = b.header("content-length", n.to_string());
                }
                self.agent.run(b.body(SendBody::from_reader(*r)).map_err(bad)?)
            }
        };
        result.map_err(|e| net_error(op, &call.url, e))
    }

    /// The `Authorization` header for a request needing `scopes` (None: send none).
    fn authorization(&self, scopes: &[String], fresh: bool) -> Result<Option<String>> {
        match self.auth.challenge() {
            Challenge::Anonymous => Ok(None),
            Challenge::Basic => Ok(self.auth.creds.as_ref().filter(|c| !c.identity_token).map(auth::basic_header)),
            Challenge::Bearer { realm, service, .. } => {
                let key = scopes.join(" ");
                if !fresh {
                    if let Some(t) = self.auth.cached_token(&key) {
                        return Ok(Some(format!("Bearer {t}")));
                    }
                } else {
                    self.auth.forget_token(&key);
                }
                let token = self.fetch_token(&realm, service.as_deref(), scopes)?;
                self.auth.remember_token(&key, token.0.clone(), token.1);
                Ok(Some(format!("Bearer {}", token.0)))
            }
        }
    }

    /// Trade credentials (or nothing) for a token at the realm.
    fn fetch_token(&self, realm: &str, service: Option<&str>, scopes: &[String]) -> Result<(String, Option<u64>)> {
        if !realm.starts_with("https://") && !realm.starts_with("http://") {
            return Err(Error::Corrupt(format!("registry {}: its token realm {realm:?} is not an http(s) URL", self.host)));
        }
        let realm_host = origin(realm).split("://").nth(1).unwrap_or("");
        if realm.starts_with("http://") && self.auth.creds.is_some() && !self.insecure && !tls::is_loopback(realm_host) {
            return Err(Error::Unsupported(format!(
                "registry {}: its token service {realm} is plain HTTP; ci will not send your credentials there in clear",
                self.host
            ))
            .hint("use --insecure only if you trust the network"));
        }
        let mut params: Vec<(String, String)> = Vec::new();
        if let Some(s) = service {
            params.push(("service".into(), s.into()));
        }
        for s in scopes.iter().filter(|s| !s.is_empty()) {
            params.push(("scope".into(), s.clone()));
        }
        let encode = |ps: &[(String, String)]| {
            ps.iter().map(|(k, v)| format!("{k}={}", auth::query_escape(v))).collect::<Vec<_>>().join("&")
        };
        explain!("token for {} from {realm}", if scopes.is_empty() { "login".to_string() } else { scopes.join(" ") });
        let resp = match &self.auth.creds {
            Some(c) if c.identity_token => {
                // OAuth2 refresh-token grant (docker's identity tokens).
                let mut form = params.clone();
                form.push(("grant_type".into(), "refresh_token".into()));
                form.push(("refresh_token".into(), c.secret.clone()));
                form.push(("client_id".into(), "ci".into()));
                let body = encode(&form);
                let mut reader = body.as_bytes();
                let req = http::Request::builder()
                    .method(Method::POST)
                    .uri(realm)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("content-length", body.len().to_string())
                    .body(SendBody::from_reader(&mut reader))
                    .map_err(|e| Error::invalid(format!("bad token realm {realm}: {e}")))?;
                self.agent.run(req)
            }
            creds => {
                let q = encode(&params);
                let url = if q.is_empty() { realm.to_string() } else { with_query(realm, &q) };
                let mut b = http::Request::builder().method(Method::GET).uri(url.as_str());
                if let Some(c) = creds {
                    b = b.header("authorization", auth::basic_header(c));
                }
                let req = b.body(SendBody::none()).map_err(|e| Error::invalid(format!("bad token realm {realm}: {e}")))?;
                self.agent.run(req)
            }
        }
        .map_err(|e| net_error("GET token from", realm, e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let who = self.auth.creds.as_ref().map(|c| format!("the credentials of {:?}", c.username)).unwrap_or_else(|| "anonymous access".into());
            drain(resp);
            return Err(Error::Unsupported(format!(
                "registry {}: the token service {realm} refused {who} for {}",
                self.host,
                if scopes.is_empty() { "login".to_string() } else { scopes.join(" ") }
            ))
            .hint(format!("log in with `ci-push login {}` (or docker login)", self.host)));
        }
        let mut resp = expect(resp, &[StatusCode::OK], "GET token from", realm)?;
        let data = read_limited(&mut resp, 1 << 20, realm)?;
        let reply: TokenReply = serde_json::from_slice(&data)
            .map_err(|e| Error::Corrupt(format!("token service {realm} answered something that is not a token: {e}")))?;
        let token = if reply.token.is_empty() { reply.access_token } else { reply.token };
        if token.is_empty() {
            return Err(Error::Corrupt(format!("token service {realm} answered without a token")));
        }
        Ok((token, reply.expires_in))
    }

    /// Check that the credentials work (`ci-push login`).
    pub fn check_login(&self) -> Result<()> {
        match self.auth.challenge() {
            Challenge::Anonymous => Ok(()),
            Challenge::Basic => {
                let resp = self.send(Call::new(Method::GET, self.url("/v2/"), Vec::new()))?;
                if resp.status() == StatusCode::UNAUTHORIZED {
                    return Err(Error::Unsupported(format!("login to {} failed: wrong user name or password", self.host)));
                }
                drain(expect(resp, &[StatusCode::OK], "GET", &self.url("/v2/"))?);
                Ok(())
            }
            Challenge::Bearer { realm, service, .. } => self.fetch_token(&realm, service.as_deref(), &[]).map(|_| ()),
        }
    }
}

/// Where a registry host is served: Docker Hub's `docker.io` names live on `registry-1.docker.io`.
pub fn authority(host: &str) -> &str {
    if host == crate::reference::DEFAULT_DOMAIN {
        crate::reference::DOCKER_HUB_REGISTRY
    } else {
        host
    }
}

fn unreachable_hint(host: &str) -> String {
    format!("is a registry running at {host}, and is the address right?")
}

fn describe_challenge(c: &Challenge) -> String {
    match c {
        Challenge::Anonymous => "none".into(),
        Challenge::Basic => "Basic".into(),
        Challenge::Bearer { realm, service, .. } => format!("Bearer token from {realm} (service {})", service.as_deref().unwrap_or("-")),
    }
}

fn challenge_kind(c: &Challenge) -> u8 {
    match c {
        Challenge::Anonymous => 0,
        Challenge::Basic => 1,
        Challenge::Bearer { .. } => 2,
    }
}

fn ping(agent: &Agent, base: &str) -> std::result::Result<Response, ureq::Error> {
    explain!(format!("GET {base}/v2/ (ping: is it a registry, and how does it authenticate?)"); format!("curl -si {base}/v2/"));
    agent.get(format!("{base}/v2/")).call()
}

fn challenge_of(base: &str, resp: Response) -> Result<Challenge> {
    let status = resp.status();
    let url = format!("{base}/v2/");
    if status.is_success() {
        drain(resp);
        return Ok(Challenge::Anonymous);
    }
    if status == StatusCode::UNAUTHORIZED {
        let c = best_challenge(&resp);
        drain(resp);
        return c.ok_or_else(|| {
            Error::Unsupported(format!("{url} asks for authentication (401) without a Basic or Bearer challenge ci understands"))
        });
    }
    Err(Error::io("GET", &url, io::Error::other(format!("answered {status}; this does not look like an OCI/docker registry (v2 API)"))))
}

/// The strongest challenge among the `WWW-Authenticate` headers (Bearer over Basic).
fn best_challenge(resp: &Response) -> Option<Challenge> {
    let mut best: Option<Challenge> = None;
    for v in resp.headers().get_all("www-authenticate") {
        if let Some(c) = v.to_str().ok().and_then(auth::parse_challenge) {
            if best.as_ref().is_none_or(|b| challenge_kind(&c) > challenge_kind(b)) {
                best = Some(c);
            }
        }
    }
    best
}

fn method_op(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "HTTP request",
    }
}

/// The TLS error behind a failed request, if that is what failed (ureq
/// reports handshake errors either directly or inside an I/O error).
fn tls_error(e: &ureq::Error) -> Option<&rustls::Error> {
    match e {
        ureq::Error::Rustls(r) => Some(r),
        ureq::Error::Io(io) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        _ => None,
    }
}

/// Whether a connection failed because the server's certificate is not trusted.
pub(crate) fn is_certificate_error(e: &ureq::Error) -> bool {
    matches!(tls_error(e), Some(rustls::Error::InvalidCertificate(_)) | Some(rustls::Error::NoCertificatesPresented))
}

/// Whether HTTPS failed because the server speaks something else (plain
/// HTTP): a TLS protocol error, or a server that hangs up on the handshake.
/// Not a refused connection, a timeout or an untrusted certificate.
fn is_not_tls(e: &ureq::Error) -> bool {
    if is_certificate_error(e) {
        return false;
    }
    tls_error(e).is_some()
        || matches!(e, ureq::Error::Protocol(_))
        || matches!(e, ureq::Error::Io(io) if matches!(io.kind(),
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::InvalidData | io::ErrorKind::BrokenPipe))
}

/// A transport error as a one-line cause ("connection refused", "certificate ...").
pub fn net_error(op: &'static str, url: &str, e: ureq::Error) -> Error {
    let msg = match &e {
        ureq::Error::Io(io) if io.kind() == io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::HostNotFound => "host not found (DNS)".to_string(),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        _ if is_certificate_error(&e) => format!("TLS certificate not trusted: {}", tls_error(&e).map(|r| r.to_string()).unwrap_or_default()),
        _ if tls_error(&e).is_some() => format!("TLS: {}", tls_error(&e).map(|r| r.to_string()).unwrap_or_default()),
        other => other.to_string(),
    };
    Error::io(op, url, io::Error::other(msg))
}

/// A header as a string.
pub fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// Read (and discard) the rest of a response so its connection goes back to the pool.
pub fn drain(mut resp: Response) {
    let _ = io::copy(&mut resp.body_mut().as_reader().take(MAX_ERROR_BODY), &mut io::sink());
}

/// Read a whole (small) body, refusing more than `limit` bytes.
pub fn read_limited(resp: &mut Response, limit: u64, url: &str) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    resp.body_mut()
        .as_reader()
        .take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::io("read the answer of", url, e))?;
    if data.len() as u64 > limit {
        return Err(Error::Corrupt(format!("{url}: the answer is larger than the limit of {limit} bytes")));
    }
    Ok(data)
}

/// Turn an unexpected status into an error that quotes the registry's own message.
pub fn expect(mut resp: Response, ok: &[StatusCode], op: &'static str, url: &str) -> Result<Response> {
    let status = resp.status();
    if ok.contains(&status) {
        return Ok(resp);
    }
    let body = read_limited(&mut resp, MAX_ERROR_BODY, url).unwrap_or_default();
    let detail = registry_message(&body);
    let msg = format!("the registry answered {status}{}", detail.map(|d| format!(": {d}")).unwrap_or_default());
    let e = Error::io(op, url, io::Error::other(msg));
    let host = origin(url).split("://").nth(1).unwrap_or("HOST");
    Err(match status {
        StatusCode::UNAUTHORIZED => e.hint(format!("authentication required: `ci-push login {host}` (or docker login) first")),
        StatusCode::FORBIDDEN => e.hint("your account is not allowed to do this in this repository"),
        _ => e,
    })
}

/// `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}` → `MANIFEST_UNKNOWN: manifest unknown`.
pub fn registry_message(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let errs = v.get("errors")?.as_array()?;
    let parts: Vec<String> = errs
        .iter()
        .take(3)
        .map(|e| {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let message = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
            let mut s = format!("{code}: {message}");
            s.truncate(300);
            s
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// `scheme://authority` of a URL.
pub fn origin(url: &str) -> &str {
    let after = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after..].find(['/', '?', '#']) {
        Some(i) => &url[..after + i],
        None => url,
    }
}

/// Resolve a `Location` against the URL it answered (RFC 3986, the cases registries use).
pub fn resolve(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    if let Some(rest) = location.strip_prefix("//") {
        let scheme = base.split("://").next().unwrap_or("https");
        return format!("{scheme}://{rest}");
    }
    if location.starts_with('/') {
        return format!("{}{location}", origin(base));
    }
    let path_end = base.find('?').unwrap_or(base.len());
    let dir_end = base[..path_end].rfind('/').map(|i| i + 1).unwrap_or(path_end);
    format!("{}{location}", &base[..dir_end.max(origin(base).len())])
}

/// Append `query` (already encoded) to a URL that may already have one.
pub fn with_query(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_locations() {
        let base = "http://127.0.0.1:5000/v2/app/blobs/uploads/";
        assert_eq!(resolve(base, "/v2/app/blobs/uploads/u1?_state=x"), "http://127.0.0.1:5000/v2/app/blobs/uploads/u1?_state=x");
        assert_eq!(resolve(base, "https://s3.example/b?sig=1"), "https://s3.example/b?sig=1");
        assert_eq!(resolve(base, "//cdn.example/b"), "http://cdn.example/b");
        assert_eq!(resolve(base, "u2?x=1"), "http://127.0.0.1:5000/v2/app/blobs/uploads/u2?x=1");
        assert_eq!(origin("http://127.0.0.1:5000/v2/"), "http://127.0.0.1:5000");
        assert_eq!(origin("http://127.0.0.1:5001"), "http://127.0.0.1:5001");
        assert_ne!(origin("http://127.0.0.1:5001/x"), origin("http://127.0.0.1:5000/x"));
        assert_eq!(with_query("http://h/u?_state=a", "digest=sha256:1"), "http://h/u?_state=a&digest=sha256:1");
        assert_eq!(with_query("http://h/u", "digest=sha256:1"), "http://h/u?digest=sha256:1");
    }

    #[test]
    fn docker_hub_names_go_to_its_registry() {
        let r = crate::reference::Reference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(authority(r.domain()), "registry-1.docker.io");
        assert_eq!(r.path(), "library/busybox");
        assert_eq!(authority("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn quotes_registry_errors() {
        let b = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(registry_message(b).unwrap(), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(registry_message(b"<html>"), None);
    }
}
