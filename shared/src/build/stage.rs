//! Building stages: a stage's state step by step, from its FROM to its
//! last instruction, with the cache deciding which steps run.
//!
//! Stages are built on demand: the target (the last stage, or
//! `--target`), and then whatever it needs — the stage its FROM names,
//! those its `COPY --from` and `RUN --mount=from=` name — each once. A
//! stage nothing needs is never built. A stage may only use stages defined
//! before it, so there are no cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::cache::{self, Entry, StoredLayer};
use super::context::{self, Context};
use super::copy::{self, Inline, Source};
use super::progress::Progress;
use super::rootfs::{self, Overlay};
use super::run::{self, BindFrom, MountSpec, RunStep};
use super::BuildOptions;
use crate::digest::Digest;
use crate::dockerfile::instruction::{Add, Copy};
use crate::dockerfile::{self, Command, CommandLine, Dockerfile, GlobalArgs, Instruction, Metadata, StageState};
use crate::error::{Error, IoContext, Result};
use crate::image::{self, config, Layer};
use crate::layer::DiffOptions;
use crate::runtime::Network;
use crate::store::{Store, TempDir};

/// Build arguments docker predefines: usable in RUN without an ARG line,
/// and kept out of the image's history and the cache key.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
];

/// A stage's (or the build's) state: what the image would be if it ended here.
#[derive(Clone)]
pub struct State {
    pub layers: Vec<Layer>,
    pub meta: Metadata,
    /// The image config's `history`, base image's first.
    pub history: Vec<Value>,
    /// The cache key of this state.
    pub key: Digest,
    /// When the last step was first built (the image's `created`).
    pub created: Option<String>,
}

/// Everything one build holds.
pub struct Builder<'a> {
    pub store: &'a Store,
    pub ctx: Context,
    pub df: Dockerfile,
    pub opts: &'a BuildOptions,
    pub progress: Progress,
    globals: GlobalArgs,
    done: Vec<Option<State>>,
    building: Vec<bool>,
    /// `--build-arg` names some ARG line declared.
    pub consumed: BTreeSet<String>,
    diff_opts: DiffOptions,
    log_dir: TempDir,
    pub steps_run: usize,
    pub steps_cached: usize,
}

impl<'a> Builder<'a> {
    pub fn new(store: &'a Store, ctx: Context, df: Dockerfile, opts: &'a BuildOptions, progress: Progress) -> Result<Builder<'a>> {
        let mut globals = GlobalArgs::new(df.escape, &opts.build_args, &dockerfile::scope::platform_args());
        let mut consumed = BTreeSet::new();
        for ins in &df.global_args {
            if let Command::Arg(decls) = &ins.command {
                globals.declare(decls).map_err(|e| at(&ctx, ins, &e))?;
                consumed.extend(decls.iter().map(|d| d.name.clone()));
            }
        }
        let n = df.stages.len();
        Ok(Builder {
            store,
            diff_opts: DiffOptions::from_env()?,
            log_dir: store.temp_dir("build-")?,
            ctx,
            df,
            opts,
            progress,
            globals,
            done: vec![None; n],
            building: vec![false; n],
            consumed,
            steps_run: 0,
            steps_cached: 0,
        })
    }

    /// The index of the stage to build: `--target`, else the last.
    pub fn target(&self) -> Result<usize> {
        match &self.opts.target {
            None => Ok(self.df.stages.len() - 1),
            Some(t) => self.df.stage_index(t).ok_or_else(|| {
                let names: Vec<String> = self.df.stages.iter().filter_map(|s| s.name().map(str::to_string)).collect();
                Error::invalid(format!(
                    "--target {t}: no stage is named {t:?} in {} (named stages: {})",
                    self.ctx.dockerfile_name,
                    if names.is_empty() { "none".to_string() } else { names.join(", ") }
                ))
            }),
        }
    }

    fn stage_label(&self, idx: usize) -> String {
        if self.df.stages.len() == 1 {
            return String::new();
        }
        match self.df.stages[idx].name() {
            Some(n) => format!("{n} "),
            None => format!("stage-{idx} "),
        }
    }

    /// A stage named by `FROM x` or `--from=x`, if `x` names one before `before`.
    fn stage_ref(&self, name: &str, before: usize) -> Option<usize> {
        if let Some(i) = self.df.stage_index(name) {
            return (i < before).then_some(i);
        }
        name.parse::<usize>().ok().filter(|i| *i < before)
    }

    /// Build stage `idx` (once) and return its final state.
    pub fn stage(&mut self, idx: usize) -> Result<State> {
        if let Some(s) = &self.done[idx] {
            return Ok(s.clone());
        }
        if self.building[idx] {
            return Err(Error::invalid(format!("stage {idx} depends on itself")));
        }
        self.building[idx] = true;
        let stage = self.df.stages[idx].clone();
        let label = self.stage_label(idx);
        let total = 1 + stage.instructions.len();
        let from = self.globals.expand_from(stage.base()).map_err(|e| at(&self.ctx, &stage.from, &e))?;
        // A stage this one is based on is built first, so its steps show before this FROM.
        if let Some(j) = self.df.stage_index(&from.image).filter(|j| *j < idx) {
            self.stage(j)?;
        }
        self.progress.begin(&format!("[{label}1/{total}] {}", stage.from.source));
        if let Some(p) = &from.platform {
            let here = format!("linux/{}", config::host_arch());
            if p != &here {
                self.progress.failed();
                return Err(Error::Unsupported(format!(
                    "{}: FROM --platform={p}: only {here}, this machine's platform, can be built here",
                    where_(&self.ctx, &stage.from)
                )));
            }
        }
        let mut state = match self.base(&from.image, idx) {
            Ok(s) => s,
            Err(e) => {
                self.progress.failed();
                return Err(e.context(where_(&self.ctx, &stage.from)));
            }
        };
        self.progress.done();
        // docker's frontend gives every image a PATH.
        if !state.meta.config.env.iter().flatten().any(|e| e.starts_with("PATH=")) {
            state.meta.config.set_env("PATH", crate::runtime::spec::DEFAULT_PATH);
        }
        // ONBUILD triggers of the base run first, and are not inherited.
        let triggers = state.meta.config.on_build.take().unwrap_or_default();
        let mut vars = StageState::new(self.df.escape, &state.meta.config, &self.globals, &self.opts.build_args);
        for t in &triggers {
            let ins = dockerfile::parse_line(t).map_err(|e| {
                Error::invalid(format!("{}: the base image's ONBUILD trigger {t:?} is invalid: {e}", where_(&self.ctx, &stage.from)))
            })?;
            let ins = Instruction { line: stage.from.line, end_line: stage.from.end_line, ..ins };
            let l = format!("[{label}1/{total}] ONBUILD {}", ins.source);
            self.step(idx, &mut state, &mut vars, &ins, &l)?;
        }
        for (i, ins) in stage.instructions.iter().enumerate() {
            let l = format!("[{label}{}/{total}] {}", i + 2, ins.source);
            self.step(idx, &mut state, &mut vars, ins, &l)?;
        }
        self.building[idx] = false;
        self.done[idx] = Some(state.clone());
        Ok(state)
    }

    fn base(&mut self, name: &str, idx: usize) -> Result<State> {
        if name.eq_ignore_ascii_case("scratch") {
            return Ok(State { layers: vec![], meta: Metadata::default(), history: vec![], key: cache::base("scratch"), created: None });
        }
        if let Some(j) = self.df.stage_index(name) {
            if j >= idx {
                return Err(Error::invalid(format!("FROM {name}: a stage can only be based on a stage defined before it")));
            }
            return self.stage(j);
        }
        let img = image::resolve(self.store, name).map_err(|e| {
            e.hint("the base must be a stage of this Dockerfile, `scratch`, or an image in the store (ci-pull or ci-build import it first)")
        })?;
        let meta = Metadata::from_image_json(&img.config_json).map_err(|e| Error::Corrupt(format!("image {name}: {e}")))?;
        let history = img.config_json.get("history").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(State {
            layers: img.layers()?,
            meta,
            history,
            key: cache::base(&format!("image {}", img.id)),
            created: img.config_json.get("created").and_then(Value::as_str).map(str::to_string),
        })
    }

    /// The unpacked directories of `layers`, bottom first, as overlayfs stacks them.
    fn lowers(&self, layers: &[Layer]) -> Result<Vec<PathBuf>> {
        let mut dirs = Vec::with_capacity(layers.len());
        for l in layers {
            dirs.push(crate::layer::ensure_unpacked(self.store, l)?);
        }
        Ok(crate::layer::visible_layers(dirs))
    }

    /// Build the earlier stages an instruction uses (`COPY --from`, `RUN
    /// --mount=...,from=`) before it starts, so their steps show first.
    fn build_dependencies(&mut self, idx: usize, vars: &StageState, ins: &Instruction) -> Result<()> {
        let names: Vec<String> = match ins.command.expand(&vars.lexer(), &vars.vars()) {
            Ok(Command::Copy(c)) => c.from.into_iter().collect(),
            Ok(Command::Run(r)) => r
                .mounts
                .iter()
                .flat_map(|m| m.split(',').filter_map(|kv| kv.strip_prefix("from=").map(str::to_string)).collect::<Vec<_>>())
                .collect(),
            _ => Vec::new(),
        };
        for n in names {
            if let Some(j) = self.stage_ref(&n, idx) {
                self.stage(j)?;
            }
        }
        Ok(())
    }

    /// Run one instruction of stage `idx` on `state`.
    fn step(&mut self, idx: usize, state: &mut State, vars: &mut StageState, ins: &Instruction, label: &str) -> Result<()> {
        self.build_dependencies(idx, vars, ins)?;
        self.progress.begin(label);
        match self.step_inner(idx, state, vars, ins) {
            Ok(cached) => {
                if cached {
                    self.steps_cached += 1;
                    self.progress.cached();
                } else {
                    self.steps_run += 1;
                    self.progress.done();
                }
                Ok(())
            }
            Err(e) => {
                self.progress.failed();
                Err(e.context(where_(&self.ctx, ins)))
            }
        }
    }

    /// Returns whether the step was a cache hit.
    fn step_inner(&mut self, idx: usize, state: &mut State, vars: &mut StageState, ins: &Instruction) -> Result<bool> {
        let invalid = |e: String| Error::invalid(e);
        match &ins.command {
            Command::Arg(decls) => {
                vars.declare_args(decls).map_err(invalid)?;
                self.consumed.extend(decls.iter().map(|d| d.name.clone()));
                let key = format!("ARG {}", decls.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(" "));
                self.metadata_step(state, ins, &key, false)
            }
            Command::Run(_) => self.run_step(idx, state, vars, ins),
            Command::Copy(_) | Command::Add(_) => self.copy_step(idx, state, vars, ins),
            Command::Workdir(_) => {
                dockerfile::apply(&mut state.meta, &ins.command, vars).map_err(invalid)?;
                self.workdir_step(state, ins)
            }
            other => {
                let expanded = other.expand(&vars.lexer(), &vars.vars()).map_err(invalid)?;
                dockerfile::apply(&mut state.meta, other, vars).map_err(invalid)?;
                self.metadata_step(state, ins, &format!("{expanded:?}"), true)
            }
        }
    }

    /// The cache entry for `key`, unless --no-cache.
    fn lookup(&self, key: &Digest) -> Option<Entry> {
        if self.opts.no_cache {
            return None;
        }
        cache::get(self.store, key)
    }

    fn history_entry(ins: &Instruction, created: &str, empty: bool) -> Value {
        let mut h = json!({ "created": created, "created_by": ins.source.lines().next().unwrap_or("").to_string(), "comment": "ci-build" });
        if empty {
            h["empty_layer"] = json!(true);
        }
        h
    }

    /// A step that changes only the config (or nothing): chain its key, record it.
    fn metadata_step(&mut self, state: &mut State, ins: &Instruction, step_key: &str, in_history: bool) -> Result<bool> {
        let key = cache::chain(&state.key, step_key);
        let hit = self.lookup(&key);
        let created = created(hit.as_ref().and_then(|e| e.created.clone()))?;
        if hit.is_none() {
            cache::put(self.store, &key, &Entry { layer: None, created: Some(created.clone()) })?;
        }
        crate::explain!(
            "cache key {} = sha256(previous state {} + {step_key:?}): {}",
            key.short(),
            state.key.short(),
            if hit.is_some() { "seen before" } else { "new" }
        );
        if in_history {
            state.history.push(Self::history_entry(ins, &created, true));
        }
        state.key = key;
        state.created = Some(created);
        Ok(hit.is_some())
    }

    /// Add the result of a layer step to the state.
    fn push_layer(&mut self, state: &mut State, ins: &Instruction, key: Digest, layer: Option<Layer>, created: String) {
        let empty = layer.is_none();
        if let Some(l) = layer {
            state.layers.push(l);
        }
        state.history.push(Self::history_entry(ins, &created, empty));
        state.key = key;
        state.created = Some(created);
    }

    /// Turn an upper directory into a layer (none if nothing changed), and
    /// keep the directory as the layer's unpacked copy.
    fn commit_upper(&self, tmp: TempDir, upper: &Path) -> Result<Option<Layer>> {
        if rootfs::is_empty_dir(upper)? {
            crate::explain!("the step changed no file: no layer");
            return Ok(None);
        }
        let layer = crate::layer::diff(self.store, upper, &self.diff_opts)?;
        crate::explain!(
            "layer {}: {} bytes ({} changed entries)",
            layer.diff_id.short(),
            layer.size,
            count_entries(upper)
        );
        install_unpacked(self.store, &layer, upper)?;
        drop(tmp);
        Ok(Some(layer))
    }

    /// Finish a layer step: from the cache, or by running `work`.
    fn layer_step(&mut self, state: &mut State, ins: &Instruction, step_key: &str, work: &mut dyn FnMut(&mut Self, &State) -> Result<Option<Layer>>) -> Result<bool> {
        // How the layer's times are written is part of what the step makes.
        let step_key = &format!("{step_key} mtime-clamp={:?}", self.diff_opts.clamp_mtime);
        let key = cache::chain(&state.key, step_key);
        if let Some(e) = self.lookup(&key) {
            crate::explain!("cache key {} = sha256(previous state {} + {step_key:?}): hit", key.short(), state.key.short());
            let layer = e.layer.as_ref().map(Layer::from);
            let created = created(e.created)?;
            self.push_layer(state, ins, key, layer, created);
            return Ok(true);
        }
        crate::explain!(
            "cache key {} = sha256(previous state {} + {step_key:?}): {}",
            key.short(),
            state.key.short(),
            if self.opts.no_cache { "not looked up (--no-cache)" } else { "miss" }
        );
        let layer = work(self, state)?;
        let created = config::created_now()?;
        cache::put(self.store, &key, &Entry { layer: layer.as_ref().map(StoredLayer::from), created: Some(created.clone()) })?;
        self.push_layer(state, ins, key, layer, created);
        Ok(false)
    }

    fn workdir_step(&mut self, state: &mut State, ins: &Instruction) -> Result<bool> {
        let wd = state.meta.config.working_dir.clone().unwrap_or_else(|| "/".into());
        let user = state.meta.config.user.clone().unwrap_or_default();
        let step_key = format!("WORKDIR {wd:?} user={user:?}");
        self.layer_step(state, ins, &step_key, &mut |b, st| {
            let lowers = b.lowers(&st.layers)?;
            let ov = Overlay::mount(b.store, &lowers, true)?;
            {
                let root = ov.root()?;
                let owner = if user.is_empty() { (0, 0) } else { rootfs::resolve_owner(root.as_fd(), &user).unwrap_or((0, 0)) };
                rootfs::mkdir_all_in_root(root.as_fd(), Path::new(&wd), 0o755, owner)?;
            }
            let (tmp, upper) = ov.into_upper()?;
            b.commit_upper(tmp, &upper)
        })
    }

    fn run_step(&mut self, idx: usize, state: &mut State, vars: &mut StageState, ins: &Instruction) -> Result<bool> {
        let Command::Run(r) = ins.command.expand(&vars.lexer(), &vars.vars()).map_err(Error::invalid)? else { unreachable!("RUN expands to RUN") };
        let cfg = &state.meta.config;
        let workdir = cfg.working_dir.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into());
        let shell = cfg.shell_or_default();
        // The command the container runs.
        let (args, script) = match (&r.command, r.heredocs.as_slice()) {
            (CommandLine::Exec(a), _) => (a.clone(), None),
            (CommandLine::Shell(line), [h]) if matches!(crate::dockerfile::heredoc::parse_opener(line.trim()), Ok(Some(_))) => {
                let body = h.text();
                if body.starts_with("#!") {
                    (vec![], Some((h.name.clone(), body)))
                } else {
                    (with(&shell, body), None)
                }
            }
            (CommandLine::Shell(line), docs) => {
                let mut full = line.clone();
                for h in docs {
                    full.push('\n');
                    full.push_str(&h.content);
                    full.push_str(&h.name);
                }
                (with(&shell, full), None)
            }
        };
        // Entitlements: a Dockerfile cannot raise its own privileges (CVE-2024-23653).
        let network = match r.network.as_deref() {
            Some("host") => {
                self.entitled("network.host", "RUN --network=host")?;
                Network::Host
            }
            Some("none") => Network::None,
            _ => self.opts.network,
        };
        let privileged = match r.security.as_deref() {
            Some("insecure") => {
                self.entitled("security.insecure", "RUN --security=insecure")?;
                true
            }
            _ => false,
        };
        let mut mounts = Vec::new();
        for m in &r.mounts {
            mounts.push(MountSpec::parse(m, &workdir)?);
        }
        let mut env = vars.env();
        let mut key_env = env.clone();
        key_env.sort();
        for p in PROXY_ARGS {
            if let Some(v) = self.opts.build_args.get(*p) {
                env.push(format!("{p}={v}"));
                self.consumed.insert(p.to_string());
            }
        }
        let user = cfg.user.clone();
        // Bind sources from other stages are part of the key through their state.
        let mut from_keys = Vec::new();
        let mut binds: Vec<(MountSpec, Option<State>)> = Vec::new();
        for m in mounts {
            let from_state = match &m {
                MountSpec::Bind { from: Some(f), .. } => {
                    let s = self.state_named(f, idx)?;
                    from_keys.push(s.key.to_string());
                    Some(s)
                }
                _ => None,
            };
            binds.push((m, from_state));
        }
        let mut ctx_key = String::new();
        if binds.iter().any(|(m, s)| matches!(m, MountSpec::Bind { .. }) && s.is_none()) {
            // A bind of the context: the key covers the whole context.
            let (d, _) = self.ctx.checksum(&[PathBuf::new()])?;
            ctx_key = d.to_string();
        }
        let step_key = format!(
            "RUN {:?} heredocs={:?} mounts={:?} from={from_keys:?} context={ctx_key} env={key_env:?} user={user:?} workdir={workdir:?} network={network:?} privileged={privileged}",
            r.command, r.heredocs, binds.iter().map(|(m, _)| m.key()).collect::<Vec<_>>()
        );
        let what = format!("RUN {}", ins.source.lines().next().unwrap_or("").trim_start_matches("RUN ").trim_start_matches("run "));
        self.layer_step(state, ins, &step_key, &mut |b, st| {
            let lowers = b.lowers(&st.layers)?;
            let mut mount_list = Vec::new();
            for (m, s) in &binds {
                let from = match s {
                    Some(s) => BindFrom::Layers(b.lowers(&s.layers)?),
                    None => BindFrom::Context(b.ctx.root()),
                };
                mount_list.push((m.clone(), from));
            }
            let step = RunStep {
                args: args.clone(),
                env: env.clone(),
                user: user.clone(),
                workdir: workdir.clone(),
                network,
                privileged,
                mounts: mount_list,
                script: script.clone(),
                what: what.clone(),
            };
            let log = b.log_dir.path().join(format!("step-{}.log", b.steps_run));
            let res = run::run(b.store, lowers, &step, &b.progress, &log)?;
            crate::explain!("the step ran in container {}", &res.container[..12]);
            let upper = res.upper.clone();
            b.commit_upper(res.tmp, &upper)
        })
    }

    fn entitled(&self, what: &str, instruction: &str) -> Result<()> {
        if self.opts.allow.iter().any(|a| a == what) {
            Ok(())
        } else {
            Err(Error::invalid(format!("{instruction} needs the entitlement {what}, which this build was not given"))
                .hint(format!("a Dockerfile cannot raise its own privileges; run ci-build --allow {what} to grant it")))
        }
    }

    /// The state a `--from=NAME` means: an earlier stage, or an image.
    fn state_named(&mut self, name: &str, idx: usize) -> Result<State> {
        if let Some(j) = self.stage_ref(name, idx) {
            return self.stage(j);
        }
        if self.df.stage_index(name).is_some() {
            return Err(Error::invalid(format!("--from={name}: a stage can only use stages defined before it")));
        }
        let img = image::resolve(self.store, name).map_err(|e| e.hint("--from names an earlier stage (by name or number) or an image in the store"))?;
        Ok(State {
            layers: img.layers()?,
            meta: Metadata::default(),
            history: vec![],
            key: cache::base(&format!("image {}", img.id)),
            created: None,
        })
    }

    fn copy_step(&mut self, idx: usize, state: &mut State, vars: &mut StageState, ins: &Instruction) -> Result<bool> {
        let expanded = ins.command.expand(&vars.lexer(), &vars.vars()).map_err(Error::invalid)?;
        let (keyword, sources, inline, dest, from, chown, chmod, checksum, unpack, exclude) = match &expanded {
            Command::Copy(Copy { parents: true, .. }) => {
                return Err(Error::Unsupported("COPY --parents is not supported by ci-build".into()));
            }
            Command::Copy(Copy { sources, inline, dest, from, chown, chmod, exclude, .. }) => {
                ("COPY", sources.clone(), inline.clone(), dest.clone(), from.clone(), chown.clone(), chmod.clone(), None, false, exclude.clone())
            }
            Command::Add(Add { sources, inline, dest, chown, chmod, checksum, unpack, exclude, .. }) => {
                ("ADD", sources.clone(), inline.clone(), dest.clone(), None, chown.clone(), chmod.clone(), checksum.clone(), unpack.unwrap_or(true), exclude.clone())
            }
            _ => unreachable!("copy_step is for COPY and ADD"),
        };
        if !exclude.is_empty() {
            return Err(Error::Unsupported(format!("{keyword} --exclude is not supported by ci-build")));
        }
        // --link asks for a layer that does not depend on the earlier steps. A
        // COPY of context files already reuses its layer whenever the same files
        // land on a destination that looks the same, whatever else the parent
        // holds, so --link changes neither the files nor the key.
        if matches!(&expanded, Command::Copy(Copy { link: true, .. }) | Command::Add(Add { link: true, .. })) {
            crate::explain!(
                "{keyword} --link: copied as without --link (the same files, the same cache key). A COPY of context files reuses its layer anyway when the same files land on a destination that looks the same, whatever the earlier steps changed; unlike docker's --link, symlinks in the destination path are followed"
            );
        }
        let mode = chmod.as_deref().map(copy::parse_chmod).transpose()?;
        let workdir = state.meta.config.working_dir.clone();
        let dest = copy::dest_path(&dest, workdir.as_deref());
        let checksum = checksum
            .as_deref()
            .map(|c| Digest::parse(c).map_err(|e| e.context(format!("ADD --checksum={c}"))))
            .transpose()?;
        if checksum.is_some() && !sources.iter().all(|s| super::add::is_url(s)) {
            return Err(Error::invalid("ADD --checksum is only for URL sources"));
        }
        let many = sources.iter().any(|s| context::has_wildcard(s));
        let inline_mtime = config::epoch_now().map(|e| if std::env::var_os("SOURCE_DATE_EPOCH").is_some() { e } else { 0 })?;
        let inline: Vec<Inline> = inline.iter().map(|f| Inline { name: f.name.clone(), data: f.data.clone().into_bytes() }).collect();
        let inline_key: Vec<(String, Digest)> = inline.iter().map(|f| (f.name.clone(), Digest::sha256_of(&f.data))).collect();
        let flags = format!("dest={dest:?} chown={chown:?} chmod={mode:?} unpack={unpack} inline={inline_key:?}");

        // URLs (ADD): known by their checksum, or downloaded now to learn it.
        let mut downloads: Vec<(String, TempDir, PathBuf, super::add::Downloaded)> = Vec::new();
        let mut url_keys = Vec::new();
        for s in sources.iter().filter(|s| super::add::is_url(s)) {
            if keyword == "COPY" {
                return Err(Error::invalid(format!("COPY {s}: COPY takes files from the context; use ADD for URLs")));
            }
            if s.starts_with("git@") || s.ends_with(".git") {
                return Err(Error::Unsupported(format!("ADD {s}: git sources are not supported by ci-build")));
            }
            match &checksum {
                Some(c) => url_keys.push(format!("{s} {c}")),
                None => {
                    let t = self.store.temp_dir("download-")?;
                    let p = t.path().join("file");
                    self.progress.info(&format!("downloading {s}"));
                    let d = super::add::download(s, &p, None)?;
                    url_keys.push(format!("{s} {} {:?}", d.digest, d.mtime));
                    downloads.push((s.clone(), t, p, d));
                }
            }
        }
        let locals: Vec<String> = sources.iter().filter(|s| !super::add::is_url(s)).cloned().collect();

        match from {
            Some(f) => {
                let src = self.state_named(&f, idx)?;
                let step_key = format!("{keyword} --from={} {locals:?} {flags}", src.key);
                self.layer_step(state, ins, &step_key, &mut |b, st| {
                    let src_lowers = b.lowers(&src.layers)?;
                    let view = Overlay::mount(b.store, &src_lowers, false)?;
                    let mut srcs = Vec::new();
                    for s in &locals {
                        let rel = context::clean_rel(Path::new(s));
                        let tops = if context::has_wildcard(s) {
                            context::glob_paths(&view.merged, &rel, &|_| false)?
                        } else {
                            match context::resolve_in_root(&view.merged, &rel)? {
                                Some(p) => vec![p],
                                None => return Err(Error::invalid(format!("COPY --from={f}: {s} does not exist in {f}"))),
                            }
                        };
                        if tops.is_empty() {
                            return Err(Error::invalid(format!("COPY --from={f}: the pattern {s:?} matches no file in {f}")));
                        }
                        for t in tops {
                            let name = t.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                            let real = context::resolve_in_root(&view.merged, &t)?.unwrap_or(t);
                            srcs.push(Source { entries: copy::list_tree(&view.merged, &real)?, top: real, name });
                        }
                    }
                    b.copy_into(st, &view.merged, &srcs, &inline, &dest, many, chown.as_deref(), mode, inline_mtime, keyword)
                })
            }
            None => {
                // Resolve and checksum the context sources: the key needs their content.
                let mut srcs = Vec::new();
                let mut digests = Vec::new();
                for s in &locals {
                    let given = context::clean_rel(Path::new(s));
                    let tops = self.ctx.resolve_source(s, keyword)?;
                    for t in tops {
                        let name = if context::has_wildcard(s) { &t } else { &given };
                        let name = name.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                        let real = context::resolve_in_root(self.ctx.root(), &t)?.unwrap_or(t.clone());
                        let (d, sums) = self.ctx.checksum(std::slice::from_ref(&real))?;
                        digests.push(format!("{} -> {name}: {d}", real.display()));
                        srcs.push(Source { entries: copy::from_sums(&sums), top: real, name });
                    }
                }
                let many = many || srcs.len() + downloads.len() + url_keys.len().saturating_sub(downloads.len()) > 1;
                let step_key = format!("{keyword} {digests:?} urls={url_keys:?} {flags}");
                let step_key_outer = format!("{step_key} mtime-clamp={:?}", self.diff_opts.clamp_mtime);
                let family_desc = format!(
                    "{keyword} {:?} {flags} mtime-clamp={:?}",
                    srcs.iter().map(|s| (s.top.display().to_string(), s.name.clone())).collect::<Vec<_>>(),
                    self.diff_opts.clamp_mtime
                );
                let ctx_root = self.ctx.root().to_path_buf();
                let downloads = &mut downloads;
                let checksum = checksum.clone();
                let sources_all = sources.clone();
                self.layer_step(state, ins, &step_key, &mut |b, st| {
                    let lowers = b.lowers(&st.layers)?;
                    let ov = Overlay::mount(b.store, &lowers, true)?;
                    let reuse_key;
                    let mut family = None;
                    {
                        let root = ov.root()?;
                        let owner = match &chown {
                            Some(c) => rootfs::resolve_owner(root.as_fd(), c)?,
                            None => (0, 0),
                        };
                        let opts = copy::Options { owner, mode, inline_mtime };
                        // The same files copied onto a destination that looks the
                        // same make the same layer, whatever else the parent holds:
                        // reuse it rather than copy again (a change before this
                        // step then re-copies only what changed).
                        let plain_copy = keyword == "COPY" && sources_all.iter().all(|s| !super::add::is_url(s));
                        let into = copy::into_dir(root.as_fd(), srcs.len() + inline.len(), &dest, many, keyword)?;
                        let (fp, existing) = copy::dest_fingerprint(root.as_fd(), &srcs, &dest, into)?;
                        crate::explain!("the destination as this step finds it: {fp:?}");
                        reuse_key = (plain_copy && !b.opts.no_cache)
                            .then(|| cache::chain(&cache::base("copy onto a destination"), &format!("{step_key_outer} owner={owner:?} {fp}")));
                        if let Some(k) = &reuse_key {
                            if let Some(Entry { layer: Some(l), .. }) = cache::get(b.store, k) {
                                b.progress.info(&format!("reusing layer {}: the same files were copied onto the same destination before", l.diff_id.short()));
                                return Ok(Some(Layer::from(&l)));
                            }
                        }
                        // The same COPY made before from other file contents: link
                        // what did not change from its layer, copy the rest.
                        if plain_copy && inline.is_empty() && !existing {
                            let tg = copy::targets(&srcs, &dest, into);
                            let sigs = super::incremental::signatures(&ctx_root, &tg, &opts)?;
                            let fk = cache::chain(&cache::base("copy family"), &format!("{family_desc} owner={owner:?} {fp}"));
                            if let Some(rec) = super::incremental::load(b.store, &fk).filter(|_| !b.opts.no_cache) {
                                let prev = crate::layer::layer_dir(b.store, &rec.layer.diff_id).join("diff");
                                if prev.is_dir() {
                                    let tmp = b.store.temp_dir("copy-")?;
                                    let new = tmp.path().join("upper");
                                    let (linked, copied) = super::incremental::build(&prev, &new, &ctx_root, &dest, &tg, &rec.files, &sigs, &opts)?;
                                    b.progress.info(&format!("copied {copied} changed file(s); {linked} unchanged linked from layer {}", rec.layer.diff_id.short()));
                                    let layer = b.commit_upper(tmp, &new)?;
                                    if let Some(l) = &layer {
                                        super::incremental::save(b.store, &fk, &super::incremental::Record { layer: StoredLayer::from(l), files: sigs })?;
                                        if let Some(k) = &reuse_key {
                                            cache::put(b.store, k, &Entry { layer: Some(StoredLayer::from(l)), created: None })?;
                                        }
                                    }
                                    return Ok(layer);
                                }
                            }
                            family = Some((fk, sigs));
                        }
                        // Archives (ADD) are extracted; everything else is copied.
                        let mut plain = Vec::new();
                        for s in &srcs {
                            let top_is_file = s.entries.first().is_some_and(|e| e.kind == copy::Kind::File);
                            if keyword == "ADD" && unpack && top_is_file && super::add::is_archive(&ctx_root.join(&s.top))? {
                                let d = rootfs::mkdir_all_in_root(root.as_fd(), Path::new(&dest), 0o755, owner)?;
                                super::add::extract(&ctx_root.join(&s.top), &d)?;
                            } else {
                                plain.push(s.clone());
                            }
                        }
                        copy::copy(&root, &ctx_root, &plain, &inline, &dest, many, &opts, keyword)?;
                        // URLs: downloaded now if the checksum let the key be known without them.
                        for s in sources_all.iter().filter(|s| super::add::is_url(s)) {
                            let (path, d) = match downloads.iter().find(|(u, ..)| u == s) {
                                Some((_, _, p, d)) => (p.clone(), super::add::Downloaded { digest: d.digest.clone(), size: d.size, mtime: d.mtime }),
                                None => {
                                    let t = b.store.temp_dir("download-")?;
                                    let p = t.path().join("file");
                                    b.progress.info(&format!("downloading {s}"));
                                    let d = super::add::download(s, &p, checksum.as_ref())?;
                                    downloads.push((s.clone(), t, p.clone(), super::add::Downloaded { digest: d.digest.clone(), size: d.size, mtime: d.mtime }));
                                    (p, d)
                                }
                            };
                            let name = if dest.ends_with('/') || many {
                                let n = super::add::url_file_name(s).ok_or_else(|| {
                                    Error::invalid(format!("ADD {s}: cannot tell a file name from the URL; give DEST as a file path"))
                                })?;
                                format!("{}{n}", if dest.ends_with('/') { dest.clone() } else { format!("{dest}/") })
                            } else {
                                dest.clone()
                            };
                            let dir = Path::new(&name).parent().unwrap_or(Path::new("/"));
                            let dir_src = path.parent().expect("download dir");
                            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).ctx("chmod", &path)?;
                            let mtime = d.mtime.unwrap_or(0);
                            let ft = std::fs::File::options().write(true).open(&path).ctx("open", &path)?;
                            ft.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime.max(0) as u64)).ctx("set time of", &path)?;
                            let src = Source {
                                top: PathBuf::from("file"),
                                name: Path::new(&name).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                                entries: vec![copy::Entry { path: PathBuf::from("file"), kind: copy::Kind::File, mode: 0o600, sha256: None }],
                            };
                            let o = copy::Options { owner, mode: Some(mode.unwrap_or(0o600)), inline_mtime };
                            copy::copy(&root, dir_src, &[src], &[], &format!("{}/", dir.display()), false, &o, keyword)?;
                        }
                    }
                    let (tmp, upper) = ov.into_upper()?;
                    let layer = b.commit_upper(tmp, &upper)?;
                    if let Some(k) = reuse_key {
                        cache::put(b.store, &k, &Entry { layer: layer.as_ref().map(StoredLayer::from), created: None })?;
                    }
                    if let (Some((fk, sigs)), Some(l)) = (family, &layer) {
                        super::incremental::save(b.store, &fk, &super::incremental::Record { layer: StoredLayer::from(l), files: sigs })?;
                    }
                    Ok(layer)
                })
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_into(&self, st: &State, src_root: &Path, srcs: &[Source], inline: &[Inline], dest: &str, many: bool, chown: Option<&str>, mode: Option<u32>, inline_mtime: i64, what: &str) -> Result<Option<Layer>> {
        let lowers = self.lowers(&st.layers)?;
        let ov = Overlay::mount(self.store, &lowers, true)?;
        {
            let root = ov.root()?;
            let owner = match chown {
                Some(c) => rootfs::resolve_owner(root.as_fd(), c)?,
                None => (0, 0),
            };
            let opts = copy::Options { owner, mode, inline_mtime };
            copy::copy(&root, src_root, srcs, inline, dest, many || srcs.len() > 1, &opts, what)?;
        }
        let (tmp, upper) = ov.into_upper()?;
        self.commit_upper(tmp, &upper)
    }

    /// The image config for a state (labels from the command line added).
    pub fn config_json(&self, state: &State, labels: &BTreeMap<String, String>) -> Result<Vec<u8>> {
        let mut meta = state.meta.clone();
        if !labels.is_empty() {
            meta.config.labels.get_or_insert_with(BTreeMap::new).extend(labels.clone());
        }
        let created = match &state.created {
            Some(c) => c.clone(),
            None => config::created_now()?,
        };
        let mut doc = json!({
            "created": created,
            "architecture": config::host_arch().to_string(),
            "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": state.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>() },
            "history": state.history,
        });
        meta.store_in(&mut doc);
        Ok(serde_json::to_vec(&doc).expect("config serialises"))
    }
}

/// When a step was made: `SOURCE_DATE_EPOCH` if set (reproducible, even
/// from the cache), else when it first ran (cached), else now.
fn created(cached: Option<String>) -> Result<String> {
    if std::env::var_os("SOURCE_DATE_EPOCH").is_some_and(|v| !v.is_empty()) {
        return config::created_now();
    }
    match cached {
        Some(c) => Ok(c),
        None => config::created_now(),
    }
}

fn with(shell: &[String], command: String) -> Vec<String> {
    let mut v = shell.to_vec();
    v.push(command);
    v
}

fn where_(ctx: &Context, ins: &Instruction) -> String {
    format!("{}:{}: {}", ctx.dockerfile_name, ins.line, ins.source.lines().next().unwrap_or(""))
}

fn at(ctx: &Context, ins: &Instruction, msg: &str) -> Error {
    Error::invalid(format!("{}:{}: {msg}", ctx.dockerfile_name, ins.line))
}

fn count_entries(p: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(p) else { return 0 };
    rd.filter_map(|e| e.ok())
        .map(|e| if e.file_type().map(|t| t.is_dir()).unwrap_or(false) { 1 + count_entries(&e.path()) } else { 1 })
        .sum()
}

/// Make an upper directory the unpacked copy of its layer in the layer
/// cache (`ROOT/layers/<diff_id>/diff`): overlayfs reads it as a lower
/// layer as it is, so the next step stacks it without unpacking the blob.
/// Same contract as the cache's own unpacking: complete, synced, renamed
/// into place in one step; if another process got there first, ours goes.
fn install_unpacked(store: &Store, layer: &Layer, upper: &Path) -> Result<()> {
    let dest = crate::layer::layer_dir(store, &layer.diff_id);
    if dest.join("diff").is_dir() {
        return Ok(());
    }
    let tmp = store.temp_dir("layer-")?;
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).ctx("chmod", tmp.path())?;
    std::fs::rename(upper, tmp.path().join("diff")).ctx("move into the layer cache", upper)?;
    let record = json!({ "diff_id": layer.diff_id, "blob": layer.blob, "media_type": layer.media_type, "made_by": "ci-build (the step's overlay upper directory)" });
    crate::fsutil::write_json_atomic(&tmp.path().join("layer.json"), &record)?;
    let fd = std::fs::File::open(tmp.path()).ctx("open", tmp.path())?;
    nix::unistd::syncfs(&fd).ctx("syncfs", tmp.path())?;
    tmp.keep_as(&dest)?;
    Ok(())
}
