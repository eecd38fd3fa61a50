//! Typed instructions: what each Dockerfile instruction means, checked.
//!
//! A [`Node`] only says how the words were cut; [`Instruction::from_node`]
//! turns it into a [`Command`] with named fields, rejecting what docker
//! rejects (wrong number of arguments, unknown or repeated flags, SHELL not
//! in JSON form...). Arguments are kept as written: variable substitution
//! happens later, stage by stage, in [`Command::expand`], because the
//! values of variables are only known while building.

use super::config::HealthConfig;
use super::golang::parse_duration;
use super::heredoc::{parse_opener, Heredoc};
use super::node::Node;
use super::shell::{Lexer, Vars};

/// Every instruction docker knows, in upper case.
pub const INSTRUCTIONS: &[&str] = &[
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL", "MAINTAINER",
    "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
];

/// One instruction and where it is in the Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    pub command: Command,
    /// First and last line (1-based).
    pub line: usize,
    pub end_line: usize,
    /// The instruction as written (continuations joined), for history and messages.
    pub source: String,
}

/// What an instruction does, with its arguments as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `FROM [--platform=P] IMAGE [AS NAME]`: start a stage.
    From(From),
    /// `ARG NAME[=default] ...`: declare build arguments.
    Arg(Vec<ArgDecl>),
    /// `RUN [--mount=...] [--network=...] command`: run a command in the image.
    Run(Run),
    /// `CMD command`: the default command (or default arguments to ENTRYPOINT).
    Cmd(CommandLine),
    /// `ENTRYPOINT command`: the program a container runs.
    Entrypoint(CommandLine),
    /// `SHELL ["executable", "params"]`: the shell for shell-form commands.
    Shell(Vec<String>),
    /// `ENV NAME=value ...`: environment variables, for the build and in the image.
    Env(Vec<(String, String)>),
    /// `LABEL key=value ...`: image metadata.
    Label(Vec<(String, String)>),
    /// `EXPOSE port[/proto] ...`: ports the container listens on.
    Expose(Vec<String>),
    /// `VOLUME /path ...`: directories that are volumes in containers.
    Volume(Vec<String>),
    /// `USER user[:group]`: the user for RUN, CMD and ENTRYPOINT.
    User(String),
    /// `WORKDIR /path`: the working directory (relative to the previous one).
    Workdir(String),
    /// `STOPSIGNAL signal`: the signal that stops a container.
    StopSignal(String),
    /// `HEALTHCHECK [options] CMD command` or `HEALTHCHECK NONE`.
    Healthcheck(HealthConfig),
    /// `ONBUILD INSTRUCTION`: an instruction to run when the image is a base.
    Onbuild(Onbuild),
    /// `MAINTAINER name`: the image author (deprecated in favour of a label).
    Maintainer(String),
    /// `COPY [--from=...] SRC... DEST`: files from the context or another image.
    Copy(Copy),
    /// `ADD SRC... DEST`: like COPY, plus URLs, git and local tar extraction.
    Add(Add),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// The base: an image reference, a stage name or `scratch` (may use global ARGs).
    pub image: String,
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    pub platform: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    /// The default after `=`, as written (quotes not yet removed).
    pub default: Option<String>,
}

/// A command in exec form (`["a", "b"]`, run as is) or shell form (a
/// string, run by the SHELL, `/bin/sh -c` by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    Exec(Vec<String>),
    Shell(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub command: CommandLine,
    /// Heredocs opened on the RUN line (`RUN <<EOF`), with their content.
    pub heredocs: Vec<Heredoc>,
    /// `--mount=type=...,target=...` options, one string per flag.
    pub mounts: Vec<String>,
    /// `--network=default|none|host`.
    pub network: Option<String>,
    /// `--security=sandbox|insecure`.
    pub security: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Onbuild {
    /// The instruction to run later, parsed and checked now.
    pub trigger: Box<Instruction>,
    /// Its text, as stored in the image config's `OnBuild` list.
    pub expression: String,
}

/// A file whose content is written in the Dockerfile (`COPY <<EOF /dest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    /// The file name (the heredoc's word).
    pub name: String,
    /// The content, with `<<-` tabs already removed.
    pub data: String,
    /// Whether `$VAR`s in `data` are substituted (the word was not quoted).
    pub expand: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Copy {
    pub sources: Vec<String>,
    pub inline: Vec<InlineFile>,
    pub dest: String,
    /// `--from=stage|image|index`.
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Add {
    pub sources: Vec<String>,
    pub inline: Vec<InlineFile>,
    pub dest: String,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub keep_git_dir: bool,
    /// `--checksum=sha256:...` for a URL source.
    pub checksum: Option<String>,
    pub unpack: Option<bool>,
    pub exclude: Vec<String>,
}

impl Command {
    /// The instruction's keyword, upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            Command::From(_) => "FROM",
            Command::Arg(_) => "ARG",
            Command::Run(_) => "RUN",
            Command::Cmd(_) => "CMD",
            Command::Entrypoint(_) => "ENTRYPOINT",
            Command::Shell(_) => "SHELL",
            Command::Env(_) => "ENV",
            Command::Label(_) => "LABEL",
            Command::Expose(_) => "EXPOSE",
            Command::Volume(_) => "VOLUME",
            Command::User(_) => "USER",
            Command::Workdir(_) => "WORKDIR",
            Command::StopSignal(_) => "STOPSIGNAL",
            Command::Healthcheck(_) => "HEALTHCHECK",
            Command::Onbuild(_) => "ONBUILD",
            Command::Maintainer(_) => "MAINTAINER",
            Command::Copy(_) => "COPY",
            Command::Add(_) => "ADD",
        }
    }

    /// Whether the instruction only changes the image config (no layer):
    /// everything but FROM, ARG, RUN, COPY and ADD.
    pub fn is_metadata(&self) -> bool {
        !matches!(self, Command::From(_) | Command::Arg(_) | Command::Run(_) | Command::Copy(_) | Command::Add(_))
    }

    /// Substitute variables where docker does, and only there: in ENV and
    /// LABEL (names and values), COPY and ADD (sources,
    /// destination, `--chown`, `--chmod`, `--from`, `--checksum`,
    /// `--exclude`, and unquoted heredoc bodies), WORKDIR, USER, VOLUME,
    /// STOPSIGNAL, EXPOSE (which also splits words) and RUN `--mount`
    /// options. RUN, CMD, ENTRYPOINT, SHELL and HEALTHCHECK commands are left
    /// for the shell at run time; ONBUILD and MAINTAINER are kept as written.
    /// ARG defaults are expanded as they are declared and FROM with the
    /// global ARGs: both are in `scope.rs`.
    pub fn expand(&self, lex: &Lexer, vars: &dyn Vars) -> Result<Command, String> {
        let word = |s: &str| lex.process_word(s, vars);
        let opt = |s: &Option<String>| s.as_deref().map(word).transpose();
        let all = |v: &[String]| v.iter().map(|s| word(s)).collect::<Result<Vec<_>, _>>();
        let pairs = |v: &[(String, String)]| {
            v.iter().map(|(k, val)| Ok((word(k)?, word(val)?))).collect::<Result<Vec<_>, String>>()
        };
        // Heredoc bodies are scripts: quotes in them are not Dockerfile quotes.
        let body_lex = Lexer { skip_quotes: true, ..Lexer::new('\\') };
        let inline = |files: &[InlineFile]| {
            files
                .iter()
                .map(|f| {
                    let data = if f.expand { body_lex.process_word(&f.data, vars)? } else { f.data.clone() };
                    Ok(InlineFile { data, ..f.clone() })
                })
                .collect::<Result<Vec<_>, String>>()
        };
        Ok(match self {
            Command::Env(kv) => Command::Env(pairs(kv)?),
            Command::Label(kv) => Command::Label(pairs(kv)?),
            Command::Copy(c) => Command::Copy(Copy {
                sources: all(&c.sources)?,
                inline: inline(&c.inline)?,
                dest: word(&c.dest)?,
                from: opt(&c.from)?,
                chown: opt(&c.chown)?,
                chmod: opt(&c.chmod)?,
                exclude: all(&c.exclude)?,
                ..c.clone()
            }),
            Command::Add(a) => Command::Add(Add {
                sources: all(&a.sources)?,
                inline: inline(&a.inline)?,
                dest: word(&a.dest)?,
                chown: opt(&a.chown)?,
                chmod: opt(&a.chmod)?,
                checksum: opt(&a.checksum)?,
                exclude: all(&a.exclude)?,
                ..a.clone()
            }),
            Command::Workdir(p) => Command::Workdir(word(p)?),
            Command::User(u) => Command::User(word(u)?),
            Command::StopSignal(s) => Command::StopSignal(word(s)?),
            Command::Volume(v) => Command::Volume(all(v)?),
            Command::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    out.extend(lex.process_words(p, vars)?);
                }
                Command::Expose(out)
            }
            Command::Run(r) => Command::Run(Run { mounts: all(&r.mounts)?, ..r.clone() }),
            other => other.clone(),
        })
    }
}

impl Instruction {
    /// Check a parsed node and give it its meaning. Errors say what was
    /// expected; the caller adds the file and line.
    pub fn from_node(node: &Node) -> Result<Instruction, String> {
        let keyword = node.keyword.to_ascii_uppercase();
        let args = &node.args;
        let command = match keyword.as_str() {
            "FROM" => {
                let f = Flags::parse(node, &[("platform", Kind::Value)])?;
                let (image, name) = match args.as_slice() {
                    [image] => (image.clone(), None),
                    [image, as_, name] if as_.eq_ignore_ascii_case("as") => (image.clone(), Some(stage_name(name)?)),
                    [] => return Err("FROM needs an image: FROM IMAGE [AS NAME]".into()),
                    _ => return Err(format!("FROM takes an image and optionally AS NAME, not {:?}", args.join(" "))),
                };
                Command::From(From { image, name, platform: f.value("platform") })
            }
            "ARG" => {
                Flags::none(node)?;
                if args.is_empty() {
                    return Err("ARG needs a name: ARG NAME[=default]".into());
                }
                let decls = args
                    .iter()
                    .map(|a| match a.split_once('=') {
                        Some(("", _)) => Err(format!("ARG {a}: the name before '=' is empty")),
                        Some((name, value)) => Ok(ArgDecl { name: name.into(), default: Some(value.into()) }),
                        None => Ok(ArgDecl { name: a.clone(), default: None }),
                    })
                    .collect::<Result<_, _>>()?;
                Command::Arg(decls)
            }
            "RUN" => {
                let f = Flags::parse(
                    node,
                    &[("mount", Kind::Values), ("network", Kind::Value), ("security", Kind::Value)],
                )?;
                if args.is_empty() {
                    return Err("RUN needs a command: RUN command, or RUN [\"executable\", \"arg\"]".into());
                }
                let network = f.value("network");
                if let Some(n) = network.as_deref().filter(|n| !matches!(*n, "default" | "none" | "host")) {
                    return Err(format!("RUN --network={n}: expected default, none or host"));
                }
                let security = f.value("security");
                if let Some(s) = security.as_deref().filter(|s| !matches!(*s, "sandbox" | "insecure")) {
                    return Err(format!("RUN --security={s}: expected sandbox or insecure"));
                }
                Command::Run(Run {
                    command: command_line(node),
                    heredocs: node.heredocs.clone(),
                    mounts: f.values("mount"),
                    network,
                    security,
                })
            }
            "CMD" => {
                Flags::none(node)?;
                Command::Cmd(command_line(node))
            }
            "ENTRYPOINT" => {
                Flags::none(node)?;
                Command::Entrypoint(command_line(node))
            }
            "SHELL" => {
                Flags::none(node)?;
                if !node.json {
                    return Err(format!(
                        "SHELL must be written in JSON form, like SHELL [\"/bin/bash\", \"-c\"], not SHELL {}",
                        args.join(" ")
                    ));
                }
                if args.is_empty() {
                    return Err("SHELL needs at least the shell executable: SHELL [\"/bin/sh\", \"-c\"]".into());
                }
                Command::Shell(args.clone())
            }
            "ENV" | "LABEL" => {
                Flags::none(node)?;
                let pairs = key_value_pairs(args, &keyword)?;
                if keyword == "ENV" {
                    Command::Env(pairs)
                } else {
                    Command::Label(pairs)
                }
            }
            "EXPOSE" => {
                Flags::none(node)?;
                if args.is_empty() {
                    return Err("EXPOSE needs a port: EXPOSE 80, EXPOSE 53/udp, EXPOSE 8000-8010".into());
                }
                let mut ports = args.clone();
                ports.sort();
                Command::Expose(ports)
            }
            "VOLUME" => {
                Flags::none(node)?;
                if args.is_empty() {
                    return Err("VOLUME needs a path: VOLUME /data, or VOLUME [\"/data\"]".into());
                }
                let vols: Vec<String> = args.iter().map(|v| v.trim().to_string()).collect();
                if vols.iter().any(String::is_empty) {
                    return Err("VOLUME: a volume path cannot be an empty string".into());
                }
                Command::Volume(vols)
            }
            "USER" => Command::User(one_argument(node, "USER user[:group]")?),
            "WORKDIR" => Command::Workdir(one_argument(node, "WORKDIR /path")?),
            "STOPSIGNAL" => Command::StopSignal(one_argument(node, "STOPSIGNAL SIGTERM")?),
            "MAINTAINER" => Command::Maintainer(one_argument(node, "MAINTAINER name")?),
            "HEALTHCHECK" => Command::Healthcheck(healthcheck(node)?),
            "ONBUILD" => Command::Onbuild(onbuild(node)?),
            "COPY" => {
                let f = Flags::parse(
                    node,
                    &[
                        ("from", Kind::Value),
                        ("chown", Kind::Value),
                        ("chmod", Kind::Value),
                        ("link", Kind::Bool),
                        ("parents", Kind::Bool),
                        ("exclude", Kind::Values),
                    ],
                )?;
                let (sources, inline, dest) = sources_and_dest(node, "COPY")?;
                Command::Copy(Copy {
                    sources,
                    inline,
                    dest,
                    from: f.value("from"),
                    chown: f.value("chown"),
                    chmod: f.value("chmod"),
                    link: f.bool("link").unwrap_or(false),
                    parents: f.bool("parents").unwrap_or(false),
                    exclude: f.values("exclude"),
                })
            }
            "ADD" => {
                let f = Flags::parse(
                    node,
                    &[
                        ("chown", Kind::Value),
                        ("chmod", Kind::Value),
                        ("link", Kind::Bool),
                        ("keep-git-dir", Kind::Bool),
                        ("checksum", Kind::Value),
                        ("unpack", Kind::Bool),
                        ("exclude", Kind::Values),
                    ],
                )?;
                let (sources, inline, dest) = sources_and_dest(node, "ADD")?;
                Command::Add(Add {
                    sources,
                    inline,
                    dest,
                    chown: f.value("chown"),
                    chmod: f.value("chmod"),
                    link: f.bool("link").unwrap_or(false),
                    keep_git_dir: f.bool("keep-git-dir").unwrap_or(false),
                    checksum: f.value("checksum"),
                    unpack: f.bool("unpack"),
                    exclude: f.values("exclude"),
                })
            }
            _ => return Err(unknown_instruction(&node.keyword)),
        };
        Ok(Instruction { command, line: node.start_line, end_line: node.end_line, source: node.original.trim().to_string() })
    }
}

/// `unknown instruction "RUNN" — did you mean RUN?`
pub fn unknown_instruction(keyword: &str) -> String {
    let upper = keyword.to_uppercase();
    match closest(&upper, INSTRUCTIONS) {
        Some(s) => format!("unknown instruction {keyword:?} — did you mean {s}?"),
        None => format!("unknown instruction {keyword:?} (instructions are {})", INSTRUCTIONS.join(", ")),
    }
}

/// The candidate nearest to `word` by edit distance, if it is near enough
/// to be a likely typo (at most 2 edits, and fewer than half the word).
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let best = candidates.iter().map(|c| (edit_distance(word, c), *c)).min()?;
    let limit = 2.min(word.chars().count().div_ceil(2));
    (best.0 <= limit && best.0 > 0).then_some(best.1)
}

/// Levenshtein distance (insertions, deletions, substitutions).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A stage name: `^[a-z][a-z0-9-_.]*$` after lower-casing.
fn stage_name(name: &str) -> Result<String, String> {
    let lower = name.to_lowercase();
    let mut chars = lower.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(lower)
    } else {
        Err(format!(
            "invalid name for build stage: {name:?}: a stage name starts with a letter and has only letters, digits, '-', '_' and '.'"
        ))
    }
}

/// Exec form when the node was JSON, else the shell-form string.
fn command_line(node: &Node) -> CommandLine {
    if node.json {
        CommandLine::Exec(node.args.clone())
    } else {
        CommandLine::Shell(node.args.join(" "))
    }
}

fn one_argument(node: &Node, usage: &str) -> Result<String, String> {
    Flags::none(node)?;
    match node.args.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(format!("{} needs exactly one argument: {usage}", node.keyword.to_ascii_uppercase())),
    }
}

/// ENV/LABEL arguments come as (name, value, separator) triples.
fn key_value_pairs(args: &[String], keyword: &str) -> Result<Vec<(String, String)>, String> {
    if args.is_empty() {
        return Err(format!("{keyword} needs at least one name=value pair: {keyword} NAME=value"));
    }
    args.chunks(3)
        .map(|kv| match kv {
            [k, ..] if k.is_empty() => Err(format!("{keyword}: a name before '=' is empty")),
            [k, v, ..] => Ok((k.clone(), v.clone())),
            _ => Err(format!("{keyword}: a name has no value")),
        })
        .collect()
}

/// COPY/ADD: every argument but the last is a source, a heredoc source
/// becomes an inline file; the last is the destination.
fn sources_and_dest(node: &Node, keyword: &str) -> Result<(Vec<String>, Vec<InlineFile>, String), String> {
    let Some((dest, srcs)) = node.args.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Err(format!("{keyword} needs a source and a destination: {keyword} SRC... DEST"));
    };
    let is_heredoc = |w: &str| !node.json && matches!(parse_opener(w), Ok(Some(_)));
    if is_heredoc(dest) {
        return Err(format!("{keyword} cannot take a heredoc as its destination"));
    }
    let mut sources = Vec::new();
    let mut inline = Vec::new();
    for src in srcs {
        match (node.json, parse_opener(src)) {
            (false, Ok(Some(opener))) => {
                let doc = node.heredocs.iter().find(|h| h.name == opener.name);
                let data = doc.map(|d| if opener.chomp { super::heredoc::chomp(&d.content) } else { d.content.clone() });
                inline.push(InlineFile { name: opener.name, data: data.unwrap_or_default(), expand: opener.expand });
            }
            _ => sources.push(src.clone()),
        }
    }
    Ok((sources, inline, dest.clone()))
}

/// The shortest interval docker accepts for health checks.
const MIN_HEALTH_INTERVAL_NS: i64 = 1_000_000;

fn healthcheck(node: &Node) -> Result<HealthConfig, String> {
    let Some(kind) = node.args.first() else {
        return Err("HEALTHCHECK needs CMD command or NONE".into());
    };
    match kind.to_ascii_uppercase().as_str() {
        "NONE" => {
            if node.args.len() > 1 {
                return Err("HEALTHCHECK NONE takes no arguments".into());
            }
            if !node.flags.is_empty() {
                return Err(format!("HEALTHCHECK NONE takes no options (got {})", node.flags.join(" ")));
            }
            Ok(HealthConfig { test: vec!["NONE".into()], ..HealthConfig::default() })
        }
        "CMD" => {
            let f = Flags::parse(
                node,
                &[
                    ("interval", Kind::Value),
                    ("timeout", Kind::Value),
                    ("start-period", Kind::Value),
                    ("start-interval", Kind::Value),
                    ("retries", Kind::Value),
                ],
            )?;
            let command = &node.args[1..];
            if command.is_empty() {
                return Err("HEALTHCHECK CMD needs a command after CMD".into());
            }
            let test = if node.json {
                std::iter::once("CMD".to_string()).chain(command.iter().cloned()).collect()
            } else {
                vec!["CMD-SHELL".to_string(), command.join(" ")]
            };
            let duration = |name: &str| -> Result<i64, String> {
                let Some(v) = f.value(name) else { return Ok(0) };
                let ns = parse_duration(&v).map_err(|e| format!("HEALTHCHECK --{name}: {e}"))?;
                if ns != 0 && ns < MIN_HEALTH_INTERVAL_NS {
                    return Err(format!("HEALTHCHECK --{name}={v}: the interval cannot be less than 1ms"));
                }
                Ok(ns)
            };
            let retries = match f.value("retries") {
                None => 0,
                Some(r) => match r.parse::<i32>() {
                    Ok(n) if n >= 0 => i64::from(n),
                    Ok(_) => return Err(format!("HEALTHCHECK --retries={r}: cannot be negative")),
                    Err(_) => return Err(format!("HEALTHCHECK --retries={r}: not a whole number")),
                },
            };
            Ok(HealthConfig {
                test,
                interval: duration("interval")?,
                timeout: duration("timeout")?,
                start_period: duration("start-period")?,
                start_interval: duration("start-interval")?,
                retries,
            })
        }
        other => Err(format!("HEALTHCHECK type {other:?} is unknown: use HEALTHCHECK CMD command, or HEALTHCHECK NONE")),
    }
}

fn onbuild(node: &Node) -> Result<Onbuild, String> {
    Flags::none(node)?;
    let Some(sub) = &node.sub else {
        return Err("ONBUILD needs an instruction: ONBUILD RUN make".into());
    };
    match sub.keyword.to_ascii_uppercase().as_str() {
        "ONBUILD" => return Err("ONBUILD ONBUILD is not allowed: triggers cannot be chained".into()),
        k @ ("FROM" | "MAINTAINER") => return Err(format!("{k} is not allowed as an ONBUILD trigger")),
        _ => {}
    }
    let mut trigger_node = (**sub).clone();
    trigger_node.heredocs = node.heredocs.clone();
    trigger_node.start_line = node.start_line;
    trigger_node.end_line = node.end_line;
    let trigger = Instruction::from_node(&trigger_node).map_err(|e| format!("ONBUILD {e}"))?;
    // The stored text: the line without the ONBUILD keyword, then each
    // heredoc body and terminator, so it parses again as a Dockerfile line.
    let original = node.original.trim_start();
    let mut expression = original[node.keyword.len()..].trim_start().to_string();
    for h in &node.heredocs {
        expression.push('\n');
        expression.push_str(&h.content);
        expression.push_str(&h.name);
    }
    Ok(Onbuild { trigger: Box::new(trigger), expression })
}

/// How a flag takes its value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `--link`, `--link=true`, `--link=false`.
    Bool,
    /// `--from=x`, once.
    Value,
    /// `--mount=x`, repeatable.
    Values,
}

/// The flags given to one instruction, checked against what it accepts.
struct Flags {
    given: Vec<(String, Option<String>)>,
}

impl Flags {
    /// Instructions that take no flags.
    fn none(node: &Node) -> Result<(), String> {
        Flags::parse(node, &[]).map(|_| ())
    }

    fn parse(node: &Node, accepted: &[(&str, Kind)]) -> Result<Flags, String> {
        let keyword = node.keyword.to_ascii_uppercase();
        let mut given: Vec<(String, Option<String>)> = Vec::new();
        for raw in &node.flags {
            let Some(flag) = raw.strip_prefix("--") else {
                return Err(format!("{keyword}: {raw:?} is not a flag (flags start with --)"));
            };
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            let Some(&(_, kind)) = accepted.iter().find(|(n, _)| *n == name) else {
                return Err(unknown_flag(&keyword, name, accepted));
            };
            if kind != Kind::Values && given.iter().any(|(n, _)| n == name) {
                return Err(format!("{keyword}: --{name} is given twice"));
            }
            let value = match (kind, value) {
                (Kind::Bool, None) => "true".to_string(),
                (Kind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" => "true".to_string(),
                    "false" => "false".to_string(),
                    "" => return Err(format!("{keyword}: --{name}= is missing its value (true or false)")),
                    _ => return Err(format!("{keyword}: --{name}={v}: expected true or false")),
                },
                (_, Some(v)) => v,
                (_, None) => return Err(format!("{keyword}: --{name} needs a value: --{name}=...")),
            };
            given.push((name.to_string(), Some(value)));
        }
        Ok(Flags { given })
    }

    /// A flag's value; `--from=` (empty) counts as not given, as in docker.
    fn value(&self, name: &str) -> Option<String> {
        self.given.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.clone()).filter(|v| !v.is_empty())
    }

    fn values(&self, name: &str) -> Vec<String> {
        self.given.iter().filter(|(n, _)| n == name).filter_map(|(_, v)| v.clone()).collect()
    }

    fn bool(&self, name: &str) -> Option<bool> {
        self.value(name).map(|v| v == "true")
    }
}

fn unknown_flag(keyword: &str, name: &str, accepted: &[(&str, Kind)]) -> String {
    if accepted.is_empty() {
        return format!("{keyword} takes no flags (got --{name})");
    }
    let names: Vec<&str> = accepted.iter().map(|(n, _)| *n).collect();
    let list = names.iter().map(|n| format!("--{n}")).collect::<Vec<_>>().join(", ");
    match closest(name, &names) {
        Some(s) => format!("{keyword} has no flag --{name} — did you mean --{s}? (it takes {list})"),
        None => format!("{keyword} has no flag --{name} (it takes {list})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(line: &str) -> Result<Command, String> {
        let node = Node::from_line(line, '\\')?;
        Instruction::from_node(&node).map(|i| i.command)
    }

    #[test]
    fn suggestions() {
        assert_eq!(unknown_instruction("RUNN"), "unknown instruction \"RUNN\" — did you mean RUN?");
        assert_eq!(unknown_instruction("cmdd"), "unknown instruction \"cmdd\" — did you mean CMD?");
        assert!(unknown_instruction("XYZZY").starts_with("unknown instruction \"XYZZY\" (instructions are ADD,"));
        assert!(ins("COPY --form=a b c").unwrap_err().contains("did you mean --from?"));
    }

    #[test]
    fn from_forms() {
        assert_eq!(
            ins("FROM --platform=linux/amd64 alpine AS Build").unwrap(),
            Command::From(From { image: "alpine".into(), name: Some("build".into()), platform: Some("linux/amd64".into()) })
        );
        assert!(ins("FROM a AS 1x").unwrap_err().contains("invalid name for build stage"));
        assert!(ins("FROM a b").is_err());
    }

    #[test]
    fn flags_are_checked() {
        assert!(ins("COPY --from=a --from=b x y").unwrap_err().contains("given twice"));
        assert!(ins("COPY --link=maybe x y").unwrap_err().contains("expected true or false"));
        assert!(ins("COPY --chown x y").unwrap_err().contains("needs a value"));
        assert!(ins("ENV --x=1 A=1").unwrap_err().contains("ENV takes no flags"));
        let Command::Run(r) = ins("RUN --mount=type=cache,target=/a --mount=type=tmpfs,target=/b --network=none make").unwrap() else {
            panic!()
        };
        assert_eq!(r.mounts.len(), 2);
        assert_eq!(r.network.as_deref(), Some("none"));
        assert!(ins("RUN --network=bridge x").is_err());
    }

    #[test]
    fn healthcheck_forms() {
        let Command::Healthcheck(h) = ins("HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/").unwrap() else {
            panic!()
        };
        assert_eq!(h.test, ["CMD-SHELL", "curl -f http://localhost/"]);
        assert_eq!((h.interval, h.retries), (5_000_000_000, 3));
        let Command::Healthcheck(h) = ins("HEALTHCHECK CMD [\"/bin/check\", \"-q\"]").unwrap() else { panic!() };
        assert_eq!(h.test, ["CMD", "/bin/check", "-q"]);
        let Command::Healthcheck(h) = ins("healthcheck none").unwrap() else { panic!() };
        assert_eq!(h.test, ["NONE"]);
        assert!(ins("HEALTHCHECK --interval=1us CMD x").unwrap_err().contains("less than 1ms"));
        assert!(ins("HEALTHCHECK --retries=-1 CMD x").unwrap_err().contains("negative"));
        assert!(ins("HEALTHCHECK CONNECT TCP 7000").unwrap_err().contains("unknown"));
        assert!(ins("HEALTHCHECK CMD").unwrap_err().contains("needs a command"));
    }

    #[test]
    fn onbuild_keeps_its_text() {
        let Command::Onbuild(o) = ins("ONBUILD   RUN echo \"$HOME\"").unwrap() else { panic!() };
        assert_eq!(o.expression, "RUN echo \"$HOME\"");
        assert!(matches!(o.trigger.command, Command::Run(_)));
        assert!(ins("ONBUILD ONBUILD RUN x").is_err());
        assert!(ins("ONBUILD FROM x").unwrap_err().contains("not allowed"));
        assert!(ins("ONBUILD RUNN x").unwrap_err().contains("did you mean RUN?"));
    }

    #[test]
    fn shell_must_be_json() {
        assert_eq!(ins("SHELL [\"/bin/bash\", \"-c\"]").unwrap(), Command::Shell(vec!["/bin/bash".into(), "-c".into()]));
        assert!(ins("SHELL /bin/bash -c").unwrap_err().contains("JSON form"));
    }

    #[test]
    fn expansion_follows_docker() {
        let vars: std::collections::BTreeMap<String, String> =
            [("V", "1.2"), ("D", "/opt")].into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let lex = Lexer::new('\\');
        let ex = |line: &str| ins(line).unwrap().expand(&lex, &vars).unwrap();
        assert_eq!(ex("ENV A=\"v$V\" B=${D}/x"), Command::Env(vec![("A".into(), "v1.2".into()), ("B".into(), "/opt/x".into())]));
        assert_eq!(ex("WORKDIR $D/app"), Command::Workdir("/opt/app".into()));
        assert_eq!(ex("RUN echo $V"), ins("RUN echo $V").unwrap(), "RUN is left to the shell");
        assert_eq!(ex("CMD echo $V"), Command::Cmd(CommandLine::Shell("echo $V".into())));
        let ports = vec![String::from("80"), "8080/tcp".into()];
        let pvars: std::collections::BTreeMap<String, String> = [("P".to_string(), "80 8080/tcp".to_string())].into();
        assert_eq!(ins("EXPOSE $P").unwrap().expand(&lex, &pvars).unwrap(), Command::Expose(ports));
        let Command::Copy(c) = ex("COPY --chown=$V <<EOF <<'RAW' $D/") else { panic!() };
        assert_eq!((c.dest.as_str(), c.chown.as_deref()), ("/opt/", Some("1.2")));
        assert_eq!(c.inline.len(), 2);
    }
}
