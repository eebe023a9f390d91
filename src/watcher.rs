//! The watcher: inotify watches kept on every directory and its ancestors,
//! kernel events turned into facts, and reconciled events handed out.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::config::{absolute, Config};
use crate::inotify::{Inotify, RawEvent, Signal, Wd};
use crate::reconciler::{DirIndex, EntryKind, Fact, Reconciler};
use crate::{scan, Error, Event, Namespace, Result};

/// Watches directories of named network namespaces and reports each name
/// appearing and disappearing, exactly once and in order.
///
/// Every configured directory is watched with inotify, together with each
/// of its ancestors (so that the directory being created, deleted, moved or
/// replaced is noticed). Whenever the kernel's word is in doubt, such as a
/// queue overflow or a directory that was replaced, the watcher rescans
/// and reports only the difference against what it reported before, so no
/// change is lost and none is reported twice.
///
/// Namespaces already present when the watcher starts are its baseline and
/// are not reported; get them with [`list_and_watch`](Self::list_and_watch).
///
/// # Examples
///
/// ```no_run
/// use netns_watch::{Event, NamespaceWatcher};
///
/// # async fn run() -> netns_watch::Result<()> {
/// let mut watcher = NamespaceWatcher::new().await?;
/// while let Some(event) = watcher.recv().await? {
///     match event {
///         Event::Created(ns) => println!("added {}", ns.name.to_string_lossy()),
///         Event::Deleted(ns) => println!("deleted {}", ns.name.to_string_lossy()),
///         _ => {}
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct NamespaceWatcher {
    inotify: Inotify,
    dirs: Vec<WatchedDir>,
    /// Who cares about each watch descriptor; one descriptor can serve
    /// several directories (two spellings of one directory, or a directory
    /// that is another's ancestor).
    interests: HashMap<Wd, Vec<Interest>>,
    reconciler: Reconciler,
    pending: VecDeque<Result<Event>>,
    batch: Vec<RawEvent>,
}

/// One configured directory and the chain of watches that leads to it.
#[derive(Debug)]
struct WatchedDir {
    /// `prefixes[i]` is the path made of the first `i + 1` components; the
    /// last one is the directory itself.
    prefixes: Vec<PathBuf>,
    /// `children[i]` is the name under `prefixes[i]` that leads on.
    children: Vec<OsString>,
    /// The descriptors of the prefixes watched now, from the root down; the
    /// directory itself is watched when this is as long as `prefixes`.
    wds: Vec<Wd>,
}

impl WatchedDir {
    fn new(dir: &Path) -> Result<Self> {
        let abs = absolute(dir).map_err(|source| Error::from_path(dir, source))?;
        if abs.components().any(|c| c == Component::ParentDir) {
            return Err(Error::InvalidPath {
                path: dir.to_path_buf(),
                reason: "contains '..'; give the path without it",
            });
        }
        let mut prefixes: Vec<PathBuf> = abs.ancestors().map(Path::to_path_buf).collect();
        prefixes.reverse();
        let children = prefixes
            .iter()
            .skip(1)
            .filter_map(|p| p.file_name().map(OsString::from))
            .collect();
        Ok(Self {
            prefixes,
            children,
            wds: Vec::new(),
        })
    }

    fn own_level(&self) -> usize {
        self.prefixes.len() - 1
    }

    fn path(&self) -> &Path {
        &self.prefixes[self.own_level()]
    }

    /// The descriptor of the directory itself, if it is watched.
    fn own_wd(&self) -> Option<Wd> {
        self.wds.get(self.own_level()).copied()
    }
}

/// One reason to listen to a watch descriptor: it is level `level` of the
/// chain of directory `dir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interest {
    dir: DirIndex,
    level: usize,
}

impl NamespaceWatcher {
    /// Starts watching the iproute2 directory [`/var/run/netns`](crate::IPROUTE2_DIR),
    /// waiting for it if it does not exist yet.
    ///
    /// # Errors
    ///
    /// Fails if inotify cannot be used (see [`Error::InstanceLimit`] and
    /// [`Error::WatchLimit`]) or if the path or an ancestor cannot be read.
    pub async fn new() -> Result<Self> {
        Self::with_config(Config::default()).await
    }

    /// Starts watching as `config` says.
    ///
    /// # Errors
    ///
    /// Fails if no directory is configured, if inotify cannot be used, if a
    /// path is not a directory or cannot be read, or if a directory is
    /// missing while [`Config::watch_parent`] is off.
    pub async fn with_config(config: Config) -> Result<Self> {
        Self::start(config)
    }

    /// Lists the namespaces present now and starts watching
    /// [`/var/run/netns`](crate::IPROUTE2_DIR), with no gap and no
    /// duplicate between the two.
    ///
    /// The listing is taken after the watches are in place, and the watcher
    /// continues from exactly that state: a name in the list is reported
    /// again only after it was deleted, and a name created after the
    /// listing is reported.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub async fn list_and_watch() -> Result<(Vec<Namespace>, Self)> {
        Self::list_and_watch_with_config(Config::default()).await
    }

    /// Like [`list_and_watch`](Self::list_and_watch), as `config` says.
    ///
    /// # Errors
    ///
    /// As [`with_config`](Self::with_config).
    pub async fn list_and_watch_with_config(config: Config) -> Result<(Vec<Namespace>, Self)> {
        let watcher = Self::with_config(config).await?;
        Ok((watcher.namespaces(), watcher))
    }

    /// Lists the namespaces in [`/var/run/netns`](crate::IPROUTE2_DIR) now,
    /// sorted by name. A missing directory holds none.
    ///
    /// # Errors
    ///
    /// Fails if the path is not a directory or cannot be read.
    pub fn list() -> Result<Vec<Namespace>> {
        Self::list_dir(crate::IPROUTE2_DIR)
    }

    /// Lists the namespaces in `dir` now, sorted by name. A missing
    /// directory holds none.
    ///
    /// # Errors
    ///
    /// Fails if `dir` is not a directory or cannot be read.
    pub fn list_dir(dir: impl AsRef<Path>) -> Result<Vec<Namespace>> {
        let dir = dir.as_ref();
        if let Ok(meta) = std::fs::metadata(dir) {
            if !meta.is_dir() {
                return Err(Error::NotADirectory { path: dir.into() });
            }
        }
        let entries = scan::list(dir).map_err(|source| Error::from_path(dir, source))?;
        let mut found: Vec<Namespace> = entries
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, kind)| *kind == EntryKind::Namespace)
            .map(|(name, _)| Namespace::new(dir, name))
            .collect();
        found.sort();
        Ok(found)
    }

    /// Lists the namespaces in every directory of `config` now: by
    /// directory in configuration order, then by name.
    ///
    /// # Errors
    ///
    /// As [`list_dir`](Self::list_dir), for the first directory that fails.
    pub fn list_with_config(config: &Config) -> Result<Vec<Namespace>> {
        let mut all = Vec::new();
        for dir in config.dirs() {
            all.extend(Self::list_dir(dir)?);
        }
        Ok(all)
    }

    /// Returns the namespaces as this watcher's events have reported them
    /// so far: by directory in configuration order, then by name.
    pub fn namespaces(&self) -> Vec<Namespace> {
        self.reconciler.namespaces()
    }

    /// Returns whether every configured directory is watched itself, rather
    /// than through an ancestor while it does not exist.
    pub fn is_watching(&self) -> bool {
        self.dirs.iter().all(|d| d.own_wd().is_some())
    }

    /// Receives the next event.
    ///
    /// Returns `Ok(None)` only if the kernel closed the event source, which
    /// does not happen in practice. An `Err` reports one failure (such as a
    /// directory that became unreadable); the watcher goes on after it.
    ///
    /// # Errors
    ///
    /// See [`Error`]; a failure to read inotify is [`Error::Inotify`].
    ///
    /// # Cancel safety
    ///
    /// This method is cancel-safe: if it is dropped before completing (for
    /// example in `tokio::select!`), no event is lost, and the next call
    /// returns it.
    pub async fn recv(&mut self) -> Result<Option<Event>> {
        std::future::poll_fn(|cx| self.poll_event(cx))
            .await
            .transpose()
    }

    /// Turns the watcher into a [`Stream`] of events.
    ///
    /// The watcher is already a stream; this only names the intent.
    pub fn into_stream(self) -> impl Stream<Item = Result<Event>> + Send + Unpin {
        self
    }

    fn start(config: Config) -> Result<Self> {
        if config.dirs().is_empty() {
            return Err(Error::InvalidPath {
                path: PathBuf::new(),
                reason: "no directory to watch was given",
            });
        }
        let dirs = config
            .dirs()
            .iter()
            .map(|d| WatchedDir::new(d))
            .collect::<Result<Vec<_>>>()?;
        let mut watcher = Self {
            inotify: Inotify::new()?,
            dirs,
            interests: HashMap::new(),
            reconciler: Reconciler::new(config.dirs().to_vec(), config.emits_directory_events()),
            pending: VecDeque::new(),
            batch: Vec::new(),
        };

        for dir in 0..watcher.dirs.len() {
            watcher.resync(dir)?;
            let d = &watcher.dirs[dir];
            if d.own_wd().is_none() {
                let path = config.dirs()[dir].clone();
                if std::fs::symlink_metadata(d.path()).is_ok() || !config.watches_parent() {
                    // It exists but could not be watched as a directory, or
                    // it is missing and may not be waited for.
                    return Err(start_error(path, d.path()));
                }
                tracing::debug!(dir = %path.display(), "directory missing; watching its nearest ancestor");
            }
        }
        // What is present at start is the baseline, not news.
        watcher.pending.clear();
        Ok(watcher)
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        loop {
            if let Some(next) = self.pending.pop_front() {
                return Poll::Ready(Some(next));
            }
            let mut batch = std::mem::take(&mut self.batch);
            batch.clear();
            let read = self.inotify.poll_read(cx, &mut batch);
            match read {
                Poll::Pending => {
                    self.batch = batch;
                    return Poll::Pending;
                }
                Poll::Ready(Err(source)) => {
                    self.batch = batch;
                    return Poll::Ready(Some(Err(Error::Inotify { source })));
                }
                Poll::Ready(Ok(())) => {}
            }
            // The whole batch becomes pending events before anything is
            // returned, so cancelling the caller loses nothing.
            for raw in batch.drain(..) {
                self.handle(&raw);
            }
            self.batch = batch;
        }
    }

    /// Turns one kernel event into facts, rescans and events.
    fn handle(&mut self, raw: &RawEvent) {
        tracing::trace!(wd = raw.wd, mask = ?raw.mask, name = ?raw.name, "inotify event");
        let signal = raw.signal();
        if signal == Signal::Overflow {
            tracing::warn!("inotify queue overflowed; rescanning every watched directory");
            for dir in 0..self.dirs.len() {
                self.resync_or_report(dir);
            }
            self.pending.push_back(Ok(Event::Overflow));
            return;
        }
        let Some(interests) = self.interests.get(&raw.wd).cloned() else {
            // A watch removed a moment ago still had events queued.
            return;
        };
        for interest in interests {
            // An earlier interest's rescan may have moved this one away.
            if !self
                .interests
                .get(&raw.wd)
                .is_some_and(|i| i.contains(&interest))
            {
                continue;
            }
            let dir = &self.dirs[interest.dir];
            let own = interest.level == dir.own_level();
            let fact = match &signal {
                Signal::SelfChanged => None,
                Signal::Added { name, is_dir } if own => Some(Fact::Appeared {
                    dir: interest.dir,
                    name: (*name).clone(),
                    kind: if *is_dir {
                        EntryKind::Ignored
                    } else {
                        EntryKind::Namespace
                    },
                }),
                Signal::Removed { name } if own => Some(Fact::Vanished {
                    dir: interest.dir,
                    name: (*name).clone(),
                }),
                Signal::Added { name, .. } | Signal::Removed { name }
                    if **name == dir.children[interest.level] =>
                {
                    None
                }
                _ => continue,
            };
            match fact {
                Some(fact) => self.reconciler.apply(fact, &mut OkSink(&mut self.pending)),
                None => {
                    tracing::debug!(dir = %dir.path().display(), "path changed; rescanning");
                    self.resync_or_report(interest.dir);
                }
            }
        }
    }

    /// Rescans `dir`, reporting a failure in-band: the watcher goes on.
    fn resync_or_report(&mut self, dir: DirIndex) {
        if let Err(err) = self.resync(dir) {
            self.pending.push_back(Err(err));
        }
    }

    /// Re-establishes the chain of watches of `dir` and rescans it,
    /// queueing the difference against the reconciled state.
    ///
    /// The listing is read synchronously: these directories hold few
    /// entries on fast in-memory filesystems (about 1 us per entry).
    fn resync(&mut self, dir: DirIndex) -> Result<()> {
        // Each prefix is watched before the next one is looked up, so a
        // component created meanwhile is either found here or reported by
        // the watch just placed on its parent.
        let mut wds = Vec::new();
        let mut failure = None;
        for prefix in &self.dirs[dir].prefixes {
            match self.inotify.add(prefix) {
                Ok(wd) => wds.push(wd),
                Err(err) if scan::is_missing(&err) => break,
                Err(err) => {
                    failure = Some(Error::from_path(prefix, err));
                    break;
                }
            }
        }

        let old = std::mem::replace(&mut self.dirs[dir].wds, wds.clone());
        for (level, wd) in old.iter().enumerate() {
            if wds.get(level) != Some(wd) {
                self.forget(*wd, Interest { dir, level });
            }
        }
        for (level, wd) in wds.iter().enumerate() {
            if old.get(level) != Some(wd) {
                self.interests
                    .entry(*wd)
                    .or_default()
                    .push(Interest { dir, level });
            }
        }

        // A new descriptor for the directory itself means a new directory:
        // whatever the old one held is gone with it.
        let own = self.dirs[dir].own_level();
        let (was, is) = (old.get(own), wds.get(own));
        if was.is_some() && was != is {
            self.reconciler.apply(
                Fact::Listed { dir, entries: None },
                &mut OkSink(&mut self.pending),
            );
        }
        let entries = if is.is_some() {
            let path = self.dirs[dir].path();
            match scan::list(path) {
                Ok(entries) => entries,
                Err(err) => return Err(Error::from_path(path, err)),
            }
        } else {
            None
        };
        self.reconciler.apply(
            Fact::Listed { dir, entries },
            &mut OkSink(&mut self.pending),
        );
        failure.map_or(Ok(()), Err)
    }

    /// Drops one interest in `wd`, and the watch itself once nobody cares.
    fn forget(&mut self, wd: Wd, interest: Interest) {
        if let Some(list) = self.interests.get_mut(&wd) {
            list.retain(|i| *i != interest);
            if list.is_empty() {
                self.interests.remove(&wd);
                self.inotify.remove(wd);
            }
        }
    }
}

/// Builds the error for a directory that could not be watched at start.
fn start_error(configured: PathBuf, abs: &Path) -> Error {
    match std::fs::metadata(abs) {
        Ok(meta) if !meta.is_dir() => Error::NotADirectory { path: configured },
        Ok(_) => Error::PermissionDenied { path: configured },
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Error::NotFound { path: configured }
        }
        Err(err) => Error::from_path(configured, err),
    }
}

/// Lets the reconciler append events to the queue of results.
struct OkSink<'a>(&'a mut VecDeque<Result<Event>>);

impl Extend<Event> for OkSink<'_> {
    fn extend<I: IntoIterator<Item = Event>>(&mut self, iter: I) {
        self.0.extend(iter.into_iter().map(Ok));
    }
}

impl Stream for NamespaceWatcher {
    type Item = Result<Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_event(cx)
    }
}
