//! The device allow list: v1 `devices.allow`/`devices.deny` writes, or on cgroup v2 a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program built here instruction by instruction and attached
//! to the container's cgroup with `BPF_F_ALLOW_MULTI` (replacing one barge attached before).
//!
//! The rules are: deny everything, then the spec's rules in order, then the default allow
//! list ([`DEFAULT_ALLOWED`]: the devices every container gets, as runc and Docker give
//! them). The last rule that matches an access decides.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::fs::{io, write};
use super::manager::Cgroup;
use super::CgroupError;

/// The kind of device a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every kind.
    All,
    /// Character devices.
    Char,
    /// Block devices.
    Block,
}

/// One device rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Allow (true) or deny.
    pub allow: bool,
    /// The kind of device.
    pub kind: Kind,
    /// The major number; `None` matches any.
    pub major: Option<u32>,
    /// The minor number; `None` matches any.
    pub minor: Option<u32>,
    /// Access bits: [`ACC_MKNOD`], [`ACC_READ`], [`ACC_WRITE`].
    pub access: u32,
}

/// mknod access (bpf_cgroup_dev_ctx's BPF_DEVCG_ACC_MKNOD).
pub const ACC_MKNOD: u32 = 1;
/// Read access.
pub const ACC_READ: u32 = 2;
/// Write access.
pub const ACC_WRITE: u32 = 4;
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

const fn allow_char(major: u32, minor: Option<u32>, access: u32) -> Rule {
    Rule {
        allow: true,
        kind: Kind::Char,
        major: Some(major),
        minor,
        access,
    }
}

/// The devices every container may use: mknod of any char or block device (creating a node
/// grants nothing without read/write), /dev/null (1:3), zero (1:5), full (1:7), random (1:8),
/// urandom (1:9), tty (5:0), console (5:1), ptmx (5:2) and the pty slaves (136:*).
pub const DEFAULT_ALLOWED: &[Rule] = &[
    Rule {
        allow: true,
        kind: Kind::Char,
        major: None,
        minor: None,
        access: ACC_MKNOD,
    },
    Rule {
        allow: true,
        kind: Kind::Block,
        major: None,
        minor: None,
        access: ACC_MKNOD,
    },
    allow_char(1, Some(3), ACC_ALL),
    allow_char(1, Some(5), ACC_ALL),
    allow_char(1, Some(7), ACC_ALL),
    allow_char(1, Some(8), ACC_ALL),
    allow_char(1, Some(9), ACC_ALL),
    allow_char(5, Some(0), ACC_ALL),
    allow_char(5, Some(1), ACC_ALL),
    allow_char(5, Some(2), ACC_ALL),
    allow_char(136, None, ACC_ALL),
];

fn bad_rule(reason: String) -> CgroupError {
    CgroupError::Invalid {
        field: "devices",
        reason,
    }
}

impl Rule {
    /// The rule for a spec entry; refuses unknown access letters, kinds and negative numbers.
    pub fn from_spec(d: &LinuxDeviceCgroup) -> Result<Rule, CgroupError> {
        let kind = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => Kind::All,
            LinuxDeviceType::C | LinuxDeviceType::U => Kind::Char,
            LinuxDeviceType::B => Kind::Block,
            LinuxDeviceType::P => {
                return Err(bad_rule("type p (fifo) cannot be a device rule".into()))
            }
        };
        let num = |v: Option<i64>, what: &str| -> Result<Option<u32>, CgroupError> {
            match v {
                None | Some(-1) => Ok(None),
                Some(n) => u32::try_from(n)
                    .map(Some)
                    .map_err(|_| bad_rule(format!("{what} {n} is out of range"))),
            }
        };
        let mut access = 0;
        let a = d.access().as_deref().unwrap_or("rwm");
        for c in a.chars() {
            access |= match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => return Err(bad_rule(format!("access {a:?}: only r, w and m"))),
            };
        }
        if access == 0 {
            access = ACC_ALL;
        }
        Ok(Rule {
            allow: d.allow(),
            kind,
            major: num(d.major(), "major")?,
            minor: num(d.minor(), "minor")?,
            access,
        })
    }

    /// The rule in v1's `devices.allow` syntax (`c 1:3 rwm`).
    pub fn to_v1(&self) -> String {
        let k = match self.kind {
            Kind::All => 'a',
            Kind::Char => 'c',
            Kind::Block => 'b',
        };
        let n = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
        let mut a = String::new();
        for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
            if self.access & bit != 0 {
                a.push(c);
            }
        }
        format!("{k} {}:{} {a}", n(self.major), n(self.minor))
    }

    fn is_everything(&self) -> bool {
        self.kind == Kind::All
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ACC_ALL
    }
}

/// The effective rules: deny all, the spec's, then [`DEFAULT_ALLOWED`].
pub fn effective_rules(spec: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>, CgroupError> {
    let mut rules = vec![Rule {
        allow: false,
        kind: Kind::All,
        major: None,
        minor: None,
        access: ACC_ALL,
    }];
    for d in spec {
        rules.push(Rule::from_spec(d)?);
    }
    rules.extend_from_slice(DEFAULT_ALLOWED);
    Ok(rules)
}

/// Applies the effective rules for `spec` to the container's cgroup: v1 devices controller
/// if mounted, else a device program on the cgroup2 directory.
pub(crate) fn apply(cg: &Cgroup, spec: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let rules = effective_rules(spec)?;
    if let Some(d) = cg.v1_dir("devices") {
        return apply_v1(d, &rules);
    }
    if let Some(d) = cg.v2_dir() {
        return attach_v2(d, &rules);
    }
    Ok(())
}

/// v1: a whole-class rule resets the list (`a` to devices.allow or devices.deny), the others
/// add exceptions.
fn apply_v1(dir: &Path, rules: &[Rule]) -> Result<(), CgroupError> {
    for r in rules {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        let v = if r.is_everything() {
            "a".to_string()
        } else {
            r.to_v1()
        };
        write(&dir.join(file), &v)?;
    }
    Ok(())
}

// ---- the eBPF program ----

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// dst in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

// Opcodes (class | op | source).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JMP32_JNE_K: u8 = 0x56; // BPF_JMP32 | BPF_JNE | BPF_K
const JMP32_JEQ_K: u8 = 0x16; // BPF_JMP32 | BPF_JEQ | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// Jump to the end of the current rule block; patched once the block's length is known.
const SKIP: i16 = i16::MAX;

/// The device program for `rules`: the last matching rule decides (1 allow, 0 deny);
/// nothing matching is denied.
///
/// Registers: r2 device type (1 block, 2 char), r3 requested access bits, r4 major,
/// r5 minor, r6 scratch; the context is `struct bpf_cgroup_dev_ctx { u32 access_type
/// (access << 16 | type); u32 major; u32 minor; }`.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU32_MOV_X, 3, 2, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        let mut b = Vec::new();
        match r.kind {
            Kind::All => {}
            Kind::Block => b.push(insn(JMP32_JNE_K, 2, 0, SKIP, 1)),
            Kind::Char => b.push(insn(JMP32_JNE_K, 2, 0, SKIP, 2)),
        }
        if r.access != ACC_ALL {
            b.push(insn(ALU32_MOV_X, 6, 3, 0, 0));
            if r.allow {
                // Allow only when every requested bit is in the rule.
                b.push(insn(ALU32_AND_K, 6, 0, 0, (!r.access & ACC_ALL) as i32));
                b.push(insn(JMP32_JNE_K, 6, 0, SKIP, 0));
            } else {
                // Deny when any requested bit is in the rule.
                b.push(insn(ALU32_AND_K, 6, 0, 0, r.access as i32));
                b.push(insn(JMP32_JEQ_K, 6, 0, SKIP, 0));
            }
        }
        if let Some(m) = r.major {
            b.push(insn(JMP32_JNE_K, 4, 0, SKIP, m as i32));
        }
        if let Some(m) = r.minor {
            b.push(insn(JMP32_JNE_K, 5, 0, SKIP, m as i32));
        }
        b.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(r.allow)));
        b.push(insn(EXIT, 0, 0, 0, 0));
        let n = b.len();
        for (i, x) in b.iter_mut().enumerate() {
            if x.off == SKIP {
                // Jumps are relative to the next instruction; land after this block.
                x.off = (n - i - 1) as i16;
            }
        }
        let everything =
            r.kind == Kind::All && r.access == ACC_ALL && r.major.is_none() && r.minor.is_none();
        p.extend(b);
        if everything {
            // Nothing after an unconditional rule is reachable.
            return p;
        }
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// union bpf_attr, large enough for every command used here; unused bytes stay zero as
/// the kernel requires.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn u32_at(&mut self, off: usize, v: u32) -> &mut Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64_at(&mut self, off: usize, v: u64) -> &mut Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn get_u32(&self, off: usize) -> u32 {
        let mut b = [0; 4];
        b.copy_from_slice(&self.0[off..off + 4]);
        u32::from_ne_bytes(b)
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr, op: &'static str) -> Result<i32, CgroupError> {
    // SAFETY: attr is a zero-padded bpf_attr of 128 bytes that outlives the call; pointers
    // stored in it (instructions, license, log, id array) point to live buffers of the
    // sizes stored next to them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            std::mem::size_of::<Attr>() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(CgroupError::Bpf {
            op,
            source: std::io::Error::last_os_error(),
            log: String::new(),
        });
    }
    Ok(r as i32)
}

fn own(fd: i32) -> OwnedFd {
    // SAFETY: fd was just returned by bpf(2) and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Loads `insns` as a cgroup device program.
pub fn load(insns: &[Insn]) -> Result<OwnedFd, CgroupError> {
    let license = c"Apache-2.0";
    let mut attr = Attr::new();
    attr.u32_at(0, BPF_PROG_TYPE_CGROUP_DEVICE)
        .u32_at(4, insns.len() as u32)
        .u64_at(8, insns.as_ptr() as u64)
        .u64_at(16, license.as_ptr() as u64);
    match bpf(BPF_PROG_LOAD, &mut attr, "PROG_LOAD") {
        Ok(fd) => Ok(own(fd)),
        Err(CgroupError::Bpf { op, source, .. }) => {
            // Again with the verifier's log, for the error message.
            let mut log = vec![0u8; 16 * 1024];
            attr.u32_at(24, 1)
                .u32_at(28, log.len() as u32)
                .u64_at(32, log.as_mut_ptr() as u64);
            let _ = bpf(BPF_PROG_LOAD, &mut attr, "PROG_LOAD").map(own);
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
            Err(CgroupError::Bpf {
                op,
                source,
                log: if text.is_empty() {
                    String::new()
                } else {
                    format!("\n{text}")
                },
            })
        }
        Err(e) => Err(e),
    }
}

/// The ids of the device programs attached to the cgroup `dir_fd`.
fn attached(dir_fd: i32) -> Result<Vec<u32>, CgroupError> {
    let mut ids = vec![0u32; 64];
    let mut attr = Attr::new();
    attr.u32_at(0, dir_fd as u32)
        .u32_at(4, BPF_CGROUP_DEVICE)
        .u64_at(16, ids.as_mut_ptr() as u64)
        .u32_at(24, ids.len() as u32);
    bpf(BPF_PROG_QUERY, &mut attr, "PROG_QUERY")?;
    ids.truncate(attr.get_u32(24) as usize);
    Ok(ids)
}

/// Builds, loads and attaches the program for `rules` to the cgroup2 directory `dir`, then
/// detaches the device programs that were there before (an update replaces them; with
/// several attached, each would have to allow an access).
pub fn attach_v2(dir: &Path, rules: &[Rule]) -> Result<(), CgroupError> {
    let cg = std::fs::File::open(dir).map_err(io(dir))?;
    let cg_fd = cg.as_raw_fd();
    let before = attached(cg_fd)?;
    let prog = load(&program(rules))?;
    let mut attr = Attr::new();
    attr.u32_at(0, cg_fd as u32)
        .u32_at(4, prog.as_raw_fd() as u32)
        .u32_at(8, BPF_CGROUP_DEVICE)
        .u32_at(12, BPF_F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut attr, "PROG_ATTACH")?;
    for id in before {
        let mut a = Attr::new();
        a.u32_at(0, id);
        let old = own(bpf(BPF_PROG_GET_FD_BY_ID, &mut a, "PROG_GET_FD_BY_ID")?);
        let mut d = Attr::new();
        d.u32_at(0, cg_fd as u32)
            .u32_at(4, old.as_raw_fd() as u32)
            .u32_at(8, BPF_CGROUP_DEVICE);
        bpf(BPF_PROG_DETACH, &mut d, "PROG_DETACH")?;
    }
    Ok(())
}

/// The number of device programs attached to the cgroup2 directory `dir` (for tests and
/// diagnostics).
pub fn attached_count(dir: &Path) -> Result<usize, CgroupError> {
    let f = std::fs::File::open(dir).map_err(io(dir))?;
    Ok(attached(f.as_raw_fd())?.len())
}
