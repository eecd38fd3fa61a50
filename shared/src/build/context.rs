//! The build context: the files COPY and ADD may read, and the Dockerfile.
//!
//! A context is a directory (`ci-build DIR`) or a tar archive on stdin
//! (`ci-build - < ctx.tar`, plain or compressed), which is extracted with
//! the layer extractor — every archive is hostile — into a temporary
//! directory of the store that disappears with the build. Plain text on
//! stdin instead of an archive is a Dockerfile with an empty context, as
//! `docker build - < Dockerfile` reads it.
//!
//! `.dockerignore` (or `<Dockerfile>.dockerignore`) hides files: an
//! excluded file does not exist for COPY, and a COPY naming it says so.
//! Source paths are resolved *inside* the context like paths in a chroot:
//! `..` stops at the root and a symlink to `/etc` leads to `CONTEXT/etc`,
//! never to the host's `/etc`.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::build::checksum::{self, EntrySum, StatCache, Visit};
use crate::digest::Digest;
use crate::dockerignore::{self, Matcher};
use crate::error::{Error, IoContext, Result};
use crate::glob;
use crate::store::{Store, TempDir};

/// Where the context comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextSource {
    Dir(PathBuf),
    /// A tar archive (or a lone Dockerfile) on stdin.
    Stdin,
}

/// Where the Dockerfile comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerfileSource {
    /// `CONTEXT/Dockerfile` (or the Dockerfile of a stdin archive).
    Default,
    /// `-f FILE`: a path (relative to the current directory for a directory
    /// context, to the archive's root for a stdin context).
    Path(PathBuf),
    /// `-f -`.
    Stdin,
}

/// A context ready to be read.
pub struct Context {
    root: PathBuf,
    /// The extracted archive, removed when the build ends.
    _extracted: Option<TempDir>,
    /// The Dockerfile's bytes and the name to use in messages.
    pub dockerfile: Vec<u8>,
    pub dockerfile_name: String,
    pub ignore: Matcher,
    pub ignore_file: Option<PathBuf>,
    stat_cache: StatCache,
}

/// The largest Dockerfile we read (docker's frontend has no limit; a bigger
/// one is a mistake, not a Dockerfile).
const MAX_DOCKERFILE: u64 = 16 << 20;

impl Context {
    /// Open the context and read its Dockerfile and ignore file.
    pub fn open(store: &Store, source: &ContextSource, dockerfile: &DockerfileSource) -> Result<Context> {
        if *source == ContextSource::Stdin && *dockerfile == DockerfileSource::Stdin {
            return Err(Error::invalid("the context and the Dockerfile cannot both come from stdin (`-` and `-f -`)"));
        }
        let (root, extracted, stdin_dockerfile) = match source {
            ContextSource::Dir(dir) => {
                let root = std::fs::canonicalize(dir).ctx("open the build context", dir)?;
                if !root.is_dir() {
                    return Err(Error::invalid(format!("the build context {} is not a directory", dir.display()))
                        .hint("give a directory (usually `.`), or `-` to read a tar archive from stdin"));
                }
                (root, None, None)
            }
            ContextSource::Stdin => {
                let tmp = store.temp_dir("context-")?;
                let root = tmp.path().join("context");
                crate::fsutil::mkdir_all(&root, 0o755)?;
                let text = extract_stdin(&root)?;
                (root, Some(tmp), text)
            }
        };
        let (dockerfile, dockerfile_name, dockerfile_path) = match (dockerfile, stdin_dockerfile) {
            (_, Some(text)) => (text, "Dockerfile (stdin)".to_string(), root.join("Dockerfile")),
            (DockerfileSource::Stdin, None) => {
                let mut data = Vec::new();
                std::io::stdin().lock().take(MAX_DOCKERFILE).read_to_end(&mut data).ctx("read the Dockerfile from", "stdin")?;
                (data, "Dockerfile (stdin)".to_string(), root.join("Dockerfile"))
            }
            (DockerfileSource::Default, None) => {
                let p = root.join("Dockerfile");
                (read_dockerfile(&p)?, "Dockerfile".to_string(), p)
            }
            (DockerfileSource::Path(p), None) => {
                let p = if extracted.is_some() { root.join(clean_rel(p)) } else { p.clone() };
                (read_dockerfile(&p)?, p.display().to_string(), p)
            }
        };
        let (ignore, ignore_file) = dockerignore::load(&root, &dockerfile_path)?;
        let stat_cache = if extracted.is_some() {
            StatCache::in_memory()
        } else {
            StatCache::load(&store.root().join("build-cache/stat"), &root)
        };
        Ok(Context { root, _extracted: extracted, dockerfile, dockerfile_name, ignore, ignore_file, stat_cache })
    }

    /// The context's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Save what was learnt about file checksums for the next build.
    pub fn save(&mut self) -> Result<()> {
        self.stat_cache.save()
    }

    /// How many files were read to checksum them (the rest came from the stat cache).
    pub fn files_hashed(&self) -> usize {
        self.stat_cache.files_hashed
    }

    fn excluded(&self, rel: &Path) -> bool {
        let s = rel.to_string_lossy();
        !s.is_empty() && self.ignore.matches(&s)
    }

    /// The paths a COPY/ADD source names, relative to the context root:
    /// the path itself (its symlinks followed inside the context), or what
    /// a wildcard matches. `what` names the instruction in errors.
    pub fn resolve_source(&self, source: &str, what: &str) -> Result<Vec<PathBuf>> {
        let rel = clean_rel(Path::new(source));
        if has_wildcard(source) {
            let mut matches = Vec::new();
            self.glob(&rel, &mut matches)?;
            if matches.is_empty() {
                return Err(Error::invalid(format!(
                    "{what}: the pattern {source:?} matches no file in the build context{}",
                    self.ignore_note()
                )));
            }
            return Ok(matches);
        }
        if self.excluded(&rel) {
            let file = self.ignore_file.as_ref().map(|f| f.display().to_string()).unwrap_or_default();
            return Err(Error::invalid(format!("{what}: {source:?} is excluded from the build context by {file}"))
                .hint("remove the pattern that matches it from the ignore file, or add an exception line `!PATH`"));
        }
        match resolve_in_root(&self.root, &rel)? {
            Some(p) if p.as_os_str().is_empty() || !self.excluded(&p) => Ok(vec![p]),
            Some(p) => Err(Error::invalid(format!(
                "{what}: {source:?} leads to {:?}, which is excluded from the build context by .dockerignore",
                p.display()
            ))),
            None => Err(Error::invalid(format!(
                "{what}: {source:?} does not exist in the build context {}",
                self.root.display()
            ))
            .hint("paths are relative to the context directory (the last argument of ci-build), not to the Dockerfile")),
        }
    }

    fn ignore_note(&self) -> String {
        match &self.ignore_file {
            Some(f) => format!(" (after excluding what {} lists)", f.display()),
            None => String::new(),
        }
    }

    /// Expand a wildcard path over the context, ignored files invisible.
    fn glob(&self, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        out.extend(glob_paths(&self.root, rel, &|p| self.excluded(p))?);
        Ok(())
    }

    /// Checksum `paths` (and what is under them, less ignored files): the
    /// digest is the COPY's cache key part, the entries what it copies.
    pub fn checksum(&mut self, paths: &[PathBuf]) -> Result<(Digest, Vec<EntrySum>)> {
        let ignore = &self.ignore;
        let descend = ignore.has_exclusions();
        let visit = |p: &Path| {
            if !ignore.matches(&p.to_string_lossy()) {
                Visit::Include
            } else if descend {
                Visit::Descend
            } else {
                Visit::Skip
            }
        };
        checksum::checksum(&self.root, paths, &visit, &mut self.stat_cache)
    }
}

fn read_dockerfile(p: &Path) -> Result<Vec<u8>> {
    let f = std::fs::File::open(p).map_err(|e| {
        let err = Error::io("read the Dockerfile", p, e);
        if !p.exists() {
            err.hint("give its path with -f FILE, or put a file named Dockerfile in the context")
        } else {
            err
        }
    })?;
    let mut data = Vec::new();
    f.take(MAX_DOCKERFILE + 1).read_to_end(&mut data).ctx("read", p)?;
    if data.len() as u64 > MAX_DOCKERFILE {
        return Err(Error::invalid(format!("{}: larger than {} MiB; this is not a Dockerfile", p.display(), MAX_DOCKERFILE >> 20)));
    }
    Ok(data)
}

/// Read stdin into `root`: a tar archive (any compression) is extracted;
/// anything else is a Dockerfile, returned.
fn extract_stdin(root: &Path) -> Result<Option<Vec<u8>>> {
    let mut stdin = std::io::stdin().lock();
    let mut head = vec![0u8; 512];
    let mut n = 0;
    while n < head.len() {
        let k = stdin.read(&mut head[n..]).ctx("read the build context from", "stdin")?;
        if k == 0 {
            break;
        }
        n += k;
    }
    head.truncate(n);
    let comp = crate::compression::Compression::detect(&head);
    let is_tar = comp != crate::compression::Compression::None || (n >= 262 && &head[257..262] == b"ustar");
    let input = std::io::Cursor::new(head).chain(stdin);
    if !is_tar {
        let mut data = Vec::new();
        input.take(MAX_DOCKERFILE).read_to_end(&mut data).ctx("read the Dockerfile from", "stdin")?;
        return Ok(Some(data));
    }
    crate::explain!(format!("extract the build context from stdin into {}", root.display()); format!("tar -x -C {}", root.display()));
    let (_, stream) = crate::compression::decompress(input)?;
    crate::layer::extract(stream, root, crate::layer::Target::Tree).map_err(|e| e.context("extract the build context from stdin"))?;
    Ok(None)
}

/// Expand a wildcard path one component at a time, as Go's filepath.Glob
/// does, over the tree at `root`; `hidden` paths do not exist.
pub fn glob_paths(root: &Path, rel: &Path, hidden: &dyn Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    let mut current = vec![PathBuf::new()];
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut next = Vec::new();
        for base in &current {
            if !has_wildcard(part) {
                let p = base.join(unescape(part));
                if std::fs::symlink_metadata(root.join(&p)).is_ok() {
                    next.push(p);
                }
                continue;
            }
            let dir = root.join(base);
            let Ok(rd) = std::fs::read_dir(&dir) else { continue };
            let mut names: Vec<String> = rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            names.sort();
            for name in names {
                let ok = glob::matches(part, &name)
                    .map_err(|_| Error::invalid(format!("the pattern {:?} is malformed (check its [ ] and \\)", rel.display())))?;
                if ok {
                    let p = base.join(&name);
                    let is_dir = std::fs::metadata(root.join(&p)).map(|m| m.is_dir()).unwrap_or(false);
                    if last || is_dir {
                        next.push(p);
                    }
                }
            }
        }
        current = next;
    }
    Ok(current.into_iter().filter(|p| !hidden(p)).collect())
}

/// Whether a path has Go filepath.Match metacharacters.
pub fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '[']) || s.contains('\\')
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A path inside the context, lexically: `/` and `..` cannot leave the root.
pub fn clean_rel(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Resolve `rel` inside `root` as a process chrooted there would: every
/// symlink is followed, an absolute target starts again at `root`, `..`
/// stops at `root`. Returns the real relative path, or `None` if it does
/// not exist.
pub fn resolve_in_root(root: &Path, rel: &Path) -> Result<Option<PathBuf>> {
    let mut todo: Vec<std::ffi::OsString> = rel.components().rev().map(|c| c.as_os_str().to_os_string()).collect();
    let mut done = PathBuf::new();
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        match Path::new(&part).components().next() {
            Some(Component::ParentDir) => {
                done.pop();
                continue;
            }
            Some(Component::Normal(_)) => {}
            _ => continue,
        }
        let candidate = done.join(&part);
        let full = root.join(&candidate);
        let m = match std::fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(None),
            Err(e) => return Err(Error::io("stat", &full, e)),
        };
        if m.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return Err(Error::invalid(format!("{}: too many levels of symbolic links", rel.display())));
            }
            let target = std::fs::read_link(&full).ctx("read link", &full)?;
            if target.is_absolute() {
                done = PathBuf::new();
            }
            for c in target.components().rev() {
                todo.push(c.as_os_str().to_os_string());
            }
        } else {
            done = candidate;
        }
    }
    Ok(Some(done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::write(r.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", r.join("etc-link")).unwrap();
        std::os::unix::fs::symlink("../../../a", r.join("a/b/up")).unwrap();
        std::os::unix::fs::symlink("/a/b", r.join("abs")).unwrap();
        assert_eq!(resolve_in_root(r, Path::new("abs/f")).unwrap(), Some(PathBuf::from("a/b/f")));
        assert_eq!(resolve_in_root(r, Path::new("a/b/up/b/f")).unwrap(), Some(PathBuf::from("a/b/f")));
        assert_eq!(resolve_in_root(r, Path::new("etc-link/passwd")).unwrap(), None, "the host's /etc is never reached");
        assert_eq!(clean_rel(Path::new("/../x/./y/..")), PathBuf::from("x"));
    }
}
