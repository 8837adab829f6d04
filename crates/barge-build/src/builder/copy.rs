//! COPY and ADD: sources resolved beneath the context (or inside a stage's rootfs),
//! hashed for the cache, then written into the build rootfs without following symlinks
//! out of it.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use barge_image::digest::Hasher;
use barge_image::image::LayerRecord;
use barge_image::Digest;

use super::chmod::Chmod;
use super::fetch::{fetch, is_url, parse_checksum};
use super::git::{self, is_git, GitSource};
use super::{BuildError, Run, Snap, State};
use crate::ast::{Command, Instruction};
use crate::fsutil::{self, BENEATH, IN_ROOT, NO_SYMLINKS};

/// File metadata kept from a source.
#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    size: i64,
    st: libc::stat,
}

impl Meta {
    fn of(st: libc::stat) -> Meta {
        Meta {
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size,
            st,
        }
    }
    fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
}

struct Entry {
    /// Path below the item's top ("" for the top itself).
    rel: String,
    meta: Meta,
    link: Option<Vec<u8>>,
}

struct Item {
    /// The resolved path of the source below the source root.
    top: String,
    /// Its base name (what a file is called in a directory destination).
    name: String,
    is_dir: bool,
    entries: Vec<Entry>,
    /// Inline content (heredoc source, download).
    data: Option<Vec<u8>>,
    /// `--parents`: the source's path below the context (or below its `./` pivot),
    /// kept under the destination.
    parents: Option<String>,
}

/// Where the sources are read from.
enum SourceRoot<'a> {
    Context,
    /// A mounted stage or image (the fd first: it must close before the unmount).
    Rootfs {
        fd: OwnedFd,
        _snap: Snap<'a>,
    },
    /// A git checkout (the fd first: it must close before the directory goes).
    Git {
        fd: OwnedFd,
        _dir: RemoveOnDrop,
    },
    /// A git source resolved to `commit` but not fetched yet (a cache hit never is).
    GitPending {
        src: String,
        git: GitSource,
        commit: String,
        keep: bool,
        excl: Option<crate::DockerIgnore>,
    },
}

/// A private directory of the builder, removed (with what is in it) on drop.
pub(crate) struct RemoveOnDrop(pub(crate) std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A COPY/ADD resolved and hashed, ready to run.
pub(crate) struct CopyPlan<'a> {
    pub(crate) hash: Digest,
    /// The absolute destination as given (a trailing `/` kept).
    pub(crate) dest: String,
    dest_dir: bool,
    items: Vec<Item>,
    root: SourceRoot<'a>,
    chown: Option<String>,
    chmod: Option<Chmod>,
    add: bool,
    /// `--link`: the layer is made on an empty snapshot, independent of the stage's.
    pub(crate) link: bool,
}

impl CopyPlan<'_> {
    /// Docker's `file:<hash>` / `dir:<hash>` / `multi:<hash>` in history.
    pub(crate) fn describe(&self) -> String {
        let kind = match self.items.as_slice() {
            [i] if i.is_dir => "dir",
            [_] => "file",
            _ => "multi",
        };
        format!("{kind}:{}", self.hash.hex())
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// Resolves `user[:group]` against the rootfs' `/etc/passwd` and `/etc/group`.
pub(crate) fn resolve_user(root: RawFd, spec: &str) -> Result<(u32, u32), String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let read = |p: &str| -> Result<String, String> {
        Ok(fsutil::read_in_root(root, p)
            .map_err(|e| format!("read {p}: {e}"))?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default())
    };
    let passwd = read("etc/passwd")?;
    let find_user = |name: &str| {
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0] == name)
                .then(|| (f[2].parse::<u32>().ok(), f[3].parse::<u32>().ok()))
        })
    };
    let (uid, pgid) = if user.is_empty() {
        (0, 0)
    } else if let Ok(n) = user.parse::<u32>() {
        let gid = passwd
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 4 && f[2] == user)
                    .then(|| f[3].parse::<u32>().ok())
                    .flatten()
            })
            .unwrap_or(0);
        (n, gid)
    } else {
        match find_user(user) {
            Some((Some(u), Some(g))) => (u, g),
            _ => {
                return Err(format!(
                    "unable to find user {user}: no matching entries in passwd file"
                ))
            }
        }
    };
    let gid = match group {
        None => pgid,
        Some("") => pgid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let groups = read("etc/group")?;
                groups
                    .lines()
                    .find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() >= 3 && f[0] == g)
                            .then(|| f[2].parse::<u32>().ok())
                            .flatten()
                    })
                    .ok_or_else(|| {
                        format!("unable to find group {g}: no matching entries in group file")
                    })?
            }
        },
    };
    Ok((uid, gid))
}

impl<'a> Run<'a> {
    /// Resolves and hashes the sources of a COPY/ADD (`cmd` expanded).
    pub(crate) fn plan_copy(
        &self,
        st: &State,
        cmd: &Command,
        inst: &Instruction,
    ) -> Result<CopyPlan<'a>, BuildError> {
        let kw = inst.keyword;
        let (sources, inline, dest, from, chown, chmod, add) = match cmd {
            Command::Copy(c) => (
                &c.sources,
                &c.inline,
                &c.dest,
                c.from.clone(),
                c.chown.clone(),
                c.chmod.clone(),
                false,
            ),
            Command::Add(a) => (
                &a.sources,
                &a.inline,
                &a.dest,
                None,
                a.chown.clone(),
                a.chmod.clone(),
                true,
            ),
            _ => return Err(self.step_err(inst, "not a COPY or ADD")),
        };
        let (parents, link) = match cmd {
            Command::Copy(c) => (c.parents, c.link),
            Command::Add(a) => (false, a.link),
            _ => (false, false),
        };
        let checksum = match cmd {
            Command::Add(a) => a
                .checksum
                .as_deref()
                .map(parse_checksum)
                .transpose()
                .map_err(|e| self.step_err(inst, e))?,
            _ => None,
        };
        if checksum.is_some() && !sources.iter().all(|s| is_url(s)) {
            return Err(self.step_err(
                inst,
                "ADD --checksum is only for http(s) sources: a local source is hashed from the context",
            ));
        }
        let patterns: &[String] = match cmd {
            Command::Copy(c) => &c.exclude,
            Command::Add(a) => &a.exclude,
            _ => &[],
        };
        let excl = if patterns.is_empty() {
            None
        } else {
            Some(
                crate::DockerIgnore::from_patterns(patterns)
                    .map_err(|e| self.step_err(inst, format!("--exclude: {e}")))?,
            )
        };
        let chmod = chmod
            .as_deref()
            .map(Chmod::parse)
            .transpose()
            .map_err(|e| self.step_err(inst, e))?;
        let workdir = st.config["config"]["WorkingDir"]
            .as_str()
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string();
        let dest_abs = if dest.starts_with('/') {
            dest.clone()
        } else {
            format!("{}/{dest}", workdir.trim_end_matches('/'))
        };
        // With --parents the destination is always a directory (sources keep their paths).
        let dest_dir = parents
            || dest.ends_with('/')
            || dest == "."
            || dest.ends_with("/.")
            || dest.is_empty();
        if add {
            if let Some(src) = sources.iter().find(|s| is_git(s)) {
                if sources.len() > 1 || !inline.is_empty() {
                    return Err(
                        self.step_err(inst, "ADD of a git repository takes it as its only source")
                    );
                }
                if checksum.is_some() {
                    return Err(self.step_err(
                        inst,
                        "ADD --checksum is only for http(s) sources: a git source is pinned by its #ref",
                    ));
                }
                let keep = matches!(cmd, Command::Add(a) if a.keep_git_dir == Some(true));
                let (hash, item, root) = self
                    .fetch_git(src, keep, excl)
                    .map_err(|e| self.git_err(inst, e))?;
                return Ok(CopyPlan {
                    hash,
                    dest: dest_abs,
                    dest_dir: true,
                    items: vec![item],
                    root,
                    chown,
                    chmod,
                    add,
                    link,
                });
            }
        }
        let root = match &from {
            None => SourceRoot::Context,
            Some(f) => {
                let state = self.state_for_from(f, inst)?;
                let snap = Snap::new(self.b, &state.layers)?;
                let fd = fsutil::open_root(&snap.rootfs())
                    .map_err(|e| self.step_err(inst, format!("--from={f}: {e}")))?;
                SourceRoot::Rootfs { fd, _snap: snap }
            }
        };
        let (root_fd, resolve, ctx) = match &root {
            SourceRoot::Context => (self.ctx_fd.as_raw_fd(), BENEATH, true),
            SourceRoot::Rootfs { fd, .. } => (fd.as_raw_fd(), IN_ROOT, false),
            SourceRoot::Git { fd, .. } => (fd.as_raw_fd(), BENEATH, false),
            SourceRoot::GitPending { .. } => {
                return Err(self.step_err(inst, "a git source is planned on its own"))
            }
        };
        let root_path = fsutil::fd_path(root_fd).map_err(|e| self.step_err(inst, e))?;
        let mut items = Vec::new();
        let mut count = 0usize;
        for src in sources {
            if is_url(src) {
                if add {
                    let dl = fetch(src, checksum.as_ref())
                        .map_err(|e| self.step_err(inst, format!("ADD {src}: {e}")))?;
                    count += 1;
                    // SAFETY: stat is plain old data; zeroed is a valid value.
                    let mut st: libc::stat = unsafe { std::mem::zeroed() };
                    // Docker gives downloaded files mode 0600 and Last-Modified as mtime.
                    st.st_mode = libc::S_IFREG | 0o600;
                    st.st_size = dl.data.len() as i64;
                    if let Some(t) = dl.modified {
                        let secs = t
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs() as i64)
                            .unwrap_or(0);
                        st.st_mtime = secs;
                        st.st_atime = secs;
                    }
                    items.push(Item {
                        top: String::new(),
                        name: dl.name,
                        is_dir: false,
                        entries: vec![Entry {
                            rel: String::new(),
                            meta: Meta::of(st),
                            link: None,
                        }],
                        data: Some(dl.data),
                        parents: None,
                    });
                    continue;
                }
                return Err(
                    self.step_err(inst, format!("COPY does not accept URLs ({src}): use ADD"))
                );
            }
            // --parents: a `/./` in the source is the pivot; what is above it is not kept.
            let (pivot, src) = match (parents, src.find("/./")) {
                (true, Some(i)) => (fsutil::clean(&src[..i]).map_or(0, |p| p.len()), src),
                _ => (0, src),
            };
            let parts = match fsutil::clean(src) {
                Some(p) => p,
                None if ctx => {
                    return Err(self.step_err(
                        inst,
                        format!("forbidden path outside the build context: {src}"),
                    ))
                }
                None => src
                    .split('/')
                    .filter(|c| !c.is_empty() && *c != "." && *c != "..")
                    .collect(),
            };
            let globbed = parts.iter().any(|p| fsutil::has_glob(p));
            let mut cands = vec![String::new()];
            for part in &parts {
                if fsutil::has_glob(part) {
                    let mut next = Vec::new();
                    for c in &cands {
                        let Ok(dfd) = fsutil::openat2(
                            root_fd,
                            c,
                            libc::O_RDONLY | libc::O_DIRECTORY,
                            resolve,
                        ) else {
                            continue;
                        };
                        let names = fsutil::read_names(dfd.as_raw_fd())
                            .map_err(|e| self.step_err(inst, e))?;
                        for n in names {
                            if fsutil::glob_match(part, &n) {
                                let p = join(c, &n);
                                if ctx && self.ignore.matches(&p, false) {
                                    continue;
                                }
                                next.push(p);
                            }
                        }
                    }
                    cands = next;
                } else {
                    for c in cands.iter_mut() {
                        *c = join(c, part);
                    }
                }
            }
            if cands.is_empty() && globbed {
                return Err(self.step_err(
                    inst,
                    format!("no source files were specified ({src} matches nothing)"),
                ));
            }
            for c in cands {
                let mut item = self
                    .resolve_item(root_fd, &root_path, &c, resolve, ctx, src, excl.as_ref())
                    .map_err(|e| self.step_err(inst, e))?;
                if parents {
                    let kept: Vec<&str> = c.split('/').skip(pivot).collect();
                    item.parents = Some(kept.join("/"));
                }
                if let Some(x) = &excl {
                    if !item.is_dir && (x.matches(&item.top, false) || x.matches(&item.name, false))
                    {
                        continue;
                    }
                }
                count += 1;
                items.push(item);
            }
        }
        for i in inline {
            count += 1;
            // SAFETY: stat is plain old data; zeroed is a valid value.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            st.st_mode = libc::S_IFREG | 0o644;
            st.st_size = i.data.len() as i64;
            items.push(Item {
                top: String::new(),
                name: i.path.clone(),
                is_dir: false,
                entries: vec![Entry {
                    rel: String::new(),
                    meta: Meta::of(st),
                    link: None,
                }],
                data: Some(i.data.clone().into_bytes()),
                parents: None,
            });
        }
        if count > 1 && !dest_dir {
            return Err(self.step_err(
                inst,
                format!("When using {kw} with more than one source file, the destination must be a directory and end with a /"),
            ));
        }
        let hash = self
            .hash_items(root_fd, &items)
            .map_err(|e| self.step_err(inst, e))?;
        Ok(CopyPlan {
            hash,
            dest: dest_abs,
            dest_dir,
            items,
            root,
            chown,
            chmod,
            add,
            link,
        })
    }

    /// `ADD <git url>`: the cache key is the commit its ref names (with the subdir and
    /// --keep-git-dir), so a new commit on a branch is a miss and an unchanged one a hit.
    /// The commit comes from `git ls-remote`, and the repository is only fetched when the
    /// step runs ([`SourceRoot::GitPending`]); a ref ls-remote does not list (a commit id)
    /// is fetched now to learn its commit.
    fn fetch_git(
        &self,
        src: &str,
        keep: bool,
        excl: Option<crate::DockerIgnore>,
    ) -> Result<(Digest, Item, SourceRoot<'a>), String> {
        let g = GitSource::parse(src)?;
        let cancel = self.opts.cancel.as_deref();
        let (commit, item, root) = match git::resolve(&g, &self.b.root.join("tmp"), cancel)? {
            Some(commit) => {
                // Stands for the checkout's top directory until the step runs.
                let item = Item {
                    top: String::new(),
                    name: String::new(),
                    is_dir: true,
                    entries: Vec::new(),
                    data: None,
                    parents: None,
                };
                let root = SourceRoot::GitPending {
                    src: src.to_string(),
                    git: g.clone(),
                    commit: commit.clone(),
                    keep,
                    excl,
                };
                (commit, item, root)
            }
            None => self.checkout_git(&g, None, src, keep, excl.as_ref())?,
        };
        let sub = g.subdir.clone().unwrap_or_default();
        let mut h = Hasher::new();
        h.update(format!("git\0{}\0{commit}\0{sub}\0{keep}\0", g.url).as_bytes());
        Ok((h.finish(), item, root))
    }

    /// Checks `g` out (at `pinned` if given) in a private directory, removed when the
    /// returned root drops; returns the commit, the item for its subdir, and the root.
    fn checkout_git(
        &self,
        g: &GitSource,
        pinned: Option<&str>,
        src: &str,
        keep: bool,
        excl: Option<&crate::DockerIgnore>,
    ) -> Result<(String, Item, SourceRoot<'a>), String> {
        let dir = RemoveOnDrop(self.b.root.join("tmp").join(super::unique("git-")));
        let commit = git::checkout(g, pinned, &dir.0, keep, self.opts.cancel.as_deref())?;
        let fd = fsutil::open_root(&dir.0).map_err(|e| format!("{}: {e}", dir.0.display()))?;
        let root_path = fsutil::fd_path(fd.as_raw_fd()).map_err(|e| e.to_string())?;
        let sub = g.subdir.clone().unwrap_or_default();
        if !sub.is_empty() && fsutil::openat2(fd.as_raw_fd(), &sub, libc::O_PATH, BENEATH).is_err()
        {
            return Err(format!(
                "no directory {sub:?} in {} at commit {commit}",
                g.display_url()
            ));
        }
        let item =
            self.resolve_item(fd.as_raw_fd(), &root_path, &sub, BENEATH, false, src, excl)?;
        Ok((commit, item, SourceRoot::Git { fd, _dir: dir }))
    }

    /// A git error as a build error: the build's own when it was cancelled.
    fn git_err(&self, inst: &Instruction, e: String) -> BuildError {
        if e == git::CANCELLED {
            BuildError::Cancelled
        } else {
            self.step_err(inst, e)
        }
    }

    /// What RUN's bind mounts bring in, for its cache key: the content of context
    /// sources, the cache key of stage sources.
    pub(super) fn bind_sources_hash(
        &self,
        sc: &super::StageCtx,
        inst: &Instruction,
        r: &crate::ast::Run,
    ) -> Result<Digest, BuildError> {
        let mut h = Hasher::new();
        let lexer = self.df.lexer();
        for spec in &r.mounts {
            let m = spec
                .resolve(&lexer, &sc.scope)
                .map_err(|e| self.step_err(inst, e))?;
            if m.kind != crate::mount::MountType::Bind {
                continue;
            }
            let src = m.source.clone().unwrap_or_default();
            match &m.from {
                Some(f) => {
                    let st = self.state_for_from(f, inst)?;
                    h.update(format!("stage\0{}\0{src}\0", st.key).as_bytes());
                }
                None => {
                    if fsutil::clean(&src).is_none() {
                        return Err(self.step_err(
                            inst,
                            format!("forbidden path outside the build context: {src}"),
                        ));
                    }
                    let root = self.ctx_fd.as_raw_fd();
                    let root_path = fsutil::fd_path(root).map_err(|e| self.step_err(inst, e))?;
                    let item = self
                        .resolve_item(root, &root_path, &src, BENEATH, true, &src, None)
                        .map_err(|e| self.step_err(inst, e))?;
                    let d = self
                        .hash_items(root, std::slice::from_ref(&item))
                        .map_err(|e| self.step_err(inst, e))?;
                    h.update(format!("context\0{src}\0{}\0", d.hex()).as_bytes());
                }
            }
        }
        Ok(h.finish())
    }

    pub(super) fn state_for_from(
        &self,
        f: &str,
        inst: &Instruction,
    ) -> Result<Arc<State>, BuildError> {
        // The graph resolved --from on this line; else a stage name or index; else an image.
        for node in &self.graph.stages {
            for (dep, line) in &node.refs {
                if *line == inst.start_line {
                    if let crate::StageDep::Stage(j) = dep {
                        if self.df.stages[*j].name.as_deref() == Some(&f.to_ascii_lowercase())
                            || f.parse::<usize>() == Ok(*j)
                        {
                            return self.result(*j).ok_or_else(|| {
                                self.step_err(inst, format!("stage {f} was not built"))
                            });
                        }
                    }
                }
            }
        }
        if let Ok(j) = f.parse::<usize>() {
            if let Some(s) = self.result(j) {
                return Ok(s);
            }
        }
        if let Some(s) = self.df.stage(f) {
            if let Some(r) = self.result(s.index) {
                return Ok(r);
            }
        }
        self.image_state(f).map(Arc::new).map_err(|e| {
            self.step_err(
                inst,
                format!("--from={f}: no stage or image named {f:?}: {e}"),
            )
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn resolve_item(
        &self,
        root: RawFd,
        root_path: &std::path::Path,
        path: &str,
        resolve: u64,
        ctx: bool,
        src: &str,
        excl: Option<&crate::DockerIgnore>,
    ) -> Result<Item, String> {
        let not_found = || {
            format!("file not found in build context or excluded by .dockerignore: stat {src}: file does not exist")
        };
        let fd = match fsutil::openat2(root, path, libc::O_PATH, resolve) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(not_found()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EXDEV) | Some(libc::ELOOP)) => {
                return Err(format!(
                    "forbidden path outside the build context: {src} (a symbolic link leads out of it)"
                ))
            }
            Err(e) => return Err(format!("{src}: {e}")),
        };
        let real = fsutil::fd_path(fd.as_raw_fd()).map_err(|e| format!("{src}: {e}"))?;
        let top = real
            .strip_prefix(root_path)
            .map_err(|_| format!("forbidden path outside the build context: {src}"))?
            .to_str()
            .ok_or_else(|| format!("{src}: path is not UTF-8"))?
            .to_string();
        if ctx && !top.is_empty() && self.ignore.matches(&top, false) {
            return Err(not_found());
        }
        let meta = Meta::of(fsutil::fstat(fd.as_raw_fd()).map_err(|e| format!("{src}: {e}"))?);
        let is_dir = meta.kind() == libc::S_IFDIR;
        let name = top
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("")
            .to_string();
        let mut entries = vec![Entry {
            rel: String::new(),
            meta,
            link: None,
        }];
        if is_dir {
            self.walk(root, &top, "", ctx, excl, &mut entries)
                .map_err(|e| format!("{src}: {e}"))?;
        }
        Ok(Item {
            top,
            name,
            is_dir,
            entries,
            data: None,
            parents: None,
        })
    }

    fn walk(
        &self,
        root: RawFd,
        top: &str,
        rel: &str,
        ctx: bool,
        excl: Option<&crate::DockerIgnore>,
        out: &mut Vec<Entry>,
    ) -> std::io::Result<()> {
        let dfd = fsutil::openat2(
            root,
            &join(top, rel),
            libc::O_RDONLY | libc::O_DIRECTORY,
            BENEATH | NO_SYMLINKS,
        )?;
        for name in fsutil::read_names(dfd.as_raw_fd())? {
            let st = fsutil::lstat_at(dfd.as_raw_fd(), &name)?;
            let meta = Meta::of(st);
            let child = join(rel, &name);
            let is_dir = meta.kind() == libc::S_IFDIR;
            if ctx {
                let full = join(top, &child);
                if self.ignore.matches(&full, is_dir)
                    && !(is_dir && self.ignore.may_reinclude_under(&full))
                {
                    continue;
                }
            }
            if let Some(x) = excl {
                if x.matches(&child, is_dir) && !(is_dir && x.may_reinclude_under(&child)) {
                    continue;
                }
            }
            let link = if meta.kind() == libc::S_IFLNK {
                Some(fsutil::readlink_at(dfd.as_raw_fd(), &name)?)
            } else {
                None
            };
            out.push(Entry {
                rel: child.clone(),
                meta,
                link,
            });
            if is_dir {
                self.walk(root, top, &child, ctx, excl, out)?;
            }
        }
        Ok(())
    }

    fn hash_items(&self, root: RawFd, items: &[Item]) -> std::io::Result<Digest> {
        let mut h = Hasher::new();
        let mut buf = vec![0u8; 64 << 10];
        for it in items {
            h.update(format!("item\0{}\0{}\0", it.name, it.is_dir).as_bytes());
            if let Some(d) = &it.data {
                h.update(d);
                continue;
            }
            for e in &it.entries {
                let m = &e.meta;
                h.update(
                    format!(
                        "{}\0{:o}\0{}\0{}\0{}\0",
                        e.rel, m.mode, m.uid, m.gid, m.size
                    )
                    .as_bytes(),
                );
                if let Some(l) = &e.link {
                    h.update(l);
                }
                if m.kind() == libc::S_IFREG {
                    let fd = fsutil::openat2(
                        root,
                        &join(&it.top, &e.rel),
                        libc::O_RDONLY | libc::O_NOFOLLOW,
                        BENEATH | NO_SYMLINKS,
                    )?;
                    let mut f = std::fs::File::from(fd);
                    loop {
                        let n = f.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                    }
                }
            }
        }
        Ok(h.finish())
    }

    /// Runs a planned COPY/ADD on a snapshot of `st`; returns the new layer.
    pub(crate) fn copy_step(
        &self,
        st: &State,
        inst: &Instruction,
        mut plan: CopyPlan<'a>,
    ) -> Result<LayerRecord, BuildError> {
        // A git source is fetched now, at the commit its cache key names.
        if let SourceRoot::GitPending { .. } = plan.root {
            if let SourceRoot::GitPending {
                src,
                git,
                commit,
                keep,
                excl,
            } = std::mem::replace(&mut plan.root, SourceRoot::Context)
            {
                let (_, item, root) = self
                    .checkout_git(&git, Some(&commit), &src, keep, excl.as_ref())
                    .map_err(|e| self.git_err(inst, e))?;
                plan.items = vec![item];
                plan.root = root;
            }
        }
        // --link: the files go into an empty snapshot, so the layer depends on nothing
        // below it (a symlink in the stage's rootfs is not followed; parents are made).
        let snap = Snap::new(self.b, if plan.link { &[] } else { &st.layers })?;
        let root = fsutil::open_root(&snap.rootfs()).map_err(|e| self.step_err(inst, e))?;
        let owner = match plan.chown.as_deref() {
            None => None,
            // Names are looked up in the stage's /etc/passwd, also with --link.
            Some(c) if plan.link && !c.split(':').all(|p| p.parse::<u32>().is_ok()) => {
                let base = Snap::new(self.b, &st.layers)?;
                let bfd = fsutil::open_root(&base.rootfs()).map_err(|e| self.step_err(inst, e))?;
                Some(resolve_user(bfd.as_raw_fd(), c).map_err(|e| self.step_err(inst, e))?)
            }
            Some(c) => Some(resolve_user(root.as_raw_fd(), c).map_err(|e| self.step_err(inst, e))?),
        };
        let src_root = match &plan.root {
            SourceRoot::Context => self.ctx_fd.as_raw_fd(),
            SourceRoot::Rootfs { fd, .. } | SourceRoot::Git { fd, .. } => fd.as_raw_fd(),
            SourceRoot::GitPending { .. } => {
                return Err(self.step_err(inst, "the git source was not fetched"))
            }
        };
        let w = Writer {
            root: root.as_raw_fd(),
            owner,
            chmod: plan.chmod.clone(),
        };
        for it in &plan.items {
            let res = if let Some(rel) = &it.parents {
                let target = join(plan.dest.trim_end_matches('/'), rel);
                if it.is_dir {
                    w.tree(src_root, &it.top, &it.entries, &target, false)
                } else {
                    w.file(src_root, it, &target)
                }
            } else if plan.add && !it.is_dir && it.data.is_none() && self.is_archive(src_root, it) {
                self.extract(src_root, it, &plan.dest, &w)
            } else if it.is_dir {
                w.tree(src_root, &it.top, &it.entries, &plan.dest, false)
            } else {
                let dest_is_dir = plan.dest_dir
                    || fsutil::openat2(
                        root.as_raw_fd(),
                        &plan.dest,
                        libc::O_PATH | libc::O_DIRECTORY,
                        IN_ROOT,
                    )
                    .is_ok();
                let target = if dest_is_dir {
                    format!("{}/{}", plan.dest.trim_end_matches('/'), it.name)
                } else {
                    plan.dest.trim_end_matches('/').to_string()
                };
                w.file(src_root, it, &target)
            };
            res.map_err(|e| self.step_err(inst, e))?;
        }
        drop(root);
        drop(plan);
        snap.commit(self.lease)
    }

    fn is_archive(&self, root: RawFd, it: &Item) -> bool {
        let Ok(fd) = fsutil::openat2(
            root,
            &it.top,
            libc::O_RDONLY | libc::O_NOFOLLOW,
            BENEATH | NO_SYMLINKS,
        ) else {
            return false;
        };
        let mut head = vec![0u8; 512];
        let mut f = std::fs::File::from(fd);
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        head.truncate(n);
        is_archive_head(&head)
    }

    /// ADD of a local tar: unpacked (confined) into a private directory, then copied.
    fn extract(&self, root: RawFd, it: &Item, dest: &str, w: &Writer) -> Result<(), String> {
        let fd = fsutil::openat2(
            root,
            &it.top,
            libc::O_RDONLY | libc::O_NOFOLLOW,
            BENEATH | NO_SYMLINKS,
        )
        .map_err(|e| format!("{}: {e}", it.top))?;
        let tmp = self.b.root.join("tmp").join(super::unique("add-"));
        std::fs::create_dir(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let res = (|| {
            barge_image::unpack::unpack(
                std::fs::File::from(fd),
                &tmp,
                &it.top,
                &barge_image::unpack::UnpackOptions::default(),
            )
            .map_err(|e| e.to_string())?;
            let tfd = fsutil::open_root(&tmp).map_err(|e| e.to_string())?;
            let mut entries = vec![];
            self.walk(tfd.as_raw_fd(), "", "", false, None, &mut entries)
                .map_err(|e| e.to_string())?;
            w.tree(tfd.as_raw_fd(), "", &entries, dest, true)
        })();
        let _ = std::fs::remove_dir_all(&tmp);
        res
    }
}

/// Whether the first 512 bytes of a file are those of an archive ADD unpacks (and a
/// remote context is): gzip, zstd or a tar header.
pub(crate) fn is_archive_head(head: &[u8]) -> bool {
    matches!(head, [0x1f, 0x8b, ..] | [0x28, 0xb5, 0x2f, 0xfd, ..])
        || (head.len() >= 262 && &head[257..262] == b"ustar")
}

/// Writes entries into the build rootfs.
struct Writer {
    root: RawFd,
    owner: Option<(u32, u32)>,
    chmod: Option<Chmod>,
}

impl Writer {
    fn ids(&self, m: &Meta, keep: bool) -> (u32, u32) {
        match self.owner {
            Some(o) => o,
            None if keep => (m.uid, m.gid),
            None => (0, 0),
        }
    }

    fn mode(&self, m: &Meta) -> u32 {
        match &self.chmod {
            Some(c) => c.apply(m.mode, m.kind() == libc::S_IFDIR),
            None => m.mode & 0o7777,
        }
    }

    fn parent(&self, path: &str) -> Result<(OwnedFd, String), String> {
        let path = path.trim_end_matches('/');
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", path),
        };
        if name.is_empty() || name == "." || name == ".." {
            return Err(format!("invalid destination {path:?}"));
        }
        let fd =
            fsutil::mkdir_all_in_root(self.root, dir, None).map_err(|e| format!("{dir}: {e}"))?;
        Ok((fd, name.to_string()))
    }

    /// One file (or inline data) to `target`.
    fn file(&self, src_root: RawFd, it: &Item, target: &str) -> Result<(), String> {
        let (pfd, name) = self.parent(target)?;
        let e = it.entries.first().ok_or("empty source")?;
        match &it.data {
            Some(d) => {
                fsutil::clear_for_file(pfd.as_raw_fd(), &name, target)
                    .map_err(|e| e.to_string())?;
                let fd = self.create(&pfd, &name, target)?;
                let mut f = std::fs::File::from(fd);
                f.write_all(d).map_err(|e| format!("{target}: {e}"))?;
                let (u, g) = self.ids(&e.meta, false);
                fsutil::set_owner_mode(&f.into(), u, g, self.mode(&e.meta))
                    .map_err(|e| format!("{target}: {e}"))?;
                if e.meta.st.st_mtime != 0 {
                    // A download's Last-Modified.
                    fsutil::set_times_at(pfd.as_raw_fd(), &name, &e.meta.st)
                        .map_err(|e| format!("{target}: {e}"))?;
                }
                Ok(())
            }
            None => self.entry(src_root, &it.top, e, &pfd, &name, target, false),
        }
    }

    fn create(&self, pfd: &OwnedFd, name: &str, target: &str) -> Result<OwnedFd, String> {
        fsutil::openat2(
            pfd.as_raw_fd(),
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            BENEATH | NO_SYMLINKS,
        )
        .map_err(|e| format!("{target}: {e}"))
    }

    /// A directory's entries below `dest` (the directory itself becomes `dest`).
    fn tree(
        &self,
        src_root: RawFd,
        top: &str,
        entries: &[Entry],
        dest: &str,
        keep: bool,
    ) -> Result<(), String> {
        let dest = dest.trim_end_matches('/');
        let base =
            fsutil::mkdir_all_in_root(self.root, dest, None).map_err(|e| format!("{dest}: {e}"))?;
        drop(base);
        let mut cache: Option<(String, OwnedFd)> = None;
        for e in entries.iter().filter(|e| !e.rel.is_empty()) {
            let (dir, name) = match e.rel.rsplit_once('/') {
                Some((d, n)) => (d, n),
                None => ("", e.rel.as_str()),
            };
            let pdir = join(dest.trim_start_matches('/'), dir);
            let fresh = !matches!(&cache, Some((p, _)) if *p == pdir);
            if fresh {
                let fd =
                    fsutil::openat2(self.root, &pdir, libc::O_PATH | libc::O_DIRECTORY, IN_ROOT)
                        .map_err(|err| format!("{pdir}: {err}"))?;
                cache = Some((pdir.clone(), fd));
            }
            let Some((_, pfd)) = &cache else { continue };
            let target = format!("/{}", join(&pdir, name));
            self.entry(src_root, top, e, pfd, name, &target, keep)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn entry(
        &self,
        src_root: RawFd,
        top: &str,
        e: &Entry,
        pfd: &OwnedFd,
        name: &str,
        target: &str,
        keep: bool,
    ) -> Result<(), String> {
        let p = pfd.as_raw_fd();
        let (u, g) = self.ids(&e.meta, keep);
        let err = |x: std::io::Error| format!("{target}: {x}");
        match e.meta.kind() {
            libc::S_IFDIR => {
                fsutil::mkdir_at(p, name, 0o755).map_err(err)?;
                let fd = fsutil::openat2(
                    p,
                    name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    BENEATH | NO_SYMLINKS,
                )
                .map_err(err)?;
                fsutil::set_owner_mode(&fd, u, g, self.mode(&e.meta)).map_err(err)?;
            }
            libc::S_IFREG => {
                fsutil::clear_for_file(p, name, target).map_err(err)?;
                let src = fsutil::openat2(
                    src_root,
                    &join(top, &e.rel),
                    libc::O_RDONLY | libc::O_NOFOLLOW,
                    BENEATH | NO_SYMLINKS,
                )
                .map_err(err)?;
                let dst = self.create(pfd, name, target)?;
                let mut sf = std::fs::File::from(src);
                let mut df = std::fs::File::from(dst);
                std::io::copy(&mut sf, &mut df).map_err(err)?;
                let dst: OwnedFd = df.into();
                fsutil::set_owner_mode(&dst, u, g, self.mode(&e.meta)).map_err(err)?;
                fsutil::set_times_at(p, name, &e.meta.st).map_err(err)?;
            }
            libc::S_IFLNK => {
                fsutil::clear_for_file(p, name, target).map_err(err)?;
                let l = e.link.as_deref().unwrap_or_default();
                fsutil::symlink_at(l, p, name).map_err(err)?;
                fsutil::lchown_at(p, name, u, g).map_err(err)?;
                fsutil::set_times_at(p, name, &e.meta.st).map_err(err)?;
            }
            // Devices, fifos and sockets are not copied.
            _ => {}
        }
        Ok(())
    }
}
