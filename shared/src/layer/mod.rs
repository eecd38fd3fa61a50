//! Image layers on disk.
//!
//! A layer is a tar stream of filesystem changes: files added or changed,
//! and deletions written as whiteout entries ([`whiteout`]). An image is a
//! stack of them; a container sees their union through overlayfs.
//!
//! - [`unpack()`]: a layer becomes a directory overlayfs can stack (each
//!   layer on its own, so it can be shared by every image that has it).
//! - [`apply()`]: a layer changes an existing tree in place (flattening).
//! - [`cache`]: `ROOT/layers/<diff_id>/diff`, each layer unpacked once
//!   ([`ensure_unpacked`], [`ensure_image_unpacked`]).
//! - [`diff()`], [`tar_dir()`]: a changed filesystem becomes a new layer.
//!
//! # Every layer is hostile
//!
//! No entry may create, change, delete or read anything outside the
//! destination. Paths are resolved inside the destination from a directory
//! fd (`openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS)`, or an equivalent
//! walk with `O_NOFOLLOW`), the way a process `chroot`ed there would see
//! them, and the last component of an entry is never followed. The policy,
//! case by case (an error names the entry and stops the unpack; the caller
//! discards the half-made directory):
//!
//! | the archive has | what happens |
//! |---|---|
//! | a name with a `..` that climbs above the root (`../x`, `a/../../x`, `..`) | error: breakout refused (as docker) |
//! | an absolute name (`/etc/x`) | lands inside the root (`etc/x`) |
//! | a name for the root itself (`.`, `./`, `/`, empty) | a directory sets the root's metadata; anything else is ignored |
//! | a path through a symlink from an earlier entry or a lower layer | followed inside the root: an absolute target starts at the root, `..` stops at the root (containerd's chroot semantics); a missing directory followed by `..` in a link target is skipped (containerd's lexical rule) |
//! | a hardlink | its target is resolved inside the root like a path in the container; it must already exist and not be a directory, or error; a link to a symlink links the symlink itself; no metadata is applied through a hardlink (CVE-2021-32760) |
//! | an entry where another one was | the old one is removed without following it; a directory meeting a directory merges |
//! | `.wh.`, `.wh..`, `.wh...` | error: invalid whiteout |
//! | `.wh.NAME` | NAME is deleted (a tree) or becomes an overlay whiteout (a layer directory); a symlink NAME is removed, never its target |
//! | `.wh..wh..opq` | the directory is opaque: the layers below are hidden, the layer's own entries stay, wherever the marker is |
//! | other `.wh..wh.*` names | aufs bookkeeping: ignored |
//! | `trusted.overlay.*` / `user.overlay.*` xattrs | dropped: they would steer overlayfs |
//! | a device number the kernel cannot hold, an uid/gid of 2^32-1 or more | error |
//! | a NUL in a name, a name over 4095 bytes (PATH_MAX) | error |
//! | a header whose size the stream does not hold | error: truncated |
//! | more than 4 MiB of PAX / long-name metadata for one entry | error (memory stays flat) |
//! | GNU sparse, volume or other exotic entry types | error: unsupported |
//! | a PAX global header | ignored |
//!
//! A layer directory made by [`unpack()`] cannot see the layers below it
//! (it is shared by every image that has the layer): a path through a lower
//! layer's symlink becomes a real directory in this layer, and a hardlink
//! cannot reach a lower layer's file (an error). Layers written by builders
//! never do either; [`apply()`] onto the flattened tree resolves both.
//!
//! Ownership (numeric), modes with setuid/setgid/sticky, times, xattrs
//! (PAX `SCHILY.xattr.*`), devices, fifos and hardlinks are kept: we run as
//! root, and images mean them. Setuid files and device nodes are the
//! runtime's to contain (a 0700 store, the devices cgroup).

pub mod cache;
pub mod diff;
pub mod name;
mod root;
pub mod unpack;
pub mod whiteout;

pub use cache::{ensure, ensure_image_unpacked, ensure_unpacked, layer_dir, visible_layers, CachedLayer};
pub use diff::{diff, tar_dir, write_diff, write_tar_dir, DiffOptions};
pub use unpack::{apply, extract, unpack, Target, UnpackStats};
