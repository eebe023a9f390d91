//! Model-based property tests: random sequences of changes to a watched
//! directory, with the watcher read at random points (or not at all), and
//! afterwards these checks:
//!
//! - the watcher's own view (`namespaces()`) is what the directory holds;
//! - the events, applied to the initial listing, give the same (through
//!   `common::Replay`, which also fails on a name created twice or deleted
//!   while absent, so the events of each name are in a possible order);
//! - with real namespaces, every event carries the identity the name had:
//!   a deletion names the namespace that was reported created, and the
//!   identities of the view are those `list_dir` reads;
//! - an overflow record comes if and only if the kernel's queue was made
//!   to overflow.
//!
//! The real state is the model: each operation applies only where the
//! directory (and the mount table) allow it, and what the watcher says is
//! compared with what is there. "Everything up to now" is taken with
//! `settle_all`, which closes two gaps of `common::settle` (see there).
//!
//! `model_of_a_directory_of_plain_files` needs no privileges (immediate
//! mode, temporary directories). The `model_of_real_namespaces_*` tests
//! need root: each case makes its namespaces with `ip netns` in a private
//! `/run` (see `common::PrivateRun`) on a thread of its own.
//!
//! `PROPTEST_CASES=N` runs N cases per test instead of the defaults below.
//! Failures are not persisted to a file: proptest prints the minimal
//! failing sequence, which belongs in a plain regression test.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{real_names, settle, temp_dir, PrivateRun, Replay};
use futures_util::FutureExt;
use netns_watch::{Config, Event, Identity, MountSource, NamespaceWatcher, Readiness};
use proptest::prelude::*;

/// The number of cases to run: `PROPTEST_CASES` when set, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn proptest_config(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default_cases),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A runtime like `#[tokio::test]`'s: one thread, the caller's.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

/// A name from a small alphabet, so that operations often meet.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Name(u8);

/// Bytes of the names the temp-dir model uses: plain, non-UTF-8, with a
/// newline, with a space, and the longest a file name can be.
const FILE_NAMES: usize = 7;
/// The real-namespace model uses the first few, which `ip netns` accepts.
const NETNS_NAMES: usize = 4;

impl Name {
    fn bytes(self) -> Vec<u8> {
        match self.0 {
            0 => b"a".to_vec(),
            1 => b"sp ace".to_vec(),
            2 => b"n\xff".to_vec(),
            3 => b"x\ny".to_vec(),
            4 => b"b".to_vec(),
            5 => b"c".to_vec(),
            _ => vec![b'z'; 255],
        }
    }

    fn os(self) -> OsString {
        OsString::from_vec(self.bytes())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 as usize >= FILE_NAMES - 1 {
            return f.write_str("\"z\"x255");
        }
        write!(f, "\"{}\"", self.bytes().escape_ascii())
    }
}

fn file_name() -> impl Strategy<Value = Name> {
    (0..FILE_NAMES as u8).prop_map(Name)
}

fn netns_name() -> impl Strategy<Value = Name> {
    (0..NETNS_NAMES as u8).prop_map(Name)
}

/// What the test does with the watcher after an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Nothing: the kernel's events wait in its queue.
    Continue,
    /// Takes whatever events are ready now, without waiting.
    Peek,
    /// Takes every event up to now (`settle_all`); a peek while the
    /// directory is missing.
    Settle,
}

fn then() -> impl Strategy<Value = Then> {
    prop_oneof![
        3 => Just(Then::Continue),
        1 => Just(Then::Peek),
        2 => Just(Then::Settle),
    ]
}

/// Checks every event as it is received: the stream stays consistent
/// (`Replay`), each event is about the watched directory, and a deletion
/// carries the identity its name was created with.
struct Checker {
    dir: PathBuf,
    replay: Replay,
    identities: BTreeMap<OsString, Option<Identity>>,
    /// Every event received, for the message of a failure.
    log: Vec<String>,
}

impl Checker {
    fn new(dir: &Path, list: &[netns_watch::Namespace]) -> Self {
        for ns in list {
            assert_eq!(ns.dir, dir, "listed outside the watched directory");
        }
        Self {
            dir: dir.to_path_buf(),
            replay: Replay::from_list(list),
            identities: list
                .iter()
                .map(|ns| (ns.name.clone(), ns.identity))
                .collect(),
            log: Vec::new(),
        }
    }

    fn apply(&mut self, event: &Event) {
        self.log.push(match event {
            Event::Created(ns) => format!("+{}", short(&ns.name)),
            Event::Deleted(ns) => format!("-{}", short(&ns.name)),
            other => other.kind().to_string(),
        });
        if let Some(dir) = event.dir() {
            assert_eq!(dir, self.dir, "event about another directory: {event:?}");
        }
        self.replay.apply(event);
        match event {
            Event::Created(ns) => {
                self.identities.insert(ns.name.clone(), ns.identity);
            }
            Event::Deleted(ns) => {
                let created = self.identities.remove(&ns.name);
                assert_eq!(
                    created,
                    Some(ns.identity),
                    "{:?} deleted with another identity than it was created with",
                    ns.name
                );
            }
            _ => {}
        }
    }

    fn apply_all(&mut self, events: &[Event]) {
        for event in events {
            self.apply(event);
        }
    }

    /// The events so far, shortened: runs of throwaway names are counted.
    fn summary(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        let mut burst = 0usize;
        for line in &self.log {
            if line[1..].starts_with("burst-") {
                burst += 1;
                continue;
            }
            if burst > 0 {
                out.push(format!("({burst} burst events)"));
                burst = 0;
            }
            out.push(line.clone());
        }
        if burst > 0 {
            out.push(format!("({burst} burst events)"));
        }
        out.join(" ")
    }
}

/// A name for a message: escaped, and a long one cut.
fn short(name: &OsStr) -> String {
    let bytes = name.as_bytes();
    if bytes.len() > 16 {
        format!("{}...({} bytes)", bytes[..3].escape_ascii(), bytes.len())
    } else {
        bytes.escape_ascii().to_string()
    }
}

/// Takes the events that are ready now: the reactor is given one turn
/// first, so what the kernel has queued is seen, but nothing is awaited.
async fn peek(watcher: &mut NamespaceWatcher, checker: &mut Checker) {
    tokio::task::yield_now().await;
    while let Some(result) = watcher.recv().now_or_never() {
        match result {
            Ok(Some(event)) => checker.apply(&event),
            Ok(None) => panic!("the watcher ended"),
            Err(err) => panic!("the watcher failed: {err}"),
        }
    }
}

/// Like `common::settle`, with two gaps closed: returns every event
/// caused by a change made before it.
///
/// - The events already queued behind the sentinel's deletion are taken
///   too: when the rescan after a queue overflow is what reports the
///   sentinel gone, the overflow record comes right after it.
/// - In mounted mode, `settle`'s sentinel is reported through inotify (its
///   probe sees the mount already made), which proves only that inotify's
///   queue was read past the changes before it; a change that only a mount
///   event shows (an unmount that leaves the file, a name re-bound) may
///   still wait in the mount source. So a second sentinel, a placeholder
///   the watcher has already seen, is mounted and unmounted: its creation
///   and deletion can only come from mount events (or a rescan), which the
///   mount source delivers after those of earlier changes.
async fn settle_all(watcher: &mut NamespaceWatcher, dir: &Path) -> Vec<Event> {
    const BARRIER: &str = ".mount-sentinel";
    let mut events = if watcher.mount_source().is_none() {
        settle(watcher, dir).await
    } else {
        let path = dir.join(BARRIER);
        touch(&path);
        let mut events = settle(watcher, dir).await;
        let is_barrier = |e: &Event| {
            e.namespace()
                .is_some_and(|n| n.name == BARRIER && n.dir == dir)
        };

        rustix::mount::mount_bind("/proc/thread-self/ns/net", &path)
            .expect("bind-mount the barrier namespace");
        loop {
            let event = common::next(watcher).await;
            if is_barrier(&event) {
                assert!(matches!(event, Event::Created(_)), "barrier: {event:?}");
                break;
            }
            events.push(event);
        }
        // Lazily, as `settle` does: a process being started meanwhile by
        // another test's thread holds a copy of every descriptor (a
        // probe's too) until it execs, which can make a plain unmount fail
        // for an instant.
        rustix::mount::unmount(&path, rustix::mount::UnmountFlags::DETACH)
            .expect("unmount the barrier");
        loop {
            let event = common::next(watcher).await;
            if is_barrier(&event) {
                assert!(matches!(event, Event::Deleted(_)), "barrier: {event:?}");
                break;
            }
            events.push(event);
        }
        fs::remove_file(&path).unwrap();
        events
    };
    while let Some(result) = watcher.recv().now_or_never() {
        match result {
            Ok(Some(event)) => events.push(event),
            Ok(None) => panic!("the watcher ended"),
            Err(err) => panic!("the watcher failed: {err}"),
        }
    }
    events
}

/// Whether `path` is a directory (`Some(true)`), something else
/// (`Some(false)`), or absent (`None`); symbolic links are not followed.
fn kind(path: &Path) -> Option<bool> {
    fs::symlink_metadata(path).ok().map(|m| m.is_dir())
}

fn touch(path: &Path) {
    fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
}

// ---------------------------------------------------------------------------
// Plain files in a temporary directory, immediate mode.
// ---------------------------------------------------------------------------

/// One change to the watched directory `netns` (inside a temporary
/// directory that also holds `outside`, `stage` and `old`). An operation
/// that cannot apply to the current state does nothing.
#[derive(Debug, Clone)]
enum FileOp {
    /// Creates a plain file (if nothing has the name).
    Create(Name),
    /// Deletes a file or a symbolic link.
    Delete(Name),
    /// Renames an entry inside the directory (a file over a file, a
    /// directory over nothing or an empty directory).
    Rename(Name, Name),
    /// Moves an entry to the sibling directory `outside`.
    MoveOut(Name),
    /// Moves an entry back from `outside`.
    MoveIn(Name),
    /// Makes a symbolic link (if nothing has the name): to the directory
    /// `outside` (it is still not a subdirectory), or to nothing.
    Symlink(Name, bool),
    /// Makes a subdirectory, with a file in it.
    Mkdir(Name),
    /// Removes a subdirectory and what it holds.
    Rmdir(Name),
    /// Flips an entry's permissions.
    Chmod(Name),
    /// Flips the watched directory's permissions.
    ChmodDir,
    /// Empties and deletes the watched directory, then makes it again.
    RecreateDir,
    /// Empties and deletes the watched directory.
    RemoveDir,
    /// Makes the watched directory if it is missing.
    CreateDir,
    /// Moves the watched directory to `old` and renames a directory holding
    /// these files into its place.
    SwapDir(Vec<Name>),
    /// Creates or deletes a file in `old`, which is no longer watched.
    TouchOld(Name),
    /// Creates and deletes enough throwaway files to overflow the kernel's
    /// queue: in the watched directory if it is known to be watched (no
    /// directory made since the last settle), else in its parent.
    Burst,
}

fn file_op() -> impl Strategy<Value = FileOp> {
    prop_oneof![
        8 => file_name().prop_map(FileOp::Create),
        5 => file_name().prop_map(FileOp::Delete),
        4 => (file_name(), file_name()).prop_map(|(a, b)| FileOp::Rename(a, b)),
        3 => file_name().prop_map(FileOp::MoveOut),
        3 => file_name().prop_map(FileOp::MoveIn),
        1 => (file_name(), any::<bool>()).prop_map(|(n, to_dir)| FileOp::Symlink(n, to_dir)),
        2 => file_name().prop_map(FileOp::Mkdir),
        2 => file_name().prop_map(FileOp::Rmdir),
        1 => file_name().prop_map(FileOp::Chmod),
        1 => Just(FileOp::ChmodDir),
        1 => Just(FileOp::RecreateDir),
        1 => Just(FileOp::RemoveDir),
        2 => Just(FileOp::CreateDir),
        1 => proptest::sample::subsequence((0..FILE_NAMES as u8).map(Name).collect::<Vec<_>>(), 0..=3)
            .prop_map(FileOp::SwapDir),
        2 => file_name().prop_map(FileOp::TouchOld),
        1 => Just(FileOp::Burst),
    ]
}

/// The temporary tree one case works in.
struct Tree {
    _root: tempfile::TempDir,
    root: PathBuf,
    dir: PathBuf,
    outside: PathBuf,
    stage: PathBuf,
    old: PathBuf,
    /// Throwaway files made by one burst: past the kernel's queue length
    /// in events (one for each creation, one for each deletion).
    burst_files: usize,
    bursts: usize,
    /// Whether the directory there now is known to be watched: no
    /// directory was put in its place since the watcher last caught up.
    watched: bool,
}

impl Tree {
    fn new() -> Self {
        let root_dir = temp_dir();
        let root = root_dir.path().to_path_buf();
        let queue: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(16_384);
        let tree = Self {
            _root: root_dir,
            dir: root.join("netns"),
            outside: root.join("outside"),
            stage: root.join("stage"),
            old: root.join("old"),
            root,
            burst_files: queue / 2 + 500,
            bursts: 0,
            watched: true,
        };
        fs::create_dir(&tree.dir).unwrap();
        fs::create_dir(&tree.outside).unwrap();
        tree
    }

    fn exists(&self) -> bool {
        kind(&self.dir) == Some(true)
    }

    fn apply(&mut self, op: &FileOp) {
        let here = |n: &Name| self.dir.join(n.os());
        let present = self.exists();
        match op {
            FileOp::Create(n) if present && kind(&here(n)).is_none() => touch(&here(n)),
            FileOp::Delete(n) if present && kind(&here(n)) == Some(false) => {
                fs::remove_file(here(n)).unwrap();
            }
            FileOp::Rename(a, b) if present && a != b => {
                let (from, to) = (here(a), here(b));
                let fits = match (kind(&from), kind(&to)) {
                    (Some(false), None | Some(false)) => true,
                    (Some(true), None) => true,
                    (Some(true), Some(true)) => fs::read_dir(&to).unwrap().next().is_none(),
                    _ => false,
                };
                if fits {
                    fs::rename(from, to).unwrap();
                }
            }
            FileOp::MoveOut(n) if present => {
                let to = self.outside.join(n.os());
                if kind(&here(n)).is_some() && kind(&to).is_none() {
                    fs::rename(here(n), to).unwrap();
                }
            }
            FileOp::MoveIn(n) if present => {
                let from = self.outside.join(n.os());
                // A file over nothing or a file; a directory over nothing.
                let fits = matches!(
                    (kind(&from), kind(&here(n))),
                    (Some(false), None | Some(false)) | (Some(true), None)
                );
                if fits {
                    fs::rename(from, here(n)).unwrap();
                }
            }
            FileOp::Symlink(n, to_dir) if present && kind(&here(n)).is_none() => {
                let target = if *to_dir { "../outside" } else { "missing" };
                std::os::unix::fs::symlink(target, here(n)).unwrap();
            }
            FileOp::Mkdir(n) if present && kind(&here(n)).is_none() => {
                fs::create_dir(here(n)).unwrap();
                touch(&here(n).join("inner"));
            }
            FileOp::Rmdir(n) if present && kind(&here(n)) == Some(true) => {
                fs::remove_dir_all(here(n)).unwrap();
            }
            FileOp::Chmod(n) if present && kind(&here(n)).is_some() && !is_symlink(&here(n)) => {
                flip_mode(&here(n));
            }
            FileOp::ChmodDir if present => flip_mode(&self.dir),
            FileOp::RecreateDir if present => {
                fs::remove_dir_all(&self.dir).unwrap();
                fs::create_dir(&self.dir).unwrap();
                self.watched = false;
            }
            FileOp::RemoveDir if present => fs::remove_dir_all(&self.dir).unwrap(),
            FileOp::CreateDir if !present => {
                fs::create_dir(&self.dir).unwrap();
                self.watched = false;
            }
            FileOp::SwapDir(names) => {
                self.watched = false;
                fs::create_dir(&self.stage).unwrap();
                for n in names {
                    touch(&self.stage.join(n.os()));
                }
                if present {
                    if kind(&self.old).is_some() {
                        fs::remove_dir_all(&self.old).unwrap();
                    }
                    fs::rename(&self.dir, &self.old).unwrap();
                }
                fs::rename(&self.stage, &self.dir).unwrap();
            }
            FileOp::TouchOld(n) if kind(&self.old) == Some(true) => {
                let path = self.old.join(n.os());
                match kind(&path) {
                    None => touch(&path),
                    Some(false) => fs::remove_file(path).unwrap(),
                    Some(true) => {}
                }
            }
            FileOp::Burst => {
                let target = if present && self.watched {
                    &self.dir
                } else {
                    &self.root
                };
                for i in 0..self.burst_files {
                    let path = target.join(format!("burst-{i}"));
                    touch(&path);
                    fs::remove_file(&path).unwrap();
                }
                self.bursts += 1;
            }
            _ => {}
        }
    }
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Toggles the owner's write permission.
fn flip_mode(path: &Path) {
    let mut perms = fs::symlink_metadata(path).unwrap().permissions();
    perms.set_mode(perms.mode() ^ 0o200);
    fs::set_permissions(path, perms).unwrap();
}

async fn file_case(initial: Vec<Name>, steps: Vec<(FileOp, Then)>) {
    let mut tree = Tree::new();
    for n in &initial {
        touch(&tree.dir.join(n.os()));
    }
    let config = Config::with_dirs([&tree.dir]).readiness(Readiness::Immediate);
    let (list, mut watcher) = NamespaceWatcher::list_and_watch_with_config(config)
        .await
        .unwrap();
    let listed: BTreeSet<OsString> = list.iter().map(|ns| ns.name.clone()).collect();
    assert_eq!(listed, real_names(&tree.dir), "the initial listing");
    let mut checker = Checker::new(&tree.dir, &list);

    for (op, then) in &steps {
        tree.apply(op);
        match then {
            Then::Settle if tree.exists() => {
                let events = settle_all(&mut watcher, &tree.dir).await;
                checker.apply_all(&events);
                tree.watched = true;
            }
            Then::Settle | Then::Peek => peek(&mut watcher, &mut checker).await,
            Then::Continue => {}
        }
    }

    if !tree.exists() {
        fs::create_dir(&tree.dir).unwrap();
    }
    let events = settle_all(&mut watcher, &tree.dir).await;
    checker.apply_all(&events);

    let real = real_names(&tree.dir);
    let view: BTreeSet<OsString> = watcher
        .namespaces()
        .into_iter()
        .map(|ns| {
            assert_eq!(ns.dir, tree.dir);
            assert_eq!(ns.identity, None, "an identity in immediate mode");
            ns.name
        })
        .collect();
    assert_eq!(
        view,
        real,
        "the watcher's view differs from the directory; events: {}",
        checker.summary()
    );
    assert_eq!(
        checker.replay.names_in(&tree.dir),
        real,
        "the replayed events differ from the directory; events: {}",
        checker.summary()
    );
    assert_eq!(
        checker.replay.overflows > 0,
        tree.bursts > 0,
        "{} bursts, {} overflow records",
        tree.bursts,
        checker.replay.overflows
    );
}

proptest! {
    #![proptest_config(proptest_config(64))]

    #[test]
    fn model_of_a_directory_of_plain_files(
        initial in proptest::sample::subsequence((0..FILE_NAMES as u8).map(Name).collect::<Vec<_>>(), 0..=3),
        steps in proptest::collection::vec((file_op(), then()), 0..=40),
    ) {
        runtime().block_on(file_case(initial, steps));
    }
}

// ---------------------------------------------------------------------------
// Real namespaces in a private /run, as root, mounted mode.
// ---------------------------------------------------------------------------

const NETNS_DIR: &str = "/run/netns";

/// One change to `/run/netns`. Whether it applies is decided on what is
/// there now (the files, and the mount table): an operation that cannot
/// apply does nothing.
///
/// `ip netns` makes `/run/netns` a shared mount, so a bind mount of a
/// name joins the peer group of the mount it copies, and a later mount or
/// unmount on one of them propagates to the others: what each operation
/// does to other names is the kernel's business, never predicted here.
#[derive(Debug, Clone)]
enum NetnsOp {
    /// `ip netns add NAME` (if nothing has the name).
    Add(Name),
    /// `ip netns del NAME` (if at most one mount is on it, so the file can
    /// be removed).
    Del(Name),
    /// `mount --bind /run/netns/OTHER /run/netns/NAME`, if OTHER is
    /// mounted: the name now shows OTHER's namespace (the file is made
    /// first if missing).
    Rebind(Name, Name),
    /// `umount -l /run/netns/NAME`: the topmost mount goes, the file
    /// stays. Lazy, so that a descriptor held for an instant elsewhere (a
    /// process being started by another test copies them all until it
    /// execs) cannot make it fail; the topmost mount has nothing under it
    /// to detach besides.
    Unmount(Name),
    /// Removes a file that nothing is mounted on.
    Remove(Name),
    /// Creates a placeholder file (if nothing has the name).
    Touch(Name),
}

fn netns_op() -> impl Strategy<Value = NetnsOp> {
    prop_oneof![
        4 => netns_name().prop_map(NetnsOp::Add),
        3 => netns_name().prop_map(NetnsOp::Del),
        3 => (netns_name(), netns_name()).prop_map(|(a, b)| NetnsOp::Rebind(a, b)),
        3 => netns_name().prop_map(NetnsOp::Unmount),
        2 => netns_name().prop_map(NetnsOp::Remove),
        1 => netns_name().prop_map(NetnsOp::Touch),
    ]
}

fn netns_path(n: Name) -> PathBuf {
    Path::new(NETNS_DIR).join(n.os())
}

fn ip_netns(verb: &str, n: Name) {
    let name = n.os();
    common::run(
        "ip",
        &[OsStr::new("netns"), OsStr::new(verb), name.as_os_str()],
    );
}

/// Undoes the octal escapes of a mountinfo field (`\040` is a space).
fn unescape_mountinfo(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let digits = field.get(i + 1..i + 4);
        match digits {
            Some(d) if field[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)) => {
                out.push(d.iter().fold(0u8, |v, b| (v << 3) | (b - b'0')));
                i += 4;
            }
            _ => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

/// How many mounts this thread's mount namespace has at `path`.
fn mounts_at(path: &Path) -> usize {
    let table = fs::read("/proc/thread-self/mountinfo").expect("read the mount table");
    table
        .split(|b| *b == b'\n')
        .filter_map(|line| line.split(|b| *b == b' ').nth(4))
        .filter(|point| unescape_mountinfo(point) == path.as_os_str().as_bytes())
        .count()
}

/// What a name is now: `None` if absent, else how many mounts are on it.
fn netns_state(n: Name) -> Option<usize> {
    let path = netns_path(n);
    kind(&path).map(|_| mounts_at(&path))
}

fn apply_netns(op: &NetnsOp) {
    let dir_exists = kind(Path::new(NETNS_DIR)) == Some(true);
    match *op {
        NetnsOp::Add(n) if netns_state(n).is_none() => ip_netns("add", n),
        NetnsOp::Del(n) if netns_state(n).is_some_and(|d| d <= 1) => ip_netns("del", n),
        NetnsOp::Rebind(n, other) if n != other && netns_state(other).is_some_and(|d| d > 0) => {
            let to = netns_path(n);
            if netns_state(n).is_none() {
                touch(&to);
            }
            rustix::mount::mount_bind(netns_path(other), &to)
                .unwrap_or_else(|e| panic!("bind-mount over {}: {e}", to.display()));
        }
        NetnsOp::Unmount(n) if netns_state(n).is_some_and(|d| d > 0) => {
            let at = netns_path(n);
            rustix::mount::unmount(&at, rustix::mount::UnmountFlags::DETACH)
                .unwrap_or_else(|e| panic!("unmount {}: {e}", at.display()));
        }
        NetnsOp::Remove(n) if netns_state(n) == Some(0) => fs::remove_file(netns_path(n)).unwrap(),
        NetnsOp::Touch(n) if dir_exists && netns_state(n).is_none() => touch(&netns_path(n)),
        _ => {}
    }
}

async fn netns_case(source: Option<MountSource>, initial: Vec<Name>, steps: Vec<(NetnsOp, Then)>) {
    let dir = Path::new(NETNS_DIR);
    for n in &initial {
        apply_netns(&NetnsOp::Add(*n));
    }
    let mut config = Config::with_dirs([dir]);
    if let Some(source) = source {
        config = config.mount_source(source);
    }
    let (list, mut watcher) = NamespaceWatcher::list_and_watch_with_config(config)
        .await
        .unwrap();
    assert_eq!(
        list,
        NamespaceWatcher::list_dir(dir).unwrap(),
        "the initial listing"
    );
    let mut checker = Checker::new(dir, &list);

    for (op, then) in &steps {
        apply_netns(op);
        match then {
            Then::Settle if kind(dir) == Some(true) => {
                let events = settle_all(&mut watcher, dir).await;
                checker.apply_all(&events);
            }
            Then::Settle | Then::Peek => peek(&mut watcher, &mut checker).await,
            Then::Continue => {}
        }
    }

    if kind(dir).is_none() {
        fs::create_dir(dir).unwrap();
    }
    let events = settle_all(&mut watcher, dir).await;
    checker.apply_all(&events);

    let real = NamespaceWatcher::list_dir(dir).unwrap();
    let real_names: BTreeSet<OsString> = real.iter().map(|ns| ns.name.clone()).collect();
    let mounted: BTreeSet<OsString> = (0..NETNS_NAMES as u8)
        .map(Name)
        .filter(|n| netns_state(*n).is_some_and(|d| d > 0))
        .map(Name::os)
        .collect();
    assert_eq!(real_names, mounted, "list_dir and the mount table disagree");
    assert_eq!(
        watcher.namespaces(),
        real,
        "the watcher's view differs from /run/netns; events: {}",
        checker.summary()
    );
    assert_eq!(
        checker.replay.names_in(dir),
        real_names,
        "the replayed events differ from /run/netns; events: {}",
        checker.summary()
    );
    let listed: BTreeMap<OsString, Option<Identity>> = real
        .iter()
        .map(|ns| (ns.name.clone(), ns.identity))
        .collect();
    assert_eq!(
        checker.identities,
        listed,
        "the events' identities differ from /run/netns; events: {}",
        checker.summary()
    );
    assert_eq!(
        checker.replay.overflows, 0,
        "an overflow record without a burst"
    );
}

/// Runs one case on a thread of its own, in a private `/run`, with a
/// current-thread runtime: every system call of the case and its watcher
/// happens in that thread's mount namespace, which ends with the thread.
fn in_private_run(source: Option<MountSource>, initial: Vec<Name>, steps: Vec<(NetnsOp, Then)>) {
    let worker = std::thread::spawn(move || {
        let _run = PrivateRun::new();
        runtime().block_on(netns_case(source, initial, steps));
    });
    if let Err(panic) = worker.join() {
        std::panic::resume_unwind(panic);
    }
}

proptest! {
    #![proptest_config(proptest_config(8))]

    #[test]
    fn model_of_real_namespaces_default_source(
        initial in proptest::sample::subsequence((0..NETNS_NAMES as u8).map(Name).collect::<Vec<_>>(), 0..=3),
        steps in proptest::collection::vec((netns_op(), then()), 0..=10),
    ) {
        in_private_run(None, initial, steps);
    }

    #[test]
    fn model_of_real_namespaces_mountinfo_source(
        initial in proptest::sample::subsequence((0..NETNS_NAMES as u8).map(Name).collect::<Vec<_>>(), 0..=3),
        steps in proptest::collection::vec((netns_op(), then()), 0..=10),
    ) {
        in_private_run(Some(MountSource::Mountinfo), initial, steps);
    }
}
