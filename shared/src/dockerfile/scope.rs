//! Where variables come from while a Dockerfile builds: build arguments
//! (ARG) and the environment (ENV), and their scopes.
//!
//! ```dockerfile
//! ARG VERSION=1.0            # global: usable in FROM lines only
//! FROM alpine:$VERSION       # expands to alpine:1.0
//! RUN echo "$VERSION"        # empty: a global ARG is not visible in a stage...
//! ARG VERSION                # ...until redeclared (it takes the global value)
//! ARG USER=app               # a stage ARG, visible from here to the end of the stage
//! ENV HOME=/home/$USER       # ENV is visible here and stays in the image
//! ```
//!
//! - [`GlobalArgs`]: the ARGs before the first FROM. Their defaults may use
//!   earlier global ARGs; `--build-arg NAME=value` overrides a default.
//!   FROM lines (image and `--platform`) are expanded with them.
//! - [`StageState`]: one stage's variables, starting from its base image's
//!   `Env`. ENV and ARG both set variables here, in order (the later
//!   definition of a name wins); only ENV also goes into the image config.
//!   A stage ARG takes its value from `--build-arg`, else its default
//!   (expanded with what is visible at that line), else the global ARG of
//!   the same name.

use std::collections::BTreeMap;

use super::config::ImageConfig;
use super::instruction::{ArgDecl, From};
use super::shell::Lexer;

/// The ARGs declared before the first FROM, with their values.
#[derive(Debug, Clone)]
pub struct GlobalArgs {
    escape: char,
    build_args: BTreeMap<String, String>,
    /// Declared names in order; `None` when declared without a value.
    declared: Vec<(String, Option<String>)>,
}

impl GlobalArgs {
    /// `build_args` are the `--build-arg` values; `automatic` are the
    /// arguments every Dockerfile can use in FROM without declaring them
    /// (see [`platform_args`]).
    pub fn new(escape: char, build_args: &BTreeMap<String, String>, automatic: &BTreeMap<String, String>) -> GlobalArgs {
        GlobalArgs {
            escape,
            build_args: build_args.clone(),
            declared: automatic.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect(),
        }
    }

    /// Declare the ARGs of one global ARG line.
    pub fn declare(&mut self, decls: &[ArgDecl]) -> Result<(), String> {
        for d in decls {
            let value = match (self.build_args.get(&d.name), &d.default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(default)) => Some(Lexer::new(self.escape).process_word(default, &self.vars())?),
                (None, None) => None,
            };
            self.declared.push((d.name.clone(), value));
        }
        Ok(())
    }

    /// The global value of `name`: `None` if not declared, `Some(None)` if
    /// declared without a value.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.declared.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_deref())
    }

    /// The global ARGs that have a value.
    pub fn vars(&self) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        for (name, value) in &self.declared {
            match value {
                Some(v) => vars.insert(name.clone(), v.clone()),
                None => vars.remove(name),
            };
        }
        vars
    }

    /// A FROM line with its image and platform expanded.
    pub fn expand_from(&self, from: &From) -> Result<From, String> {
        let lex = Lexer::new(self.escape);
        let vars = self.vars();
        let image = lex.process_word(&from.image, &vars)?;
        if image.is_empty() {
            return Err(format!(
                "FROM {}: the base image name is empty after substituting ARGs (declare them before the first FROM, or pass --build-arg)",
                from.image
            ));
        }
        let platform = from.platform.as_deref().map(|p| lex.process_word(p, &vars)).transpose()?;
        Ok(From { image, name: from.name.clone(), platform })
    }
}

/// The variables every build defines for FROM lines: the target and build
/// platform (`linux/amd64` and its parts), both this machine's.
pub fn platform_args() -> BTreeMap<String, String> {
    let arch = crate::image::config::host_arch().to_string();
    let platform = format!("linux/{arch}");
    let mut m = BTreeMap::new();
    for side in ["TARGET", "BUILD"] {
        m.insert(format!("{side}PLATFORM"), platform.clone());
        m.insert(format!("{side}OS"), "linux".to_string());
        m.insert(format!("{side}ARCH"), arch.clone());
        m.insert(format!("{side}VARIANT"), String::new());
    }
    m
}

/// One stage's build environment.
#[derive(Debug, Clone)]
pub struct StageState {
    /// The Dockerfile's escape character (for substitutions).
    pub escape: char,
    /// Whether a CMD has been set in this stage (an ENTRYPOINT then keeps it).
    pub cmd_set: bool,
    build_args: BTreeMap<String, String>,
    globals: Option<GlobalArgs>,
    /// Variables for substitutions and RUN: the base image's Env, then each
    /// ENV and valued ARG, a later name replacing an earlier one in place.
    env: Vec<(String, String)>,
    /// The ARGs declared in this stage and their values.
    args: Vec<(String, Option<String>)>,
}

impl StageState {
    /// A stage starting from a base image's config.
    pub fn new(escape: char, base: &ImageConfig, globals: &GlobalArgs, build_args: &BTreeMap<String, String>) -> StageState {
        let mut state = StageState::for_config(base);
        state.escape = escape;
        state.globals = Some(globals.clone());
        state.build_args = build_args.clone();
        state
    }

    /// A state with only a config's Env and no build arguments: what
    /// `import --change` uses.
    pub fn for_config(config: &ImageConfig) -> StageState {
        let env = config
            .env
            .iter()
            .flatten()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e.clone(), String::new()),
            })
            .collect();
        StageState { escape: '\\', cmd_set: false, build_args: BTreeMap::new(), globals: None, env, args: Vec::new() }
    }

    /// The lexer for this Dockerfile's substitutions.
    pub fn lexer(&self) -> Lexer {
        Lexer::new(self.escape)
    }

    /// The variables visible now.
    pub fn vars(&self) -> BTreeMap<String, String> {
        self.env.iter().cloned().collect()
    }

    /// The environment for a RUN, as `NAME=value`.
    pub fn env(&self) -> Vec<String> {
        self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// The ARGs declared so far in this stage, with their values.
    pub fn args(&self) -> &[(String, Option<String>)] {
        &self.args
    }

    pub fn set_env(&mut self, name: &str, value: &str) {
        match self.env.iter_mut().find(|(k, _)| k == name) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.env.push((name.to_string(), value.to_string())),
        }
    }

    /// Declare the ARGs of one ARG line of this stage.
    pub fn declare_args(&mut self, decls: &[ArgDecl]) -> Result<(), String> {
        for d in decls {
            let value = if let Some(v) = self.build_args.get(&d.name) {
                Some(v.clone())
            } else if let Some(default) = &d.default {
                Some(self.lexer().process_word(default, &self.vars())?)
            } else {
                // `ARG NAME` alone brings in the global ARG of that name.
                self.globals.as_ref().and_then(|g| g.get(&d.name)).flatten().map(str::to_string)
            };
            if let Some(v) = &value {
                self.set_env(&d.name, v);
            }
            self.args.push((d.name.clone(), value));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(name: &str, default: Option<&str>) -> ArgDecl {
        ArgDecl { name: name.into(), default: default.map(str::to_string) }
    }

    #[test]
    fn globals_feed_from_lines_and_redeclarations() {
        let build_args: BTreeMap<String, String> = [("TAG".to_string(), "edge".to_string())].into();
        let mut g = GlobalArgs::new('\\', &build_args, &platform_args());
        g.declare(&[decl("BASE", Some("alpine")), decl("TAG", Some("3.19")), decl("IMG", Some("${BASE}:${TAG}"))]).unwrap();
        g.declare(&[decl("NOVALUE", None)]).unwrap();
        let from = From { image: "$IMG".into(), name: Some("b".into()), platform: Some("$TARGETPLATFORM".into()) };
        let f = g.expand_from(&from).unwrap();
        assert_eq!(f.image, "alpine:edge", "--build-arg overrides the default");
        assert!(f.platform.unwrap().starts_with("linux/"));
        assert!(g.expand_from(&From { image: "$NOVALUE".into(), name: None, platform: None }).is_err());

        // Inside a stage, a global ARG is invisible until redeclared.
        let mut s = StageState::new('\\', &ImageConfig::default(), &g, &build_args);
        assert_eq!(s.lexer().process_word("[$BASE]", &s.vars()).unwrap(), "[]");
        s.declare_args(&[decl("BASE", None), decl("TAG", None), decl("NOVALUE", None), decl("OWN", Some("$BASE-x"))]).unwrap();
        let vars = s.vars();
        assert_eq!(vars["BASE"], "alpine");
        assert_eq!(vars["TAG"], "edge");
        assert_eq!(vars["OWN"], "alpine-x");
        assert!(!vars.contains_key("NOVALUE"), "declared without any value: unset");
        assert_eq!(s.args().len(), 4);
    }

    #[test]
    fn env_and_arg_later_wins() {
        let base = ImageConfig { env: Some(vec!["PATH=/bin".into(), "V=base".into()]), ..ImageConfig::default() };
        let g = GlobalArgs::new('\\', &BTreeMap::new(), &BTreeMap::new());
        let mut s = StageState::new('\\', &base, &g, &BTreeMap::new());
        s.declare_args(&[decl("V", Some("arg"))]).unwrap();
        assert_eq!(s.vars()["V"], "arg");
        s.set_env("V", "env");
        assert_eq!(s.vars()["V"], "env");
        assert_eq!(s.env(), ["PATH=/bin", "V=env"]);
    }
}
