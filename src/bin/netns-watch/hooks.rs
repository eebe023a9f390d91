//! Running a command for each event: in order for each namespace, in
//! parallel across namespaces up to a limit, with a timeout, and never
//! through a shell.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use netns_watch::Event;
#[cfg(test)]
use netns_watch::Identity;
use tokio::process::Command;
use tokio::task::JoinSet;

/// Where a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Here, for every event.
    Here,
    /// Inside each created namespace (only for `created` events).
    InNamespace,
}

/// What to run, and how.
#[derive(Debug)]
pub(crate) struct HookSpec {
    pub(crate) place: Place,
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    pub(crate) jobs: usize,
    pub(crate) timeout: Option<Duration>,
}

/// Hooks for one namespace (or one directory) run one at a time, in order.
type Key = (PathBuf, OsString);

#[derive(Debug)]
struct Job {
    event: Event,
    initial: bool,
}

/// The hooks waiting and running.
#[derive(Debug)]
pub(crate) struct Hooks {
    spec: Arc<HookSpec>,
    queues: HashMap<Key, VecDeque<Job>>,
    /// Keys with queued jobs and none running, oldest first.
    ready: VecDeque<Key>,
    running: HashSet<Key>,
    tasks: JoinSet<Key>,
    /// Hooks queued and not started.
    waiting: usize,
    /// Pairs of hooks cancelled while the queue was crowded.
    cancelled: usize,
}

/// Waiting hooks beyond which creations and deletions that cancel out are
/// dropped in pairs.
const BACKLOG: usize = 10_000;

/// Whether `next` undoes `queued`: the deletion of the very namespace (same
/// identity) whose creation is still waiting.
fn cancels(queued: Option<&Event>, next: &Event) -> bool {
    match (queued, next) {
        (Some(Event::Created(a)), Event::Deleted(b)) => a == b,
        _ => false,
    }
}

impl Hooks {
    pub(crate) fn new(spec: HookSpec) -> Self {
        Self {
            spec: Arc::new(spec),
            queues: HashMap::new(),
            ready: VecDeque::new(),
            running: HashSet::new(),
            tasks: JoinSet::new(),
            waiting: 0,
            cancelled: 0,
        }
    }

    /// Queues the hook for `event` and starts what may start.
    ///
    /// The queue is held in memory, so events keep being read from the
    /// kernel while hooks run: a slow hook delays later hooks but makes no
    /// event lost. Past [`BACKLOG`] waiting hooks, the queue is resynced
    /// instead of growing: a deletion cancels the creation of the same
    /// namespace still waiting before it, as neither would leave a trace,
    /// so what waits stays bounded by the number of names.
    pub(crate) fn submit(&mut self, event: &Event, initial: bool) {
        if self.spec.place == Place::InNamespace && !matches!(event, Event::Created(_)) {
            return;
        }
        let key = key_of(event);
        let crowded = self.waiting >= BACKLOG;
        let queue = self.queues.entry(key.clone()).or_default();
        if crowded && cancels(queue.back().map(|job| &job.event), event) {
            queue.pop_back();
            self.waiting -= 1;
            self.cancelled += 1;
            if self.cancelled.is_power_of_two() {
                tracing::warn!(
                    "hooks fall behind: {} creations and deletions that cancel out were not run",
                    self.cancelled
                );
            }
            return;
        }
        queue.push_back(Job {
            event: event.clone(),
            initial,
        });
        self.waiting += 1;
        if queue.len() == 1 && !self.running.contains(&key) {
            self.ready.push_back(key);
        }
        self.start_ready();
    }

    /// Whether nothing runs and nothing waits.
    pub(crate) fn is_idle(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Waits for one running hook to end, then starts what may start.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a hook that ended is reported by the next call.
    pub(crate) async fn next_done(&mut self) {
        if let Some(done) = self.tasks.join_next().await {
            match done {
                Ok(key) => {
                    self.running.remove(&key);
                    if self.queues.get(&key).is_some_and(|q| !q.is_empty()) {
                        self.ready.push_back(key);
                    }
                }
                Err(err) => tracing::error!("a hook task failed: {err}"),
            }
            self.start_ready();
        }
    }

    /// Drops the hooks not started yet and waits for the running ones
    /// (each is bounded by the hook timeout, when one is set).
    pub(crate) async fn shutdown(mut self) {
        let dropped: usize = self.queues.values().map(VecDeque::len).sum();
        if dropped > 0 {
            tracing::warn!("stopping: {dropped} queued hooks will not run");
        }
        if !self.tasks.is_empty() {
            tracing::info!("stopping: waiting for {} running hooks", self.tasks.len());
        }
        while self.tasks.join_next().await.is_some() {}
    }

    fn start_ready(&mut self) {
        while self.tasks.len() < self.spec.jobs {
            let Some(key) = self.ready.pop_front() else {
                return;
            };
            let Some(job) = self.queues.get_mut(&key).and_then(VecDeque::pop_front) else {
                continue;
            };
            self.waiting -= 1;
            if self.queues.get(&key).is_some_and(VecDeque::is_empty) {
                self.queues.remove(&key);
            }
            self.running.insert(key.clone());
            let spec = Arc::clone(&self.spec);
            self.tasks.spawn(async move {
                run(&spec, &job).await;
                key
            });
        }
    }
}

fn key_of(event: &Event) -> Key {
    match event.namespace() {
        Some(ns) => (ns.dir.clone(), ns.name.clone()),
        None => (
            event.dir().map(PathBuf::from).unwrap_or_default(),
            OsString::new(),
        ),
    }
}

/// Runs one hook to its end (or its timeout), logging how it ended.
async fn run(spec: &HookSpec, job: &Job) {
    let what = describe(job);
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .envs(environment(&job.event, job.initial))
        .stdin(Stdio::null())
        // Hook output goes to stderr, so stdout carries only events.
        .stdout(stderr_copy())
        .kill_on_drop(false)
        // Its own process group, so a timeout ends everything it started.
        .process_group(0);

    let netns = if spec.place == Place::InNamespace {
        match open_named_namespace(&job.event) {
            Ok(fd) => Some(fd),
            Err(reason) => {
                tracing::warn!("hook for {what} not run: {reason}");
                return;
            }
        }
    } else {
        None
    };
    if let Some(fd) = &netns {
        let raw = fd.as_raw_fd();
        // SAFETY: only setns(2), a single async-signal-safe system call, runs
        // between fork and exec; `raw` stays open until after the spawn.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            tracing::warn!(
                "hook for {what}: cannot run {}: {err}",
                spec.program.to_string_lossy()
            );
            return;
        }
    };
    drop(netns);
    let pid = child.id();
    let status = match spec.timeout {
        None => child.wait().await,
        Some(limit) => match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                tracing::warn!("hook for {what} still running after {limit:?}; killing it");
                if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                child.wait().await
            }
        },
    };
    match status {
        Ok(status) if status.success() => tracing::debug!("hook for {what} succeeded"),
        Ok(status) => match status.code() {
            Some(code) => tracing::warn!("hook for {what} exited with status {code}"),
            None => tracing::warn!(
                "hook for {what} killed by signal {}",
                status.signal().unwrap_or(0)
            ),
        },
        Err(err) => tracing::warn!("hook for {what}: {err}"),
    }
}

/// The variables that describe an event to its hook. Values are passed as
/// they are (bytes), never through a shell.
pub(crate) fn environment(event: &Event, initial: bool) -> Vec<(&'static str, OsString)> {
    let mut env = vec![
        ("NETNS_EVENT", OsString::from(event.kind())),
        (
            "NETNS_INITIAL",
            OsString::from(if initial { "1" } else { "0" }),
        ),
    ];
    if let Some(dir) = event.dir() {
        env.push(("NETNS_DIR", dir.as_os_str().to_owned()));
    }
    if let Some(ns) = event.namespace() {
        env.push(("NETNS_NAME", ns.name.clone()));
        env.push(("NETNS_PATH", ns.path().into_os_string()));
        if let Some(identity) = ns.identity {
            if let Some(id) = identity.id {
                env.push(("NETNS_ID", OsString::from(id.to_string())));
            }
            env.push(("NETNS_INODE", OsString::from(identity.inode.to_string())));
        }
    }
    env
}

/// Opens the namespace the event named, refusing any other: if the name
/// was re-bound or removed since, the hook must not run in what is there now.
fn open_named_namespace(event: &Event) -> Result<OwnedFd, String> {
    let Event::Created(ns) = event else {
        return Err("not a creation".into());
    };
    let path = ns.path();
    let fd = rustix::fs::open(
        &path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::NOFOLLOW,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| format!("{}: {e}", crate::output::escape(path.as_os_str())))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| e.to_string())?;
    let expected = ns.identity.ok_or("no identity (immediate mode)")?;
    if (stat.st_ino, stat.st_dev) != (expected.inode, expected.dev) {
        return Err(format!(
            "{} now points to another namespace",
            crate::output::escape(path.as_os_str())
        ));
    }
    Ok(fd)
}

/// A description of the job for logs: `created blue`.
fn describe(job: &Job) -> String {
    match job.event.namespace() {
        Some(ns) => format!("{} {}", job.event.kind(), crate::output::escape(&ns.name)),
        None => job.event.kind().to_owned(),
    }
}

fn stderr_copy() -> Stdio {
    match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => Stdio::from(fd),
        Err(_) => Stdio::null(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netns_watch::Namespace;

    #[test]
    fn only_the_deletion_of_the_same_waiting_namespace_cancels() {
        let a = Namespace::new("/run/netns", "a");
        let mut other = a.clone();
        other.identity = Some(Identity::of_current_thread().unwrap());
        let created = Event::Created(a.clone());
        assert!(cancels(Some(&created), &Event::Deleted(a.clone())));
        assert!(!cancels(Some(&created), &Event::Deleted(other)));
        assert!(!cancels(
            Some(&Event::Deleted(a.clone())),
            &Event::Created(a.clone())
        ));
        assert!(!cancels(None, &Event::Deleted(a)));
    }
}
