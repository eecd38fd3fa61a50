//! Registry authentication, as the distribution spec and docker do it.
//!
//! `GET /v2/` answers 200 (anonymous access) or 401 with a challenge:
//!
//! ```text
//! WWW-Authenticate: Basic realm="Registry Realm"
//! WWW-Authenticate: Bearer realm="https://auth.example/token",service="registry.example",scope="repository:app:pull"
//! ```
//!
//! Basic sends the credentials with every request. Bearer trades them (or
//! nothing, for anonymous pulls) at the realm for a short-lived token that
//! grants a *scope* — `repository:NAME:pull`, `repository:NAME:pull,push` —
//! and sends `Authorization: Bearer TOKEN`. Tokens are cached per scope for
//! their lifetime, so a push of many blobs asks the realm once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::credentials::Credentials;

/// How a registry wants to be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// No authentication (the ping answered 200).
    Anonymous,
    Basic,
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

/// Parse a `WWW-Authenticate` header value (one challenge: `Scheme k="v",k=v`).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
    let params = parse_params(rest);
    let get = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer { realm: get("realm")?, service: get("service"), scope: get("scope") })
    } else {
        None
    }
}

/// `k="v", k2=v2` with backslash escapes inside quotes.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            continue;
        }
        chars.next();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n)
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
    out
}

/// The scope of a repository for reading.
pub fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

/// The scope of a repository for writing (a push also reads: HEAD of blobs).
pub fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

/// `Authorization: Basic base64(user:password)`.
pub fn basic_header(c: &Credentials) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.secret)))
}

struct Token {
    value: String,
    expires: Instant,
}

/// The authentication state of one registry: its challenge, the user's
/// credentials for it, and the tokens obtained so far.
pub struct Auth {
    challenge: Mutex<Challenge>,
    pub creds: Option<Credentials>,
    tokens: Mutex<HashMap<String, Token>>,
    /// How many tokens were fetched (the tests check the cache works).
    pub token_fetches: AtomicUsize,
}

/// Tokens without `expires_in` live 60 s (the token spec's default); renew a little early.
const DEFAULT_TOKEN_LIFETIME: u64 = 60;
const RENEW_MARGIN: Duration = Duration::from_secs(10);

impl Auth {
    pub fn new(challenge: Challenge, creds: Option<Credentials>) -> Auth {
        Auth { challenge: Mutex::new(challenge), creds, tokens: Mutex::new(HashMap::new()), token_fetches: AtomicUsize::new(0) }
    }

    pub fn challenge(&self) -> Challenge {
        self.challenge.lock().expect("auth lock").clone()
    }

    pub fn set_challenge(&self, c: Challenge) {
        *self.challenge.lock().expect("auth lock") = c;
    }

    /// A cached, still valid token for this set of scopes.
    pub fn cached_token(&self, key: &str) -> Option<String> {
        let tokens = self.tokens.lock().expect("token cache lock");
        tokens.get(key).filter(|t| t.expires > Instant::now() + RENEW_MARGIN).map(|t| t.value.clone())
    }

    pub fn remember_token(&self, key: &str, value: String, expires_in: Option<u64>) {
        let life = Duration::from_secs(expires_in.filter(|s| *s > 0).unwrap_or(DEFAULT_TOKEN_LIFETIME));
        self.tokens.lock().expect("token cache lock").insert(key.to_string(), Token { value, expires: Instant::now() + life });
        self.token_fetches.fetch_add(1, Ordering::Relaxed);
    }

    pub fn forget_token(&self, key: &str) {
        self.tokens.lock().expect("token cache lock").remove(key);
    }
}

/// The JSON a token endpoint answers (`token` or the OAuth2 `access_token`).
#[derive(serde::Deserialize)]
pub struct TokenReply {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// Percent-encode a query value (scopes hold `:` and `,`; realms may hold anything).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:,/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        assert_eq!(parse_challenge("Basic realm=\"Registry Realm\""), Some(Challenge::Basic));
        assert_eq!(
            parse_challenge(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge("bearer realm=http://127.0.0.1:1/t , error=\"insufficient_scope\""),
            Some(Challenge::Bearer { realm: "http://127.0.0.1:1/t".into(), service: None, scope: None })
        );
        assert_eq!(parse_challenge("Bearer service=x"), None, "a Bearer challenge needs a realm");
        assert_eq!(parse_challenge("Negotiate abc"), None);
    }

    #[test]
    fn tokens_are_cached_per_scope() {
        let a = Auth::new(Challenge::Anonymous, None);
        a.remember_token("repository:a:pull", "t1".into(), Some(300));
        assert_eq!(a.cached_token("repository:a:pull").as_deref(), Some("t1"));
        assert_eq!(a.cached_token("repository:a:pull,push"), None);
        a.remember_token("repository:b:pull", "t2".into(), Some(1));
        assert_eq!(a.cached_token("repository:b:pull"), None, "a token about to expire is renewed");
    }

    #[test]
    fn escapes_query_values() {
        assert_eq!(query_escape("repository:a/b:pull,push"), "repository:a/b:pull,push");
        assert_eq!(query_escape("a b&c"), "a%20b%26c");
    }
}
