//! What the integration tests share: temp dirs, event collection with
//! timeouts, a replay that checks an event stream's consistency, and a
//! private `/run` for tests that use `ip netns`.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use netns_watch::{Event, NamespaceWatcher};

/// Makes, for each `case` (an `async fn(MountSource)`), one test per mount
/// source that sees unmounts: `fanotify::case` and `mountinfo::case`.
#[allow(unused_macros)]
macro_rules! for_each_source {
    ($($case:ident),* $(,)?) => {
        mod fanotify {
            $(#[tokio::test] async fn $case() { super::$case(netns_watch::MountSource::Fanotify).await })*
        }
        mod mountinfo {
            $(#[tokio::test] async fn $case() { super::$case(netns_watch::MountSource::Mountinfo).await })*
        }
    };
}

/// How long any single expected event may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A fresh temporary directory, removed when dropped.
///
/// It lives on the tmpfs `/dev/shm` when there is one, as namespace
/// directories do on `/run` (on these machines, creating a file on the disk
/// filesystem costs about 0.8 ms, on tmpfs about 10 us).
pub fn temp_dir() -> tempfile::TempDir {
    let mut builder = tempfile::Builder::new();
    builder.prefix("netns-watch-test-");
    let shm = Path::new("/dev/shm");
    let made = if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    };
    made.expect("cannot create a temporary directory")
}

/// Receives the next event, failing the test after [`PATIENCE`].
pub async fn next(watcher: &mut NamespaceWatcher) -> Event {
    match tokio::time::timeout(PATIENCE, watcher.recv()).await {
        Ok(Ok(Some(event))) => event,
        Ok(Ok(None)) => panic!("the watcher ended"),
        Ok(Err(err)) => panic!("the watcher failed: {err}"),
        Err(_) => panic!("no event within {PATIENCE:?}"),
    }
}

/// Creates the plain file `dir/name`, failing the test if it cannot.
pub fn touch(dir: &Path, name: impl AsRef<OsStr>) -> PathBuf {
    let path = dir.join(name.as_ref());
    std::fs::File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    path
}

/// Makes `dir/SENTINEL`, waits for it to be reported, removes it, and
/// returns every other event received until its removal is reported.
///
/// Every change made in `dir` before the sentinel reaches the kernel
/// before the sentinel's own events (a rescan may report the sentinel
/// early, but never a change made after its removal), so the result is
/// everything those changes produced: an exact way to assert that nothing
/// else was reported, without sleeping.
///
/// In immediate mode the sentinel is a plain file; otherwise it is a
/// namespace (the test's own, bind-mounted), which needs root.
pub async fn settle(watcher: &mut NamespaceWatcher, dir: &Path) -> Vec<Event> {
    const SENTINEL: &str = ".sentinel";
    let mounted = watcher.mount_source().is_some();
    let is_sentinel = |e: &Event| {
        e.namespace()
            .is_some_and(|n| n.name == SENTINEL && n.dir == dir)
    };
    let path = touch(dir, SENTINEL);
    if mounted {
        rustix::mount::mount_bind("/proc/thread-self/ns/net", &path)
            .expect("bind-mount the sentinel namespace");
    }
    let mut events = Vec::new();
    loop {
        let event = next(watcher).await;
        if matches!(&event, Event::Created(_) if is_sentinel(&event)) {
            break;
        }
        events.push(event);
    }
    if mounted {
        rustix::mount::unmount(&path, rustix::mount::UnmountFlags::DETACH)
            .expect("unmount the sentinel");
    }
    std::fs::remove_file(&path).unwrap();
    loop {
        let event = next(watcher).await;
        if matches!(&event, Event::Deleted(_) if is_sentinel(&event)) {
            return events;
        }
        events.push(event);
    }
}

/// Names of the `Created` and `Deleted` events in order, as `+name`/`-name`.
pub fn changes(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Created(ns) => Some(format!("+{}", ns.name.to_string_lossy())),
            Event::Deleted(ns) => Some(format!("-{}", ns.name.to_string_lossy())),
            _ => None,
        })
        .collect()
}

/// The state an event stream describes, checked as it is applied: no
/// name created twice without a deletion between, no deletion of a name
/// that is not there.
#[derive(Debug, Default)]
pub struct Replay {
    pub present: BTreeSet<(PathBuf, OsString)>,
    pub overflows: usize,
}

impl Replay {
    /// Starts from a listing (as from `list_and_watch`).
    pub fn from_list(list: &[netns_watch::Namespace]) -> Self {
        Self {
            present: list
                .iter()
                .map(|n| (n.dir.clone(), n.name.clone()))
                .collect(),
            overflows: 0,
        }
    }

    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Created(ns) => assert!(
                self.present.insert((ns.dir.clone(), ns.name.clone())),
                "{} reported created twice",
                ns.path().display()
            ),
            Event::Deleted(ns) => assert!(
                self.present.remove(&(ns.dir.clone(), ns.name.clone())),
                "{} reported deleted but was not present",
                ns.path().display()
            ),
            Event::Overflow => self.overflows += 1,
            _ => {}
        }
    }

    pub fn names_in(&self, dir: &Path) -> BTreeSet<OsString> {
        self.present
            .iter()
            .filter(|(d, _)| d == dir)
            .map(|(_, n)| n.clone())
            .collect()
    }
}

/// The non-directory entries of `dir` now, as the watcher should see them.
pub fn real_names(dir: &Path) -> BTreeSet<OsString> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_type().unwrap().is_dir())
        .map(|e| e.file_name())
        .collect()
}

/// Runs a command, failing the test with its stderr if it fails.
pub fn run(program: &str, args: &[&OsStr]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `ip ARGS...`.
pub fn ip(args: &[&str]) {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    run("ip", &args);
}

/// A private mount namespace for the current thread, with an empty tmpfs
/// on `/run`: `ip netns` run from this thread (and the watchers it starts)
/// see only the namespaces the test makes, and nobody else sees them.
///
/// Needs root. Without it the test fails with a message, never passes.
/// Dropping it deletes every namespace made under it; leaving the thread
/// then releases the mount namespace itself.
///
/// Tests using it must run on their own thread with a current-thread
/// runtime (`#[tokio::test]`'s default), so that every system call of the
/// watcher happens in the private mount namespace.
pub struct PrivateRun {
    _private: (),
}

impl PrivateRun {
    pub fn new() -> Self {
        use rustix::mount::{mount, mount_change, MountFlags, MountPropagationFlags};
        use rustix::thread::{unshare_unsafe, UnshareFlags};

        assert!(
            rustix::process::geteuid().is_root(),
            "this test needs root (it makes network namespaces with `ip netns`): \
             run the test suite as root"
        );
        // SAFETY: NEWNS does not unshare the file descriptor table, so no
        // thread can observe a descriptor from another table.
        unsafe { unshare_unsafe(UnshareFlags::NEWNS) }.expect("unshare(CLONE_NEWNS)");
        mount_change(
            "/",
            MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
        )
        .expect("make / private");
        mount(
            "netns-watch-test",
            "/run",
            "tmpfs",
            MountFlags::empty(),
            c"mode=755",
        )
        .expect("mount a tmpfs on /run");
        Self { _private: () }
    }
}

impl Drop for PrivateRun {
    fn drop(&mut self) {
        if !Path::new("/run/netns").exists() {
            let _ = rustix::mount::unmount("/run", rustix::mount::UnmountFlags::DETACH);
            return;
        }
        let status = Command::new("ip")
            .args(["-all", "netns", "delete"])
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("warning: `ip -all netns delete` failed while cleaning up: {status:?}");
        }
        let _ = rustix::mount::unmount("/run", rustix::mount::UnmountFlags::DETACH);
    }
}

/// Runs `steps` on another thread while the watchers keep reading, as a
/// watcher running beside the commands would, then settles each watcher
/// (see [`settle`]) on its directory. Returns each watcher's events.
///
/// The thread is made from the current one, so it shares its private
/// mount namespace (see [`PrivateRun`]).
pub async fn during(
    watchers: &mut [(&mut NamespaceWatcher, &Path)],
    steps: impl FnOnce() + Send + 'static,
) -> Vec<Vec<Event>> {
    use futures_util::StreamExt;

    let (done_tx, mut done) = tokio::sync::oneshot::channel();
    let worker = std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(steps));
        let _ = done_tx.send(());
        outcome
    });

    let mut events: Vec<Vec<Event>> = watchers.iter().map(|_| Vec::new()).collect();
    {
        let mut all = futures_util::stream::select_all(
            watchers
                .iter_mut()
                .enumerate()
                .map(|(i, (w, _))| (&mut **w).map(move |e| (i, e))),
        );
        let deadline = tokio::time::sleep(PATIENCE * 6);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut done => break,
                _ = &mut deadline => panic!("the steps did not finish within {:?}", PATIENCE * 6),
                Some((i, event)) = all.next() => {
                    events[i].push(event.unwrap_or_else(|e| panic!("the watcher failed: {e}")));
                }
            }
        }
    }
    if let Err(panic) = worker.join().expect("join the steps' thread") {
        std::panic::resume_unwind(panic);
    }
    for (i, (w, dir)) in watchers.iter_mut().enumerate() {
        let rest = settle(w, dir).await;
        events[i].extend(rest);
    }
    events
}

/// Checks `condition` until it holds, for at most [`PATIENCE`]; for effects
/// the kernel completes in the background. Returns whether it held.
pub fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < PATIENCE {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

/// Kills a child process (by its PID) and reaps it when dropped, so that a
/// failing test leaves no process behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A command prefix that runs what follows as `nobody`, with no
/// capabilities (util-linux `setpriv`).
pub const NOBODY: [&str; 6] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all",
    "--",
];

/// Which output of a child a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Out {
    Stdout,
    Stderr,
}

/// A running `netns-watch`, its output read line by line on other threads.
pub struct Running {
    pub child: KillOnDrop,
    lines: std::sync::mpsc::Receiver<(Out, String)>,
    /// Every line received so far, in order.
    pub seen: Vec<(Out, String)>,
}

impl Running {
    /// Starts `netns-watch ARGS...` (optionally through `wrapper`, such as
    /// `setpriv ...`), in `cwd` when given.
    pub fn start(wrapper: &[&str], args: &[&str], cwd: Option<&Path>) -> Self {
        use std::io::BufRead;
        use std::process::Stdio;

        let bin = env!("CARGO_BIN_EXE_netns-watch");
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let mut child = command.spawn().expect("start netns-watch");
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let tx_err = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .split(b'\n')
                .map_while(Result::ok)
            {
                let _ = tx.send((Out::Stdout, String::from_utf8_lossy(&line).into_owned()));
            }
        });
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .split(b'\n')
                .map_while(Result::ok)
            {
                let _ = tx_err.send((Out::Stderr, String::from_utf8_lossy(&line).into_owned()));
            }
        });
        Self {
            child: KillOnDrop(child),
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line on `out` for which `wanted` holds, failing the test
    /// after [`PATIENCE`]; returns it.
    pub fn expect(&mut self, out: Out, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((o, line)) => {
                    self.seen.push((o, line.clone()));
                    if o == out && wanted(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no {out:?} line {what} within {PATIENCE:?} (process: {:?}); seen: {:#?}",
                    self.child.0.try_wait(),
                    self.seen
                ),
            }
        }
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.0.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    /// Waits for the process to exit, failing after [`PATIENCE`]; returns
    /// its exit code (`None` if a signal ended it).
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                // Collect what is left of the output.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(line);
                }
                return status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "netns-watch did not exit within {PATIENCE:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Like [`eventually`], for at most `limit`.
pub fn eventually_for(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

/// Runs a command with `input` on its standard input, failing the test if
/// it fails.
pub fn run_with_input(program: &str, args: &[&str], input: &[u8]) {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    assert!(child.wait().unwrap().success(), "{program} {args:?} failed");
}

/// Injected into the second mount(2) of `ip netns add` (the bind, when the
/// directory is set up already): wait 0.5 s before it.
pub const DELAY_BIND: &str = "inject=mount:delay_enter=500000:when=2";
/// Injected into the same call: fail it with EPERM, after the placeholder
/// was created (`ip` then removes it).
pub const FAIL_BIND: &str = "inject=mount:error=EPERM:when=2";

/// Runs `ip netns add NAME` under `strace -e INJECT`, returning its output.
pub fn ip_add_injected(inject: &str, name: &str) -> std::process::Output {
    Command::new("strace")
        .args([
            "-f",
            "-o",
            "/dev/null",
            "-e",
            inject,
            "ip",
            "netns",
            "add",
            name,
        ])
        .output()
        .expect("run strace (is it installed?)")
}
