//! Whiteouts: how a layer says "this was deleted".
//!
//! In a layer tar (OCI image spec, from aufs): an empty file `.wh.NAME`
//! means NAME is deleted, and `.wh..wh..opq` in a directory means the
//! directory replaces, rather than merges with, the one in the layers below
//! ("opaque"). overlayfs says the same on disk differently: a character
//! device 0:0 named NAME, and the xattr `trusted.overlay.opaque=y` on the
//! directory. Unpacking turns the first form into the second; making a layer
//! from an overlay upper directory ([`super::diff`]) turns it back.

use std::os::fd::BorrowedFd;

use nix::sys::stat::{FileStat, SFlag};

/// Prefix of a whiteout file name.
pub const PREFIX: &[u8] = b".wh.";
/// The opaque-directory marker.
pub const OPAQUE: &[u8] = b".wh..wh..opq";
/// aufs kept its own bookkeeping under `.wh..wh.*` (`.wh..wh.plnk`,
/// `.wh..wh.aufs`); it has no meaning outside aufs.
const AUFS_META: &[u8] = b".wh..wh.";

/// The overlayfs xattr that makes a directory opaque.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What a last path component means.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// An ordinary name.
    Plain,
    /// `.wh.NAME`: NAME is deleted.
    Whiteout(&'a [u8]),
    /// `.wh..wh..opq`: the directory is opaque.
    Opaque,
    /// aufs bookkeeping: skipped.
    AufsMeta,
}

/// Classify a base name. `.wh.`, `.wh..` and `.wh...` would delete the
/// directory itself or its parent: they are refused, as containerd does.
pub fn classify(base: &[u8]) -> Result<Kind<'_>, String> {
    let Some(target) = base.strip_prefix(PREFIX) else { return Ok(Kind::Plain) };
    if base == OPAQUE {
        return Ok(Kind::Opaque);
    }
    if base.starts_with(AUFS_META) {
        return Ok(Kind::AufsMeta);
    }
    match target {
        b"" | b"." | b".." => Err(format!(
            "invalid whiteout entry {:?}: it would delete the directory itself or its parent",
            String::from_utf8_lossy(base)
        )),
        t => Ok(Kind::Whiteout(t)),
    }
}

/// The whiteout file name for NAME.
pub fn name_for(name: &[u8]) -> Vec<u8> {
    [PREFIX, name].concat()
}

/// Is this inode an overlayfs whiteout (a character device 0:0)?
pub fn is_overlay_whiteout(st: &FileStat) -> bool {
    super::root::file_type(st) == SFlag::S_IFCHR && st.st_rdev == 0
}

/// Make NAME in `dir` an overlayfs whiteout.
pub fn make_overlay_whiteout(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<()> {
    nix::sys::stat::mknodat(
        dir,
        super::root::os(name),
        SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        nix::sys::stat::makedev(0, 0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(classify(b"etc").unwrap(), Kind::Plain);
        assert_eq!(classify(b".wh.etc").unwrap(), Kind::Whiteout(b"etc"));
        assert_eq!(classify(b".wh..baz").unwrap(), Kind::Whiteout(b".baz"));
        assert_eq!(classify(b".wh..wh..opq").unwrap(), Kind::Opaque);
        assert_eq!(classify(b".wh..wh.plnk").unwrap(), Kind::AufsMeta);
        for bad in [&b".wh."[..], b".wh..", b".wh..."] {
            assert!(classify(bad).unwrap_err().contains("invalid whiteout entry"));
        }
        assert_eq!(name_for(b"x"), b".wh.x");
    }
}
