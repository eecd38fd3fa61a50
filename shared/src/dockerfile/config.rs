//! What metadata instructions do to an image config. One function,
//! [`apply`], is shared by the builder (for each instruction of a stage)
//! and by `ci-build import --change` (for each change).
//!
//! ## Why our own config type
//!
//! An image config's `config` object is the OCI `ImageConfig` (User,
//! ExposedPorts, Env, Entrypoint, Cmd, Volumes, WorkingDir, Labels,
//! StopSignal) plus fields docker adds: `Healthcheck`, `OnBuild`, `Shell`
//! and `ArgsEscaped`. `oci_spec::image::Config` has no place for docker's
//! fields and drops them when it reads a config, so a HEALTHCHECK or an
//! ONBUILD would vanish on the way through. [`ImageConfig`] holds the OCI
//! fields and docker's, and keeps any other field it does not know in
//! [`ImageConfig::other`], so reading a config and writing it back loses
//! nothing. Its maps are ordered (`BTreeMap`), so the JSON it writes — and
//! hence the image id — does not depend on hash order.
//!
//! [`Metadata`] adds the top-level `author` (set by MAINTAINER, as docker
//! does). Read it from and write it into a config document with
//! [`Metadata::from_image_json`] and [`Metadata::store_in`];
//! [`ImageConfig::from_oci`]/[`ImageConfig::to_oci`] convert for code that
//! uses oci-spec's type.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::golang;
use super::instruction::{Command, CommandLine};
use super::scope::StageState;

/// The `config` object of an image config, docker's extensions included.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `80/tcp`, `53/udp`... (a JSON object with empty values on disk).
    #[serde(skip_serializing_if = "Option::is_none", with = "set_as_object")]
    pub exposed_ports: Option<BTreeSet<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", with = "set_as_object")]
    pub volumes: Option<BTreeSet<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Docker's: set by CMD (meaningful on Windows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    /// Docker's: HEALTHCHECK.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// Docker's: ONBUILD triggers, as Dockerfile text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    /// Docker's: SHELL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Every other field, kept as it was.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// Docker's health check, durations in nanoseconds (Go's `time.Duration`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `["CMD", exe, args...]`, `["CMD-SHELL", "command"]` or `["NONE"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Go's `map[string]struct{}` on disk: `{"80/tcp": {}}`.
mod set_as_object {
    use std::collections::{BTreeMap, BTreeSet};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(set: &Option<BTreeSet<String>>, s: S) -> Result<S::Ok, S::Error> {
        let map: Option<BTreeMap<&String, BTreeMap<(), ()>>> =
            set.as_ref().map(|set| set.iter().map(|k| (k, BTreeMap::new())).collect());
        map.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BTreeSet<String>>, D::Error> {
        let map: Option<BTreeMap<String, serde::de::IgnoredAny>> = Option::deserialize(d)?;
        Ok(map.map(|m| m.into_keys().collect()))
    }
}

impl ImageConfig {
    /// From oci-spec's type (which has no docker fields to carry over).
    pub fn from_oci(config: &oci_spec::image::Config) -> ImageConfig {
        let v = serde_json::to_value(config).expect("oci-spec configs serialise");
        serde_json::from_value(v).expect("an OCI config is an ImageConfig")
    }

    /// To oci-spec's type; docker's fields (Healthcheck, OnBuild, Shell,
    /// ArgsEscaped) do not survive this.
    pub fn to_oci(&self) -> Result<oci_spec::image::Config, String> {
        let v = serde_json::to_value(self).expect("ImageConfig serialises");
        serde_json::from_value(v).map_err(|e| format!("config is not a valid OCI image config: {e}"))
    }

    /// The shell for shell-form commands: SHELL's, or `/bin/sh -c`.
    pub fn shell_or_default(&self) -> Vec<String> {
        match &self.shell {
            Some(s) if !s.is_empty() => s.clone(),
            _ => vec!["/bin/sh".to_string(), "-c".to_string()],
        }
    }

    /// Set `NAME=value` in Env, replacing an earlier NAME in place.
    pub fn set_env(&mut self, name: &str, value: &str) {
        let env = self.env.get_or_insert_with(Vec::new);
        let entry = format!("{name}={value}");
        match env.iter_mut().find(|e| e.split('=').next() == Some(name)) {
            Some(e) => *e = entry,
            None => env.push(entry),
        }
    }
}

/// What metadata instructions change: the `config` object and `author`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    /// MAINTAINER's name (the image config's top-level `author`).
    pub author: Option<String>,
    pub config: ImageConfig,
}

impl Metadata {
    /// Read from an image config document (the JSON of the config blob).
    pub fn from_image_json(doc: &Value) -> Result<Metadata, String> {
        let config = match doc.get("config") {
            None | Some(Value::Null) => ImageConfig::default(),
            Some(c) => serde_json::from_value(c.clone()).map_err(|e| format!("the image config's \"config\" is malformed: {e}"))?,
        };
        let author = doc.get("author").and_then(Value::as_str).map(str::to_string);
        Ok(Metadata { author, config })
    }

    /// Write into an image config document, replacing `config` and `author`.
    pub fn store_in(&self, doc: &mut Value) {
        let Some(obj) = doc.as_object_mut() else { return };
        obj.insert("config".into(), serde_json::to_value(&self.config).expect("ImageConfig serialises"));
        match &self.author {
            Some(a) => obj.insert("author".into(), Value::String(a.clone())),
            None => obj.remove("author"),
        };
    }
}

/// Apply one instruction that does not touch the filesystem — every
/// instruction but FROM, RUN, COPY and ADD — to `meta`, after substituting
/// variables from `state` where docker does. ARG changes only `state`;
/// ENV changes both. Following docker:
///
/// - CMD and ENTRYPOINT in shell form become `SHELL + [command]` (SHELL
///   defaults to `["/bin/sh", "-c"]`); `ENTRYPOINT []` removes the entrypoint.
/// - ENTRYPOINT clears the CMD inherited from the base image unless a CMD
///   came earlier in this stage (`state.cmd_set`, set by CMD).
/// - WORKDIR is relative to the previous working directory.
/// - EXPOSE accepts `80`, `80/tcp`, `53/udp`, `8000-8002` (one port each).
/// - MAINTAINER sets `author`; ONBUILD appends its text to `OnBuild`.
pub fn apply(meta: &mut Metadata, command: &Command, state: &mut StageState) -> Result<(), String> {
    if let Command::Arg(decls) = command {
        return state.declare_args(decls);
    }
    let command = command.expand(&state.lexer(), &state.vars())?;
    let config = &mut meta.config;
    match command {
        Command::Env(pairs) => {
            for (name, value) in pairs {
                config.set_env(&name, &value);
                state.set_env(&name, &value);
            }
        }
        Command::Label(pairs) => config.labels.get_or_insert_with(BTreeMap::new).extend(pairs),
        Command::Cmd(cl) => {
            config.cmd = Some(with_shell(config, cl));
            config.args_escaped = Some(true);
            state.cmd_set = true;
        }
        Command::Entrypoint(cl) => {
            config.entrypoint = match cl {
                CommandLine::Exec(args) if args.is_empty() => None,
                cl => Some(with_shell(config, cl)),
            };
            if !state.cmd_set {
                config.cmd = None;
            }
        }
        Command::Shell(shell) => config.shell = Some(shell),
        Command::Workdir(path) => {
            config.working_dir = Some(if path.starts_with('/') {
                path
            } else {
                golang::join_path(&["/", config.working_dir.as_deref().unwrap_or(""), &path])
            })
        }
        Command::User(user) => config.user = Some(user),
        Command::Expose(specs) => {
            let ports = config.exposed_ports.get_or_insert_with(BTreeSet::new);
            for spec in specs {
                ports.extend(parse_port_spec(&spec)?);
            }
        }
        Command::Volume(volumes) => {
            let set = config.volumes.get_or_insert_with(BTreeSet::new);
            for v in volumes {
                if v.is_empty() {
                    return Err("VOLUME: a volume path cannot be an empty string".into());
                }
                set.insert(v);
            }
        }
        Command::StopSignal(signal) => {
            check_signal(&signal)?;
            config.stop_signal = Some(signal);
        }
        Command::Healthcheck(health) => config.healthcheck = Some(health),
        Command::Onbuild(onbuild) => config.on_build.get_or_insert_with(Vec::new).push(onbuild.expression),
        Command::Maintainer(name) => meta.author = Some(name),
        other => {
            return Err(format!("{} changes the filesystem, not just the config: the builder runs it", other.keyword()))
        }
    }
    Ok(())
}

/// Exec form as is; shell form run by the configured shell.
fn with_shell(config: &ImageConfig, cl: CommandLine) -> Vec<String> {
    match cl {
        CommandLine::Exec(args) => args,
        CommandLine::Shell(command) => {
            let mut args = config.shell_or_default();
            args.push(command);
            args
        }
    }
}

/// The container ports an EXPOSE argument names, as `port/proto`: docker's
/// port spec `[[ip:]hostPort:]containerPort[-end][/tcp|udp|sctp]`.
pub fn parse_port_spec(spec: &str) -> Result<Vec<String>, String> {
    let bad = |why: &str| format!("EXPOSE {spec}: {why} (expected PORT, PORT/tcp, PORT/udp or FIRST-LAST)");
    let parts: Vec<&str> = spec.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => ("", "", *c),
        [h, c] => ("", *h, *c),
        [ip, h, c] => (*ip, *h, *c),
        [.., h, c] => (&spec[..spec.len() - h.len() - c.len() - 2], *h, *c),
        [] => unreachable!("split gives at least one part"),
    };
    let ip = ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')).unwrap_or(ip);
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(bad(&format!("{ip:?} is not an IP address")));
    }
    let (port, proto) = match container.split_once('/') {
        Some((p, "")) => (p, "tcp"),
        Some((p, proto)) => (p, proto),
        None => (container, "tcp"),
    };
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad(&format!("unknown protocol {proto:?}")));
    }
    if port.is_empty() {
        return Err(bad("no port"));
    }
    let (first, last) = port_range(port).ok_or_else(|| bad(&format!("{port:?} is not a port or range of ports 0-65535")))?;
    if !host.is_empty() {
        let (hf, hl) = port_range(host).ok_or_else(|| bad(&format!("{host:?} is not a host port")))?;
        // A host range with a single container port is a pool to pick from.
        if hl - hf != last - first && last != first {
            return Err(bad("the host and container port ranges differ in size"));
        }
    }
    Ok((first..=last).map(|p| format!("{p}/{proto}")).collect())
}

/// `80` or `8000-8010`.
fn port_range(s: &str) -> Option<(u32, u32)> {
    let parse = |p: &str| p.parse::<u16>().ok().map(u32::from);
    let (first, last) = match s.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(s)?, parse(s)?),
    };
    (first <= last).then_some((first, last))
}

/// Signal names docker accepts on Linux (without the SIG prefix).
const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE", "POLL",
    "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1",
    "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
];

/// STOPSIGNAL: a signal number (not 0) or a name, with or without `SIG`
/// (`SIGTERM`, `term`, `SIGRTMIN+3`), as docker's `signal.ParseSignal`.
pub fn check_signal(s: &str) -> Result<(), String> {
    let bad = || format!("STOPSIGNAL {s}: not a signal (use a name like SIGTERM or SIGQUIT, or a number)");
    if let Ok(n) = s.parse::<i64>() {
        return if n == 0 || i32::try_from(n).is_err() { Err(bad()) } else { Ok(()) };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let ok = SIGNALS.contains(&name)
        || name.strip_prefix("RTMIN+").and_then(|n| n.parse::<u8>().ok()).is_some_and(|n| (1..=15).contains(&n))
        || name.strip_prefix("RTMAX-").and_then(|n| n.parse::<u8>().ok()).is_some_and(|n| (1..=14).contains(&n));
    if ok {
        Ok(())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse_line;

    fn run(lines: &[&str]) -> Result<Metadata, String> {
        let mut meta = Metadata::default();
        let mut state = StageState::for_config(&meta.config);
        for l in lines {
            apply(&mut meta, &parse_line(l)?.command, &mut state)?;
        }
        Ok(meta)
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port_spec("80").unwrap(), ["80/tcp"]);
        assert_eq!(parse_port_spec("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(parse_port_spec("8000-8002").unwrap(), ["8000/tcp", "8001/tcp", "8002/tcp"]);
        assert_eq!(parse_port_spec("127.0.0.1:8080:80/tcp").unwrap(), ["80/tcp"]);
        for bad in ["", "http", "80/icmp", "70000", "9-1", "1.2.3:80:80", "80/"] {
            if bad == "80/" {
                assert_eq!(parse_port_spec(bad).unwrap(), ["80/tcp"]);
                continue;
            }
            assert!(parse_port_spec(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn signals() {
        for ok in ["SIGTERM", "term", "9", "SIGRTMIN+3", "RTMAX-1"] {
            assert!(check_signal(ok).is_ok(), "{ok}");
        }
        for bad in ["0", "SIGFOO", "RTMIN+16", ""] {
            assert!(check_signal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cmd_entrypoint_and_shell() {
        let m = run(&["CMD echo hi"]).unwrap();
        assert_eq!(m.config.cmd.unwrap(), ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(m.config.args_escaped, Some(true));
        let m = run(&["SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]", "ENTRYPOINT exec app"]).unwrap();
        assert_eq!(m.config.entrypoint.unwrap(), ["/bin/bash", "-o", "pipefail", "-c", "exec app"]);
        assert_eq!(m.config.shell.unwrap().len(), 4);
        let m = run(&["ENTRYPOINT [\"a\"]", "ENTRYPOINT []"]).unwrap();
        assert_eq!(m.config.entrypoint, None);
    }

    #[test]
    fn entrypoint_clears_inherited_cmd_only() {
        let mut meta = Metadata::default();
        meta.config.cmd = Some(vec!["sh".into()]);
        let mut state = StageState::for_config(&meta.config);
        apply(&mut meta, &parse_line("ENTRYPOINT [\"/app\"]").unwrap().command, &mut state).unwrap();
        assert_eq!(meta.config.cmd, None, "the base image's CMD is dropped");
        let m = run(&["CMD [\"--help\"]", "ENTRYPOINT [\"/app\"]"]).unwrap();
        assert_eq!(m.config.cmd.unwrap(), ["--help"], "a CMD of this stage is kept");
    }

    #[test]
    fn env_workdir_and_expansion() {
        let m = run(&["ENV A=1 B=2", "ENV A=3 C=$A", "WORKDIR /srv", "WORKDIR app/$C", "WORKDIR ../x", "USER ${USER:-nobody}"]).unwrap();
        assert_eq!(m.config.env.unwrap(), ["A=3", "B=2", "C=1"], "C sees A before this ENV line");
        assert_eq!(m.config.working_dir.unwrap(), "/srv/app/x");
        assert_eq!(m.config.user.unwrap(), "nobody");
    }

    #[test]
    fn the_rest() {
        let m = run(&[
            "LABEL a=1 \"b c\"=\"2 3\"",
            "LABEL a=4",
            "EXPOSE 80 53/udp 8000-8001",
            "VOLUME /data [\"/not-json\"]",
            "VOLUME [\"/logs\", \"/cache\"]",
            "STOPSIGNAL SIGQUIT",
            "HEALTHCHECK --interval=30s --timeout=3s CMD wget -q localhost",
            "ONBUILD COPY . /src",
            "MAINTAINER Jo <jo@example.com>",
        ])
        .unwrap();
        let c = &m.config;
        assert_eq!(c.labels.as_ref().unwrap()["a"], "4");
        assert_eq!(c.labels.as_ref().unwrap()["b c"], "2 3");
        assert_eq!(c.exposed_ports.as_ref().unwrap().len(), 4);
        assert!(c.volumes.as_ref().unwrap().contains("/cache"));
        assert!(c.volumes.as_ref().unwrap().contains("[/not-json]"), "not JSON: words, quotes removed by expansion");
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
        let h = c.healthcheck.as_ref().unwrap();
        assert_eq!((h.test[0].as_str(), h.interval, h.timeout), ("CMD-SHELL", 30_000_000_000, 3_000_000_000));
        assert_eq!(c.on_build.as_ref().unwrap(), &["COPY . /src"]);
        assert_eq!(m.author.as_deref(), Some("Jo <jo@example.com>"));
        assert!(run(&["STOPSIGNAL SIGNOPE"]).is_err());
        assert!(run(&["RUN true"]).unwrap_err().contains("the builder runs it"));
    }

    #[test]
    fn docker_fields_round_trip() {
        let doc = serde_json::json!({
            "architecture": "amd64",
            "author": "someone",
            "config": {
                "Env": ["PATH=/bin"],
                "Cmd": null,
                "ExposedPorts": {"80/tcp": {}},
                "Volumes": {"/data": {}},
                "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 30000000000i64, "Retries": 3},
                "OnBuild": ["RUN make"],
                "Shell": ["/bin/bash", "-c"],
                "ArgsEscaped": true,
                "Domainname": "",
                "Image": "sha256:abc"
            }
        });
        let meta = Metadata::from_image_json(&doc).unwrap();
        assert_eq!(meta.config.healthcheck.as_ref().unwrap().retries, 3);
        assert_eq!(meta.config.other.len(), 2, "unknown fields are kept");
        let mut out = serde_json::json!({"architecture": "amd64"});
        meta.store_in(&mut out);
        let mut expected = doc.clone();
        expected["config"].as_object_mut().unwrap().remove("Cmd"); // null is the same as absent
        assert_eq!(out, expected);
        let again = Metadata::from_image_json(&out).unwrap();
        assert_eq!(again, meta);
        // oci-spec's type keeps the OCI part.
        let oci = meta.config.to_oci().unwrap();
        assert_eq!(oci.exposed_ports().as_ref().unwrap(), &["80/tcp".to_string()]);
        assert_eq!(ImageConfig::from_oci(&oci).healthcheck, None);
    }
}
