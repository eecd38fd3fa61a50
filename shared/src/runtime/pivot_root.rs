//! pivot_root: make the container's root filesystem *the* root, and detach
//! the host's. Unlike chroot, nothing of the old root stays reachable:
//! after the detach there is no path, `..` or mount that leads back.
//!
//! The trick (runc's): `pivot_root(".", ".")` stacks the old root on top
//! of the new one at the same place, and `umount2(".", MNT_DETACH)` peels
//! it off — no directory for the old root needs to exist in the image.

use std::ffi::CString;

use super::sys;
use crate::error::{IoContext, Result};
use crate::explain;

pub fn pivot_into(new_root: &std::path::Path) -> Result<()> {
    explain!(
        format!("pivot_root into {} and detach the old root", new_root.display());
        format!("cd {} && pivot_root . . && umount -l . && cd /", new_root.display())
    );
    nix::unistd::chdir(new_root).ctx("chdir", new_root)?;
    let dot = CString::new(".").expect("no NUL");
    sys::pivot_root(&dot, &dot).ctx("pivot_root", new_root)?;
    nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH).ctx("detach the old root", "/")?;
    nix::unistd::chdir("/").ctx("chdir", "/")?;
    Ok(())
}
