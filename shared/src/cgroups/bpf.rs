//! The cgroup v2 device filter: an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE`, assembled here by hand (a few dozen
//! instructions, as runc's `devicefilter` does) and attached to the
//! container's cgroup directory with two raw `bpf(2)` calls. No BPF library:
//! the program is small and its shape is fixed.
//!
//! The kernel runs it on every mknod and every open of a device node by a
//! process of the cgroup (or below), with a context of three u32s:
//!
//! ```text
//! struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; };
//! access_type = access << 16 | type    access: 1 mknod, 2 read, 4 write
//!                                      type:   1 block, 2 char
//! ```
//!
//! and allows the operation when it returns 1. The program is one block per
//! exception of the [`DeviceAccess`] state, first match wins, then the
//! default:
//!
//! ```text
//!   r2 = type; r3 = access; r4 = major; r5 = minor
//!   if r2 != TYPE goto next                  (each block, with only the
//!   if r3 & ACCESS != r3 goto next            checks its rule needs)
//!   if r4 != MAJOR goto next
//!   if r5 != MINOR goto next
//!   r0 = VERDICT; exit
//! next: ...
//!   r0 = DEFAULT; exit
//! ```

use std::ffi::CString;
use std::fmt::Write as _;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::devices::{Access, DeviceAccess, DeviceKind};
use crate::error::{Error, Result};

/// One eBPF instruction, as `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes (include/uapi/linux/bpf.h, bpf_common.h): class | op | source.
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K (32-bit)
const ALU_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU_MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
const ALU_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const JMP_JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JMP_JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: dst | (src << 4), off, imm }
}

/// A jump whose target ("the next block") is patched once the block's
/// length is known.
const NEXT: i16 = i16::MIN;

/// Assemble the program that decides like `access`.
pub fn device_program(access: &DeviceAccess) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0), // r2 = ctx->access_type
        insn(ALU_AND_K, R2, 0, 0, 0xffff), // w2 &= 0xffff: the type
        insn(LDX_MEM_W, R3, R1, 0, 0), // r3 = ctx->access_type
        insn(ALU_RSH_K, R3, 0, 0, 16), // w3 >>= 16: the access
        insn(LDX_MEM_W, R4, R1, 4, 0), // r4 = ctx->major
        insn(LDX_MEM_W, R5, R1, 8, 0), // r5 = ctx->minor
    ];
    let verdict = i32::from(!access.default_allow);
    for e in &access.exceptions {
        let mut b = Vec::new();
        let ty = match e.kind {
            DeviceKind::Block => 1,
            DeviceKind::Char => 2,
            DeviceKind::All => unreachable!("DeviceAccess never keeps an `a` exception"),
        };
        b.push(insn(JMP_JNE_K, R2, 0, NEXT, ty));
        if e.access != Access::ALL {
            b.push(insn(ALU_MOV_X, R1, R3, 0, 0)); // w1 = w3
            b.push(insn(ALU_AND_K, R1, 0, 0, i32::from(e.access.bits()))); // w1 &= ACCESS
            if access.default_allow {
                // A deny exception applies when any requested bit is denied.
                b.push(insn(JMP_JEQ_K, R1, 0, NEXT, 0));
            } else {
                // An allow exception applies when it grants every requested bit.
                b.push(insn(JMP_JNE_X, R1, R3, NEXT, 0));
            }
        }
        if let Some(major) = e.major {
            b.push(insn(JMP_JNE_K, R4, 0, NEXT, major as i32));
        }
        if let Some(minor) = e.minor {
            b.push(insn(JMP_JNE_K, R5, 0, NEXT, minor as i32));
        }
        b.push(insn(ALU_MOV_K, R0, 0, 0, verdict));
        b.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let len = b.len();
        for (i, x) in b.iter_mut().enumerate() {
            if x.off == NEXT {
                // Jump to just past this block: relative to the next insn.
                x.off = (len - i - 1) as i16;
            }
        }
        p.extend(b);
    }
    p.push(insn(ALU_MOV_K, R0, 0, 0, i32::from(access.default_allow)));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

/// The program in the kernel verifier's notation, for `--explain`.
pub fn disassemble(prog: &[Insn]) -> String {
    let mut s = String::new();
    for (pc, i) in prog.iter().enumerate() {
        let (dst, src) = (i.regs & 0xf, i.regs >> 4);
        let target = pc as i64 + 1 + i64::from(i.off);
        let text = match i.code {
            LDX_MEM_W => format!("r{dst} = *(u32 *)(r{src} + {})", i.off),
            ALU_AND_K => format!("w{dst} &= {:#x}", i.imm),
            ALU_RSH_K => format!("w{dst} >>= {}", i.imm),
            ALU_MOV_K => format!("w{dst} = {}", i.imm),
            ALU_MOV_X => format!("w{dst} = w{src}"),
            JMP_JEQ_K => format!("if r{dst} == {} goto {target}", i.imm),
            JMP_JNE_K => format!("if r{dst} != {} goto {target}", i.imm),
            JMP_JNE_X => format!("if r{dst} != r{src} goto {target}"),
            JMP_EXIT => "exit".to_string(),
            c => format!("(code {c:#04x})"),
        };
        let _ = writeln!(s, "{pc:4}: {text}");
    }
    s
}

// bpf(2) commands and constants.
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Let programs of parent and child cgroups all run (each must allow).
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The `union bpf_attr` members we use, each a prefix of the kernel's
/// struct: the kernel zero-fills what we do not pass.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// The start of `struct bpf_prog_info`.
#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
}

fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: attr is a live #[repr(C)] prefix of `union bpf_attr` for this
    // command and we pass its exact size; pointers inside it point to memory
    // that outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>() as libc::c_uint) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A loaded program (the kernel keeps it while an fd or an attachment holds it).
pub struct Program {
    fd: OwnedFd,
}

impl Program {
    /// `bpf(BPF_PROG_LOAD)`: the verifier checks the program; on refusal its
    /// log is part of the error.
    pub fn load(prog: &[Insn]) -> Result<Program> {
        let license = CString::new("Apache-2.0").expect("no NUL");
        let mut name = [0u8; 16];
        name[..10].copy_from_slice(b"ci_devices");
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: prog.len() as u32,
            insns: prog.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name,
            expected_attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        match bpf(BPF_PROG_LOAD, &mut attr) {
            // SAFETY: a successful BPF_PROG_LOAD returns a new fd that we own.
            Ok(fd) => Ok(Program { fd: unsafe { OwnedFd::from_raw_fd(fd as i32) } }),
            Err(e) => {
                // Load again with the verifier's log to say why.
                let mut log = vec![0u8; 64 * 1024];
                attr.log_level = 1;
                attr.log_size = log.len() as u32;
                attr.log_buf = log.as_mut_ptr() as u64;
                let _ = bpf(BPF_PROG_LOAD, &mut attr).map(|fd| {
                    // SAFETY: as above; we only close it.
                    drop(unsafe { OwnedFd::from_raw_fd(fd as i32) })
                });
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let log = String::from_utf8_lossy(&log[..end]).trim().to_string();
                let errno = e.raw_os_error();
                let err = Error::io("bpf(BPF_PROG_LOAD)", "device filter program", e);
                Err(match errno {
                    Some(libc::EPERM) => err.hint("loading eBPF programs needs CAP_SYS_ADMIN or CAP_BPF"),
                    _ if !log.is_empty() => err.hint(format!("the verifier said:\n{log}")),
                    _ => err,
                })
            }
        }
    }

    /// `bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)` to an open
    /// cgroup directory.
    pub fn attach(&self, cgroup_dir: BorrowedFd<'_>) -> std::io::Result<()> {
        let mut attr = ProgAttachAttr {
            target_fd: cgroup_dir.as_raw_fd() as u32,
            attach_bpf_fd: self.fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            attach_flags: BPF_F_ALLOW_MULTI,
        };
        bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
    }

    /// The kernel's id and tag of the program (as `bpftool prog` shows them).
    pub fn id_and_tag(&self) -> std::io::Result<(u32, String)> {
        let mut info = ProgInfo::default();
        let mut attr = InfoAttr {
            bpf_fd: self.fd.as_raw_fd() as u32,
            info_len: std::mem::size_of::<ProgInfo>() as u32,
            info: &mut info as *mut ProgInfo as u64,
        };
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
        Ok((info.id, hex::encode(info.tag)))
    }
}

/// The ids of the device programs attached to a cgroup directory.
pub fn attached_device_programs(cgroup_dir: BorrowedFd<'_>) -> std::io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup_dir.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::devices::{default_devices, DeviceRule};

    /// Run a device program on one request, the way the kernel would, for
    /// the handful of opcodes `device_program` emits.
    fn run(prog: &[Insn], kind: DeviceKind, major: u32, minor: u32, access: Access) -> u64 {
        let ty: u32 = if kind == DeviceKind::Block { 1 } else { 2 };
        let ctx = [(u32::from(access.bits()) << 16) | ty, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (d, s) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            let jump = |cond: bool| if cond { pc as i64 + 1 + i64::from(i.off) } else { pc as i64 + 1 };
            let next = match i.code {
                LDX_MEM_W => {
                    assert_eq!(s, 1, "loads are from the context");
                    r[d] = u64::from(ctx[i.off as usize / 4]);
                    pc as i64 + 1
                }
                ALU_AND_K => {
                    r[d] = u64::from(r[d] as u32 & i.imm as u32);
                    pc as i64 + 1
                }
                ALU_RSH_K => {
                    r[d] = u64::from((r[d] as u32) >> i.imm);
                    pc as i64 + 1
                }
                ALU_MOV_K => {
                    r[d] = u64::from(i.imm as u32);
                    pc as i64 + 1
                }
                ALU_MOV_X => {
                    r[d] = u64::from(r[s] as u32);
                    pc as i64 + 1
                }
                JMP_JEQ_K => jump(r[d] == i.imm as i64 as u64),
                JMP_JNE_K => jump(r[d] != i.imm as i64 as u64),
                JMP_JNE_X => jump(r[d] != r[s]),
                JMP_EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            };
            assert!(next > pc as i64 && (next as usize) < prog.len(), "jumps go forward and stay inside");
            pc = next as usize;
        }
    }

    /// For many rule sets, the program agrees with the v1 semantics on every
    /// request in a grid of devices and accesses.
    #[test]
    fn program_decides_like_the_v1_kernel() {
        let sets: Vec<Vec<DeviceRule>> = vec![
            default_devices(),
            vec![],
            vec![DeviceRule::allow_all()],
            ["c 1:3 r", "c 1:3 w", "b 8:* rw", "c *:5 m"].iter().map(|l| DeviceRule::parse(l, true).unwrap()).collect(),
            vec![
                DeviceRule::allow_all(),
                DeviceRule::parse("b 8:* rw", false).unwrap(),
                DeviceRule::parse("c 1:1 rwm", false).unwrap(),
                DeviceRule::parse("c *:* m", false).unwrap(),
            ],
            {
                let mut v = default_devices();
                v.push(DeviceRule::parse("c 1:3 w", false).unwrap());
                v
            },
        ];
        let accesses: Vec<Access> = (1..8u8)
            .map(|b| ["", "m", "r", "rm", "w", "wm", "rw", "rwm"][b as usize])
            .map(|s| Access::parse(s).unwrap())
            .collect();
        for rules in &sets {
            let state = DeviceAccess::from_rules(rules);
            let prog = device_program(&state);
            for kind in [DeviceKind::Char, DeviceKind::Block] {
                for (major, minor) in [(1, 1), (1, 3), (1, 5), (5, 2), (8, 0), (8, 17), (136, 7), (4095, 1048575)] {
                    for &a in &accesses {
                        let want = state.allows(kind, major, minor, a);
                        let got = run(&prog, kind, major, minor, a) == 1;
                        assert_eq!(got, want, "rules {rules:?}: {kind:?} {major}:{minor} {a}\n{}", disassemble(&prog));
                    }
                }
            }
        }
    }

    #[test]
    fn disassembly_reads_like_the_verifier() {
        let prog = device_program(&DeviceAccess::from_rules(&[DeviceRule::parse("c 1:3 rw", true).unwrap()]));
        let text = disassemble(&prog);
        assert_eq!(
            text,
            "   0: r2 = *(u32 *)(r1 + 0)\n   1: w2 &= 0xffff\n   2: r3 = *(u32 *)(r1 + 0)\n   3: w3 >>= 16\n\
             \x20  4: r4 = *(u32 *)(r1 + 4)\n   5: r5 = *(u32 *)(r1 + 8)\n   6: if r2 != 2 goto 14\n\
             \x20  7: w1 = w3\n   8: w1 &= 0x6\n   9: if r1 != r3 goto 14\n  10: if r4 != 1 goto 14\n\
             \x20 11: if r5 != 3 goto 14\n  12: w0 = 1\n  13: exit\n  14: w0 = 0\n  15: exit\n"
        );
    }
}
