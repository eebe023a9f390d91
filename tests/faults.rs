//! Faults injected from outside: the inotify limits exhausted, the watched
//! directory replaced by a file, a directory that cannot be read, a
//! filesystem mounted over the namespace directory, a deletion that fails
//! with EBUSY, a consumer that goes away, and hooks that crash, hang or
//! flood their output. Each must end in a clear error (naming the path or
//! value and what to do) or in a recovery: never a hang, never a panic.
//!
//! These tests need root. The inotify limits are global, and the descriptor
//! counts are those of this whole process, so the tests that change or
//! measure them run alone (see [`alone`]); every other test here holds
//! [`shared`] while it runs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use common::{changes, ip, next, settle, temp_dir, touch, KillOnDrop, Out, PrivateRun, Running};
use netns_watch::{Config, Error, Event, MountSource, Namespace, NamespaceWatcher, Readiness};

const RUN_NETNS: &str = "/run/netns";

/// Prefix of every namespace these tests make.
const P: &str = "nwt-";

// ---------------------------------------------------------------------------
// Running alone, or beside each other

/// Taken for reading by every test of this file, for writing by the tests
/// that lower a global inotify limit or count this process's descriptors.
static PROCESS: RwLock<()> = RwLock::new(());

/// For a test that neither changes nor measures what the others share.
fn shared() -> RwLockReadGuard<'static, ()> {
    PROCESS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// For a test that must be the only one of this file running.
fn alone() -> RwLockWriteGuard<'static, ()> {
    PROCESS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `job` on a current-thread runtime on this thread, so that a
/// [`PrivateRun`] made on it covers every system call of the watcher.
fn block_on<F: std::future::Future>(job: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime")
        .block_on(job)
}

// ---------------------------------------------------------------------------
// Shared helpers

fn dir() -> &'static Path {
    Path::new(RUN_NETNS)
}

/// Makes `path` a namespace of its own (a plain file first, then a mount).
fn make_namespace(path: &Path) {
    fs::File::create(path).unwrap();
    let arg = format!("--net={}", path.display());
    common::run("unshare", &[OsStr::new(&arg), OsStr::new("true")]);
}

fn run(program: &str, args: &[&str]) {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    common::run(program, &args);
}

/// `+name` / `-name` of `events`, sorted: for changes whose relative order
/// is not promised (different names).
fn sorted_changes(events: &[Event]) -> Vec<String> {
    let mut all = changes(events);
    all.sort();
    all
}

/// The lines a finished `netns-watch` wrote on `out`.
fn lines_on(cli: &Running, out: Out) -> Vec<&str> {
    cli.seen
        .iter()
        .filter(|(o, _)| *o == out)
        .map(|(_, l)| l.as_str())
        .collect()
}

/// Checks that a finished `netns-watch` failed as an error must: status 1,
/// nothing on stdout, exactly one line on stderr, which is returned.
fn the_one_error_line(cli: &mut Running, what: &str) -> String {
    let status = cli.wait_exit();
    assert_eq!(
        status,
        Some(1),
        "{what}: exit status; output: {:#?}",
        cli.seen
    );
    assert_eq!(
        lines_on(cli, Out::Stdout),
        Vec::<&str>::new(),
        "{what}: stdout"
    );
    let stderr = lines_on(cli, Out::Stderr);
    assert_eq!(stderr.len(), 1, "{what}: one line on stderr: {stderr:#?}");
    assert!(
        stderr[0].starts_with("netns-watch: error: "),
        "{what}: {}",
        stderr[0]
    );
    stderr[0].to_owned()
}

// ---------------------------------------------------------------------------
// The inotify limits

const MAX_INSTANCES: &str = "/proc/sys/fs/inotify/max_user_instances";
const MAX_WATCHES: &str = "/proc/sys/fs/inotify/max_user_watches";

/// Levels of directories below the temporary directory in the watch-limit
/// case: one watch each, many more than the limit leaves room for.
const DEPTH: usize = 64;
/// Watches left available below the limit in the watch-limit case.
const HEADROOM: u64 = 8;

/// A sysctl set for the duration of a test, put back when dropped, also
/// when the test fails.
struct Sysctl {
    path: &'static str,
    original: String,
}

impl Sysctl {
    fn set(path: &'static str, value: u64) -> Self {
        let original = fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {path}: {e}"))
            .trim()
            .to_owned();
        let guard = Self { path, original };
        fs::write(path, format!("{value}\n")).unwrap_or_else(|e| panic!("write {path}: {e}"));
        guard
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if let Err(err) = fs::write(self.path, format!("{}\n", self.original)) {
            eprintln!(
                "warning: could not restore {} to {}: {err}",
                self.path, self.original
            );
        }
    }
}

/// The inotify watches in use on the machine, as seen in every process's
/// descriptor information. An instance shared by several descriptors or
/// processes shows the same lines everywhere: counted once.
fn inotify_watches_in_use() -> u64 {
    let mut instances = BTreeSet::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return 0;
    };
    for proc in procs.flatten() {
        let Ok(fds) = fs::read_dir(proc.path().join("fdinfo")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(info) = fs::read_to_string(fd.path()) else {
                continue;
            };
            let watches: Vec<&str> = info
                .lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .collect();
            if !watches.is_empty() {
                instances.insert(watches.join("\n"));
            }
        }
    }
    instances.iter().map(|i| i.lines().count() as u64).sum()
}

/// `netns-watch ARGS...` run to its end.
fn finished(args: &[&str]) -> Running {
    let mut cli = Running::start(&[], args, None);
    cli.wait_exit();
    cli
}

#[test]
fn exhausted_inotify_limits_end_in_an_error_naming_the_sysctl() {
    let _alone = alone();
    let tmp = temp_dir();
    let flat = tmp.path().join("netns");
    fs::create_dir(&flat).unwrap();
    let mut deep = tmp.path().to_path_buf();
    deep.extend(std::iter::repeat_n("d", DEPTH));
    fs::create_dir_all(&deep).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // No instance may be created: the limit set to 0 is reached whatever
    // the machine holds already. Only the attempts happen while it is
    // lowered; everything is checked once it is back.
    let (lib, mut cli) = {
        let _limit = Sysctl::set(MAX_INSTANCES, 0);
        let lib = runtime
            .block_on(NamespaceWatcher::with_config(Config::with_dirs([&flat])))
            .map(drop);
        let cli = finished(&["watch", "--dir", flat.to_str().unwrap()]);
        (lib, cli)
    };
    match &lib {
        Err(err @ Error::InstanceLimit) => assert!(
            err.to_string().contains("fs.inotify.max_user_instances"),
            "the message names the sysctl: {err}"
        ),
        other => panic!("expected Error::InstanceLimit, got {other:?}"),
    }
    let line = the_one_error_line(&mut cli, "watch at the instance limit");
    assert!(
        line.contains("fs.inotify.max_user_instances"),
        "the sysctl is named: {line}"
    );

    // A few watches left: the deep path's chain of ancestors runs out of
    // them part of the way down.
    let in_use = inotify_watches_in_use();
    let (lib, mut cli) = {
        let _limit = Sysctl::set(MAX_WATCHES, in_use + HEADROOM);
        let config = Config::with_dirs([&deep]).readiness(Readiness::Immediate);
        let lib = runtime
            .block_on(NamespaceWatcher::with_config(config))
            .map(drop);
        let cli = finished(&["watch", "--immediate", "--dir", deep.to_str().unwrap()]);
        (lib, cli)
    };
    match &lib {
        Err(err @ Error::WatchLimit { path }) => {
            assert!(
                deep.starts_with(path),
                "{} is {} or one of its ancestors",
                path.display(),
                deep.display()
            );
            let message = err.to_string();
            assert!(
                message.contains(&*path.to_string_lossy())
                    && message.contains("fs.inotify.max_user_watches"),
                "the message names the path and the sysctl: {message}"
            );
        }
        other => panic!("expected Error::WatchLimit ({in_use} watches in use), got {other:?}"),
    }
    let line = the_one_error_line(&mut cli, "watch at the watch limit");
    assert!(
        line.contains("fs.inotify.max_user_watches"),
        "the sysctl is named: {line}"
    );
    let refused = line
        .strip_prefix("netns-watch: error: ")
        .and_then(|rest| rest.split_once(": cannot watch"))
        .map(|(path, _)| PathBuf::from(path))
        .unwrap_or_else(|| panic!("the refused path is named: {line}"));
    assert!(deep.starts_with(&refused), "{line}");

    // With the limits back, the same directory is watched.
    runtime.block_on(async {
        let config = Config::with_dirs([&deep]).readiness(Readiness::Immediate);
        let mut w = NamespaceWatcher::with_config(config).await.unwrap();
        touch(&deep, "after");
        assert_eq!(
            next(&mut w).await,
            Event::Created(Namespace::new(&deep, "after"))
        );
    });

    // A running watcher that needs a new watch at the limit (its directory
    // made again) reports it in-band, and goes on.
    runtime.block_on(async {
        let config = Config::with_dirs([&flat]).readiness(Readiness::Immediate);
        let mut w = NamespaceWatcher::with_config(config).await.unwrap();
        let first = {
            let _limit = Sysctl::set(MAX_WATCHES, 0);
            fs::remove_dir(&flat).unwrap();
            fs::create_dir(&flat).unwrap();
            tokio::time::timeout(common::PATIENCE, w.recv()).await
        };
        match &first {
            Ok(Err(err @ Error::WatchLimit { path })) => {
                assert_eq!(path, &flat);
                assert!(
                    err.to_string().contains("fs.inotify.max_user_watches"),
                    "the message names the sysctl: {err}"
                );
            }
            other => panic!(
                "expected Error::WatchLimit for {}, got {other:?}",
                flat.display()
            ),
        }
        // Made again with the limit back: watched, and its entries seen.
        fs::remove_dir(&flat).unwrap();
        fs::create_dir(&flat).unwrap();
        touch(&flat, "again");
        loop {
            match tokio::time::timeout(common::PATIENCE, w.recv()).await {
                Ok(Ok(Some(Event::Created(ns)))) if ns.name == "again" => break,
                Ok(Err(Error::WatchLimit { .. })) => {}
                other => panic!("expected again created, got {other:?}"),
            }
        }
        assert!(w.is_watching());
    });
}

// ---------------------------------------------------------------------------
// The watched directory replaced by a file

#[test]
fn a_directory_replaced_by_a_file_is_reported_gone_then_rescanned() {
    let _shared = shared();
    for removed in [false, true] {
        let how = if removed { "removed" } else { "renamed away" };
        block_on(async {
            let tmp = temp_dir();
            let dir = tmp.path().join("netns");
            fs::create_dir(&dir).unwrap();
            touch(&dir, "a");
            touch(&dir, "b");
            let config = Config::with_dirs([&dir])
                .readiness(Readiness::Immediate)
                .emit_directory_events(true);
            let mut w = NamespaceWatcher::with_config(config).await.unwrap();

            if removed {
                fs::remove_dir_all(&dir).unwrap();
            } else {
                fs::rename(&dir, tmp.path().join("old")).unwrap();
            }
            fs::write(&dir, "not a directory").unwrap();
            let mut gone = Vec::new();
            loop {
                let event = next(&mut w).await;
                let last = matches!(event, Event::DirectoryDeleted { .. });
                gone.push(event);
                if last {
                    break;
                }
            }
            assert_eq!(
                sorted_changes(&gone),
                ["-a", "-b"],
                "{how}: every name deleted: {gone:?}"
            );
            assert_eq!(
                gone.len(),
                3,
                "{how}: the names, then the directory: {gone:?}"
            );
            assert!(
                !w.is_watching(),
                "{how}: a file is not watched as the directory"
            );

            // A directory with entries takes the file's place.
            let new = tmp.path().join("new");
            fs::create_dir(&new).unwrap();
            touch(&new, "c");
            touch(&new, "d");
            fs::remove_file(&dir).unwrap();
            fs::rename(&new, &dir).unwrap();
            let back = settle(&mut w, &dir).await;
            assert_eq!(
                back.first(),
                Some(&Event::DirectoryCreated { dir: dir.clone() }),
                "{how}: the directory comes first: {back:?}"
            );
            assert_eq!(
                sorted_changes(&back),
                ["+c", "+d"],
                "{how}: its entries are reported: {back:?}"
            );
            assert_eq!(back.len(), 3, "{how}: nothing else: {back:?}");
            assert!(w.is_watching());
        });
    }
}

// ---------------------------------------------------------------------------
// Permission denied

use common::NOBODY;

/// A temporary directory others may enter, holding `name` with mode 700
/// (owned by root).
fn with_locked(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = temp_dir();
    // The temporary directory itself is private; let others through it.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let locked = tmp.path().join(name);
    fs::create_dir(&locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).unwrap();
    (tmp, locked)
}

/// Runs `netns-watch ARGS...` as nobody and checks that it fails with one
/// line saying permission denied and naming `refused`.
fn assert_refused_as_nobody(args: &[&str], refused: &Path) {
    let what = format!("{args:?} as nobody");
    let mut cli = Running::start(&NOBODY, args, None);
    let line = the_one_error_line(&mut cli, &what);
    assert!(
        line.contains("permission denied"),
        "{what}: says permission denied: {line}"
    );
    assert!(
        line.contains(refused.to_str().unwrap()),
        "{what}: names {}: {line}",
        refused.display()
    );
}

#[test]
fn an_unreadable_directory_is_an_error_naming_it() {
    let _shared = shared();
    let (_tmp, secret) = with_locked("secret");
    let dir = secret.to_str().unwrap();
    for args in [
        &["watch", "--dir", dir][..],
        &["watch", "--immediate", "--dir", dir],
        &["wait", "nwt-x", "--timeout", "5", "--dir", dir],
        &["list", "--dir", dir],
    ] {
        assert_refused_as_nobody(args, &secret);
    }
}

#[test]
fn an_unreadable_ancestor_is_an_error_naming_it() {
    let _shared = shared();
    let (_tmp, locked) = with_locked("locked");
    let below = locked.join("netns");
    fs::create_dir(&below).unwrap();
    let dir = below.to_str().unwrap();
    for args in [
        &["watch", "--dir", dir][..],
        &["watch", "--immediate", "--dir", dir],
        &["wait", "nwt-x", "--timeout", "5", "--dir", dir],
    ] {
        assert_refused_as_nobody(args, &locked);
    }
}

#[test]
fn list_below_an_unreadable_ancestor_is_one_error_line() {
    let _shared = shared();
    let (_tmp, locked) = with_locked("locked");
    let below = locked.join("netns");
    fs::create_dir(&below).unwrap();
    assert_refused_as_nobody(&["list", "--dir", below.to_str().unwrap()], &locked);
}

// ---------------------------------------------------------------------------
// A filesystem mounted over /run/netns, and unmounted again

async fn an_over_mounted_directory_is_followed(source: MountSource) {
    let (a, b, c) = (format!("{P}a"), format!("{P}b"), format!("{P}c"));
    ip(&["netns", "add", &a]);
    ip(&["netns", "add", &b]);
    let config = Config::with_dirs([RUN_NETNS]).mount_source(source);
    let (list, mut w) = NamespaceWatcher::list_and_watch_with_config(config)
        .await
        .unwrap();
    assert_eq!(w.mount_source(), Some(source));
    let names: Vec<_> = list.iter().map(|n| n.name.to_string_lossy()).collect();
    assert_eq!(names, [a.as_str(), b.as_str()]);

    run("mount", &["-t", "tmpfs", "nwt", RUN_NETNS]);
    let hidden = settle(&mut w, dir()).await;
    assert_eq!(
        sorted_changes(&hidden),
        [format!("-{a}"), format!("-{b}")],
        "the names under the new filesystem are gone: {hidden:?}"
    );
    assert_eq!(hidden.len(), 2, "{hidden:?}");

    make_namespace(&dir().join(&c));
    let added = settle(&mut w, dir()).await;
    assert_eq!(changes(&added), [format!("+{c}")], "{added:?}");
    assert_eq!(added.len(), 1, "{added:?}");

    // The namespace mounted on the tmpfs keeps it busy: detach both.
    run("umount", &["--lazy", RUN_NETNS]);
    let back = settle(&mut w, dir()).await;
    assert_eq!(
        sorted_changes(&back),
        [format!("+{a}"), format!("+{b}"), format!("-{c}")],
        "{back:?}"
    );
    assert_eq!(back.len(), 3, "{back:?}");
    for event in &back {
        if let Event::Created(ns) = event {
            let before = list.iter().find(|n| n.name == ns.name).unwrap();
            assert_eq!(
                ns.identity,
                before.identity,
                "{} is the same namespace again",
                ns.name.to_string_lossy()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// A deletion that fails with EBUSY

async fn a_deletion_that_fails_busy_changes_nothing(source: MountSource) {
    let name = format!("{P}busy");
    let path = dir().join(&name);
    let path_str = path.to_str().unwrap();
    ip(&["netns", "add", &name]);
    let config = Config::with_dirs([RUN_NETNS]).mount_source(source);
    let (list, mut w) = NamespaceWatcher::list_and_watch_with_config(config)
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    let identity = list[0].identity;

    // A second mount of the same namespace stacked on the name: it is
    // still the same namespace.
    run("mount", &["--bind", path_str, path_str]);
    assert_eq!(settle(&mut w, dir()).await, []);

    // `ip netns del` detaches the top mount, then cannot unlink the file
    // (EBUSY): the name is still that namespace.
    let failed = Command::new("ip")
        .args(["netns", "del", &name])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success() && stderr.contains("busy"),
        "the deletion fails with EBUSY: {}: {stderr}",
        failed.status
    );
    assert!(
        NamespaceWatcher::list_dir(RUN_NETNS)
            .unwrap()
            .iter()
            .any(|n| n.name == *name),
        "it is still a namespace"
    );
    assert_eq!(
        settle(&mut w, dir()).await,
        [],
        "no deletion while it is there"
    );
    assert_eq!(w.namespaces().len(), 1);

    // Really gone now.
    ip(&["netns", "del", &name]);
    let gone = settle(&mut w, dir()).await;
    match &gone[..] {
        [Event::Deleted(ns)] if ns.name == *name => assert_eq!(ns.identity, identity),
        other => panic!("expected exactly one deletion of {name}, got {other:?}"),
    }
    assert!(w.namespaces().is_empty());
}

// ---------------------------------------------------------------------------
// The consumer goes away mid-stream

/// Every open descriptor of this process and what it refers to, but the
/// one reading the list.
fn open_fds() -> BTreeMap<u32, String> {
    let listing = format!("/proc/{}/fd", std::process::id());
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let fd = entry.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(entry.path()).ok()?;
            let target = target.to_string_lossy().into_owned();
            (target != listing).then_some((fd, target))
        })
        .collect()
}

fn assert_no_namespace_held(when: &str) {
    let held: Vec<_> = open_fds()
        .into_iter()
        .filter(|(_, target)| target.starts_with("net:["))
        .collect();
    assert_eq!(held, [], "{when}: a namespace file is held open");
}

async fn a_dropped_watcher_releases_its_descriptors(source: Option<MountSource>) {
    fs::create_dir(RUN_NETNS).unwrap();
    let before = open_fds();
    let config = match source {
        Some(source) => Config::with_dirs([RUN_NETNS]).mount_source(source),
        None => Config::with_dirs([RUN_NETNS]).readiness(Readiness::Immediate),
    };
    let mut w = NamespaceWatcher::with_config(config).await.unwrap();
    assert_eq!(w.mount_source(), source);

    for i in 0..3 {
        let name = format!("{P}fd{i}");
        make_namespace(&dir().join(&name));
        match next(&mut w).await {
            Event::Created(ns) if ns.name == *name => {}
            other => panic!("expected {name} created, got {other:?}"),
        }
        assert_no_namespace_held(&format!("after {name} was reported"));
    }
    // More changes the consumer never reads: the watcher goes away with
    // them queued in the kernel (and, for `poll`, a placeholder waiting).
    for i in 3..6 {
        make_namespace(&dir().join(format!("{P}fd{i}")));
    }
    run("umount", &[&format!("{RUN_NETNS}/{P}fd0")]);
    touch(dir(), format!("{P}placeholder"));
    assert_no_namespace_held("with events unread");
    drop(w);

    let after = open_fds();
    let left: BTreeMap<_, _> = after
        .iter()
        .filter(|(fd, target)| before.get(fd) != Some(target))
        .collect();
    assert!(
        left.is_empty(),
        "descriptors left open by the dropped watcher: {left:?} \
         ({} open before, {} after)",
        before.len(),
        after.len()
    );
}

// ---------------------------------------------------------------------------
// The cases run for each mount source

macro_rules! for_each_source {
    ($lock:ident, $case:ident: $($module:ident => $source:expr),* $(,)?) => {
        mod $case {
            $(
                #[test]
                fn $module() {
                    let _lock = super::$lock();
                    let _run = super::PrivateRun::new();
                    super::block_on(super::$case($source));
                }
            )*
        }
    };
}

for_each_source!(shared, an_over_mounted_directory_is_followed:
    fanotify => netns_watch::MountSource::Fanotify,
    mountinfo => netns_watch::MountSource::Mountinfo,
);

for_each_source!(shared, a_deletion_that_fails_busy_changes_nothing:
    fanotify => netns_watch::MountSource::Fanotify,
    mountinfo => netns_watch::MountSource::Mountinfo,
);

for_each_source!(alone, a_dropped_watcher_releases_its_descriptors:
    fanotify => Some(netns_watch::MountSource::Fanotify),
    mountinfo => Some(netns_watch::MountSource::Mountinfo),
    poll => Some(netns_watch::MountSource::Poll),
    immediate => None,
);

// ---------------------------------------------------------------------------
// Hooks that crash, hang and flood their output

/// Bytes the flooding hook writes (half on its stdout, half on its stderr;
/// both are `netns-watch`'s stderr).
const FLOOD: u64 = 50_000_000;

/// A running `netns-watch` whose stderr may carry far more than lines worth
/// keeping: it is read and counted, and only lines other than `yes`'s are
/// kept.
struct Flooded {
    child: KillOnDrop,
    lines: Receiver<(Out, String)>,
    /// Lines received and not matched yet.
    unmatched: Vec<(Out, String)>,
    stderr_bytes: Arc<AtomicU64>,
}

impl Flooded {
    fn start(args: &[&str], env: (&str, &Path)) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_netns-watch"))
            .args(args)
            .env(env.0, env.1)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start netns-watch");
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let tx_err = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .split(b'\n')
                .map_while(Result::ok)
            {
                let _ = tx.send((Out::Stdout, String::from_utf8_lossy(&line).into_owned()));
            }
        });
        let stderr_bytes = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&stderr_bytes);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            let mut partial: Vec<u8> = Vec::new();
            let keep = |line: &[u8]| {
                if line != b"y" {
                    let line = String::from_utf8_lossy(line).into_owned();
                    let _ = tx_err.send((Out::Stderr, line));
                }
            };
            loop {
                let n = match stderr.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                counter.fetch_add(n as u64, Ordering::Relaxed);
                let mut pieces = buf[..n].split(|b| *b == b'\n');
                let tail = pieces.next_back().unwrap_or_default();
                for piece in pieces {
                    if partial.is_empty() {
                        keep(piece);
                    } else {
                        partial.extend_from_slice(piece);
                        keep(&partial);
                        partial.clear();
                    }
                }
                // A line is kept whole up to 64 KiB; past that, its start.
                let room = (1usize << 16).saturating_sub(partial.len());
                partial.extend_from_slice(&tail[..tail.len().min(room)]);
            }
        });
        Self {
            child: KillOnDrop(child),
            lines,
            unmatched: Vec::new(),
            stderr_bytes,
        }
    }

    /// Waits for a line on `out` for which `wanted` holds (among those
    /// received and not matched yet, then new ones), failing after
    /// [`common::PATIENCE`].
    fn expect(&mut self, out: Out, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        if let Some(i) = self
            .unmatched
            .iter()
            .position(|(o, l)| *o == out && wanted(l))
        {
            return self.unmatched.remove(i).1;
        }
        let deadline = Instant::now() + common::PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((o, line)) if o == out && wanted(&line) => return line,
                Ok(other) => self.unmatched.push(other),
                Err(_) => panic!(
                    "no {out:?} line {what} within {:?}; unmatched: {:#?}",
                    common::PATIENCE,
                    self.unmatched
                ),
            }
        }
    }

    fn added(&mut self, name: &str) {
        let line = format!("add {name}");
        self.expect(Out::Stdout, &format!("for {name}"), |l| l == line);
    }

    fn deleted(&mut self, name: &str) {
        let line = format!("delete {name}");
        self.expect(Out::Stdout, &format!("for {name}"), |l| l == line);
    }

    fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.0.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + common::PATIENCE;
        loop {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "netns-watch did not exit within {:?}",
                common::PATIENCE
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// Ends the process groups of the hooks that recorded one in `dir`, if the
/// test fails while they run (a passing test sees them all end).
struct HookGroups<'a>(&'a Path);

impl Drop for HookGroups<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for entry in fs::read_dir(self.0).into_iter().flatten().flatten() {
            let is_pgid = entry.path().extension() == Some(OsStr::new("pgid"));
            let pid = fs::read_to_string(entry.path())
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .and_then(rustix::process::Pid::from_raw);
            if let (true, Some(pid)) = (is_pgid, pid) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// What each hook does, by the name of the namespace it is run for.
fn hook_script() -> String {
    format!(
        r#"case "$NETNS_NAME" in
             crash) kill -9 $$ ;;
             hang*) echo $$ > "$OUT/$NETNS_NAME.pgid"; sleep 100 ;;
             flood) echo $$ > "$OUT/flood.pgid"
                    yes | head -c {half}
                    yes | head -c {half} >&2
                    echo flood-done >&2 ;;
           esac"#,
        half = FLOOD / 2
    )
}

/// A temporary directory holding `netns` (watched, with a name `ready`) and
/// `out` (where hooks record their process groups).
fn hook_dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = temp_dir();
    let watched = tmp.path().join("netns");
    let out = tmp.path().join("out");
    fs::create_dir(&watched).unwrap();
    fs::create_dir(&out).unwrap();
    touch(&watched, "ready");
    (tmp, watched, out)
}

/// Starts `watch --immediate --initial --format ip` on `watched` with the
/// hooks of [`hook_script`] and `extra` options, and waits until the name
/// present at start is reported: from then on, every change is seen.
fn start_hooked(watched: &Path, out: &Path, extra: &[&str]) -> Flooded {
    let script = hook_script();
    let mut args = vec![
        "watch",
        "--immediate",
        "--initial",
        "--format",
        "ip",
        "--dir",
        watched.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--exec", "sh", "-c", &script]);
    let mut cli = Flooded::start(&args, ("OUT", out));
    cli.added("ready");
    cli
}

/// Ends `cli` with SIGTERM: status 0, and no error logged.
fn terminate(mut cli: Flooded) -> Flooded {
    cli.signal(rustix::process::Signal::TERM);
    assert_eq!(cli.wait_exit(), Some(0), "status after SIGTERM");
    cli
}

/// Reads the rest of `cli`'s output, which ends once no hook is left
/// running, and checks that no error was logged.
fn assert_no_error_logged(cli: &mut Flooded) {
    loop {
        match cli.lines.recv_timeout(common::PATIENCE) {
            Ok(line) => cli.unmatched.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("the output is still open: a hook outlived netns-watch")
            }
        }
    }
    let errors: Vec<_> = cli
        .unmatched
        .iter()
        .filter(|(o, l)| *o == Out::Stderr && l.contains("error"))
        .collect();
    assert_eq!(errors, Vec::<&(Out, String)>::new(), "no error was logged");
}

#[test]
fn a_hook_killed_by_a_signal_does_not_stop_the_watcher() {
    let _shared = shared();
    let (_tmp, watched, out) = hook_dirs();
    let _groups = HookGroups(&out);
    let mut cli = start_hooked(&watched, &out, &[]);

    touch(&watched, "crash");
    cli.added("crash");
    cli.expect(Out::Stderr, "about the crash", |l| {
        l.contains("hook for created crash killed by signal 9")
    });
    touch(&watched, "after-crash");
    cli.added("after-crash");
    fs::remove_file(watched.join("crash")).unwrap();
    cli.deleted("crash");

    let mut cli = terminate(cli);
    assert_no_error_logged(&mut cli);
}

#[test]
fn a_hung_hook_is_ended_by_its_timeout_and_events_go_on() {
    let _shared = shared();
    let (_tmp, watched, out) = hook_dirs();
    let _groups = HookGroups(&out);
    let mut cli = start_hooked(&watched, &out, &["--hook-timeout", "0.5"]);

    touch(&watched, "hang");
    cli.added("hang");
    assert!(
        common::eventually(|| out.join("hang.pgid").exists()),
        "the hook started"
    );
    // Reported while the hook hangs.
    touch(&watched, "during-hang");
    cli.added("during-hang");
    cli.expect(Out::Stderr, "about the timeout", |l| {
        l.contains("hook for created hang still running") && l.contains("killing")
    });
    touch(&watched, "after-hang");
    cli.added("after-hang");

    // SIGTERM while a hook hangs: its timeout ends it, then the watcher.
    touch(&watched, "hang-at-exit");
    cli.added("hang-at-exit");
    assert!(
        common::eventually(|| out.join("hang-at-exit.pgid").exists()),
        "the last hook started"
    );
    let mut cli = terminate(cli);
    cli.expect(Out::Stderr, "about the timeout at exit", |l| {
        l.contains("hook for created hang-at-exit still running") && l.contains("killing")
    });
    assert_no_error_logged(&mut cli);
}

#[test]
fn a_hook_flooding_its_output_does_not_stop_the_watcher() {
    let _shared = shared();
    let (_tmp, watched, out) = hook_dirs();
    let _groups = HookGroups(&out);
    let mut cli = start_hooked(&watched, &out, &[]);

    touch(&watched, "flood");
    cli.added("flood");
    touch(&watched, "during-flood");
    cli.added("during-flood");
    cli.expect(Out::Stderr, "at the end of the flood", |l| {
        l.ends_with("flood-done")
    });
    let flooded = cli.stderr_bytes.load(Ordering::Relaxed);
    assert!(flooded >= FLOOD, "only {flooded} bytes of hook output read");
    touch(&watched, "after-flood");
    cli.added("after-flood");

    let mut cli = terminate(cli);
    assert_no_error_logged(&mut cli);
}
