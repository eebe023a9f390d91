//! The watcher: kernel sources in, reconciled events out.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::chain::{Chain, Interests};
use crate::inotify::{Inotify, RawEvent, Signal};
use crate::mounts::{mount_point, MountChange, MountWatch};
use crate::probe::{mount_id, probe, MountIdKind, Probe};
use crate::reconciler::{DirIndex, EntryKind, Fact, Reconciler};
use crate::retry::Retries;
use crate::{scan, Config, Error, Event, MountSource, Namespace, Readiness, Result};

/// Watches directories of named network namespaces and reports each
/// namespace appearing and disappearing, exactly once and in order.
///
/// By default ([`Readiness::Mounted`]) a name is reported created when a
/// network namespace is mounted on its file, so it can be entered at once,
/// and deleted when the file goes away, the namespace is unmounted, or the
/// name is re-bound to another namespace; each event carries the
/// namespace's [`Identity`](crate::Identity). An empty placeholder file is
/// never reported.
///
/// Every configured directory is watched with inotify together with each
/// of its ancestors, and mounts are followed with the best
/// [`MountSource`] available. Whenever the kernel's word is in doubt (a
/// queue overflow, a directory replaced), the watcher rescans and reports
/// only the difference against what it reported before, so no change is
/// lost and none is reported twice.
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
    /// How mounts are followed; `None` in immediate mode.
    mounts: Option<MountWatch>,
    chains: Vec<Chain>,
    interests: Interests,
    /// Which entry (or directory) each known mount shows, so that a
    /// detach reported by id alone can be traced back.
    mount_owners: HashMap<u64, Vec<MountOwner>>,
    retries: Retries,
    reconciler: Reconciler,
    pending: VecDeque<Result<Event>>,
    batch: Vec<RawEvent>,
    mount_batch: Vec<MountChange>,
}

/// What an inotify event says, once its name is taken out.
#[derive(Debug, Clone, Copy)]
enum What {
    Added { is_dir: bool },
    Removed,
    EntryChanged,
    SelfChanged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MountOwner {
    Entry(DirIndex, OsString),
    Dir(DirIndex),
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
    /// path is not a directory or cannot be read, if a directory is missing
    /// while [`Config::watch_parent`] is off, or if a forced
    /// [`Config::mount_source`] cannot start.
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

    /// Lists the namespaces mounted in [`/var/run/netns`](crate::IPROUTE2_DIR)
    /// now, sorted by name. A missing directory holds none.
    ///
    /// # Errors
    ///
    /// Fails if the path is not a directory or cannot be read.
    pub fn list() -> Result<Vec<Namespace>> {
        Self::list_dir(crate::IPROUTE2_DIR)
    }

    /// Lists the namespaces mounted in `dir` now, sorted by name. A
    /// missing directory holds none.
    ///
    /// # Errors
    ///
    /// Fails if `dir` is not a directory or cannot be read.
    pub fn list_dir(dir: impl AsRef<Path>) -> Result<Vec<Namespace>> {
        list_one(dir.as_ref(), Readiness::Mounted)
    }

    /// Lists the namespaces in every directory of `config` now, by
    /// directory in configuration order, then by name; with
    /// [`Readiness::Immediate`], every file counts.
    ///
    /// # Errors
    ///
    /// As [`list_dir`](Self::list_dir), for the first directory that fails.
    pub fn list_with_config(config: &Config) -> Result<Vec<Namespace>> {
        let mut all = Vec::new();
        for dir in config.dirs() {
            all.extend(list_one(dir, config.readiness_mode())?);
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
        self.chains.iter().all(Chain::is_watched)
    }

    /// Returns how mounts are followed, or `None` in immediate mode.
    pub fn mount_source(&self) -> Option<MountSource> {
        self.mounts.as_ref().map(MountWatch::source)
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
        let chains = config
            .dirs()
            .iter()
            .map(|d| Chain::new(d))
            .collect::<Result<Vec<_>>>()?;
        let inotify = Inotify::new()?;
        // Mounts are followed before anything is listed, so no mount falls
        // between the first listing and the first mount event.
        let mounts = match (config.readiness_mode(), config.forced_mount_source()) {
            (Readiness::Immediate, _) => None,
            (Readiness::Mounted, Some(source)) => Some(MountWatch::start(source).map_err(
                |source_err| Error::MountSource {
                    source_name: source.name(),
                    source: source_err,
                },
            )?),
            (Readiness::Mounted, None) => Some(MountWatch::start_best()),
        };
        match &mounts {
            Some(m) => tracing::info!("following mounts with {}", m.source()),
            None => tracing::info!("immediate mode: names are reported when their file appears"),
        }
        let mut watcher = Self {
            inotify,
            mounts,
            chains,
            interests: Interests::default(),
            mount_owners: HashMap::new(),
            retries: Retries::default(),
            reconciler: Reconciler::new(config.dirs().to_vec(), config.emits_directory_events()),
            pending: VecDeque::new(),
            batch: Vec::new(),
            mount_batch: Vec::new(),
        };

        for dir in 0..watcher.chains.len() {
            watcher.resync(dir)?;
            let chain = &watcher.chains[dir];
            if !chain.is_watched() {
                let path = config.dirs()[dir].clone();
                if std::fs::symlink_metadata(chain.path()).is_ok() || !config.watches_parent() {
                    // It exists but could not be watched as a directory, or
                    // it is missing and may not be waited for.
                    return Err(start_error(path, chain.path()));
                }
                tracing::debug!(dir = %path.display(), "directory missing; watching its nearest ancestor");
            }
        }
        // What is present at start is the baseline, not news.
        watcher.pending.clear();
        for chain in &watcher.chains {
            match chain.is_watched() {
                true => tracing::info!("watching {}", chain.path().display()),
                false => tracing::info!("waiting for {} to appear", chain.path().display()),
            }
        }
        Ok(watcher)
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        loop {
            if let Some(next) = self.pending.pop_front() {
                return Poll::Ready(Some(next));
            }
            let mut progressed = false;

            // Each batch becomes pending events before anything is
            // returned, so cancelling the caller loses nothing.
            let mut batch = std::mem::take(&mut self.batch);
            match self.inotify.poll_read(cx, &mut batch) {
                Poll::Ready(Ok(())) => {
                    progressed = true;
                    for raw in batch.drain(..) {
                        self.handle_inotify(raw);
                    }
                }
                Poll::Ready(Err(source)) => {
                    batch.clear();
                    self.batch = batch;
                    return Poll::Ready(Some(Err(Error::Inotify { source })));
                }
                Poll::Pending => {}
            }
            self.batch = batch;

            if let Some(mounts) = &mut self.mounts {
                let mut changes = std::mem::take(&mut self.mount_batch);
                match mounts.poll_read(cx, &mut changes) {
                    Poll::Ready(Ok(())) => {
                        progressed = true;
                        for change in changes.drain(..) {
                            self.handle_mount(change);
                        }
                    }
                    Poll::Ready(Err(err)) => {
                        progressed = true;
                        self.pending.push_back(Err(Error::MountSource {
                            source_name: mounts.source().name(),
                            source: err,
                        }));
                    }
                    Poll::Pending => {}
                }
                changes.clear();
                self.mount_batch = changes;
            }

            for due in self.retries.poll_due(cx) {
                progressed = true;
                if self.reconciler.entry(due.dir, &due.name) == Some(EntryKind::Placeholder) {
                    self.reprobe(due.dir, due.name, due.attempt + 1);
                }
            }

            if !progressed {
                return Poll::Pending;
            }
        }
    }

    /// Turns one inotify event into facts, rescans and events.
    fn handle_inotify(&mut self, raw: RawEvent) {
        tracing::trace!(wd = raw.wd, mask = ?raw.mask, name = ?raw.name, "inotify event");
        let what = match raw.signal() {
            Signal::Overflow => {
                tracing::warn!("inotify queue overflowed; rescanning every watched directory");
                self.resync_all();
                return;
            }
            Signal::Added { is_dir, .. } => What::Added { is_dir },
            Signal::Removed { .. } => What::Removed,
            Signal::EntryChanged { .. } => What::EntryChanged,
            Signal::SelfChanged => What::SelfChanged,
            Signal::Other => return,
        };
        let (wd, mut name) = (raw.wd, raw.name);

        // Usually one interest; walked by position (no copy per event), each
        // looked up again as an earlier one's rescan may have changed them.
        // The name moves into the last one handled, and is copied before.
        let count = self.interests.get(wd).map_or(0, <[_]>::len);
        for position in (0..count).rev() {
            let Some(&interest) = self.interests.get(wd).and_then(|list| list.get(position)) else {
                continue;
            };
            let dir = interest.dir;
            let chain = &self.chains[dir];
            let own = interest.level == chain.own_level();
            let leads_on = name.is_some() && chain.child(interest.level) == name.as_ref();
            match what {
                What::Added { is_dir } if own => {
                    let Some(entry) = take_or_copy(&mut name, position) else {
                        continue;
                    };
                    let kind = is_dir.then_some(EntryKind::Ignored);
                    self.observe(dir, entry, kind, 0);
                }
                What::Removed if own => {
                    let Some(entry) = take_or_copy(&mut name, position) else {
                        continue;
                    };
                    if self.mounts.is_some() {
                        // Mount events may have run ahead of this one: what
                        // counts is what is there now (a newer entry under
                        // the same name must not be reported deleted).
                        self.observe(dir, entry, None, 0);
                    } else {
                        self.apply(Fact::Vanished { dir, name: entry });
                    }
                }
                What::Added { .. } | What::Removed | What::EntryChanged if leads_on => {
                    tracing::debug!(dir = %chain.path().display(), "path changed; rescanning");
                    self.resync_or_report(dir);
                }
                What::SelfChanged => {
                    tracing::debug!(dir = %chain.path().display(), "watched directory changed; rescanning");
                    self.resync_or_report(dir);
                }
                _ => {}
            }
        }
    }

    /// Acts on one mount change: checks again whatever it may affect.
    fn handle_mount(&mut self, change: MountChange) {
        tracing::trace!(?change, "mount change");
        match change {
            MountChange::Attached { id, point } => {
                // statmount(2) fails once the mount is gone again; its
                // detach is then on its way and will be handled.
                let point = point.or_else(|| mount_point(id).ok());
                if let Some(point) = point {
                    self.mount_changed_at(&point);
                }
            }
            MountChange::Detached { id, point } => {
                // Where the mount was is known by its id (a mount point
                // renamed since would mislead), and by the point otherwise.
                for owner in self.mount_owners.remove(&id).unwrap_or_default() {
                    match owner {
                        MountOwner::Entry(dir, name) => self.reprobe(dir, name, 0),
                        MountOwner::Dir(dir) => self.resync_or_report(dir),
                    }
                }
                if let Some(point) = point {
                    self.mount_changed_at(&point);
                }
            }
            MountChange::Overflow => {
                tracing::warn!("mount event queue overflowed; rescanning every watched directory");
                self.resync_all();
            }
            MountChange::Unknown => {
                tracing::debug!("unreadable mount event; rescanning every watched directory");
                for dir in 0..self.chains.len() {
                    self.resync_or_report(dir);
                }
            }
        }
    }

    /// Checks again what a mount at `point` may have changed: an entry of
    /// a watched directory, the directory itself, or one of its ancestors.
    fn mount_changed_at(&mut self, point: &Path) {
        for dir in 0..self.chains.len() {
            let chain = &self.chains[dir];
            let Some(canonical) = &chain.canonical else {
                continue;
            };
            if chain.is_watched() && point.parent() == Some(canonical.as_path()) {
                if let Some(name) = point.file_name() {
                    self.reprobe(dir, name.to_os_string(), 0);
                }
            } else if canonical.starts_with(point) {
                tracing::debug!(dir = %canonical.display(), "mount on the directory or above; rescanning");
                self.resync_or_report(dir);
            }
        }
    }

    /// Rescans everything after lost events, then says so in-band.
    fn resync_all(&mut self) {
        for dir in 0..self.chains.len() {
            self.resync_or_report(dir);
        }
        self.pending.push_back(Ok(Event::Overflow));
    }

    /// Checks `dir/name` again and reports any change.
    fn reprobe(&mut self, dir: DirIndex, name: OsString, attempt: u32) {
        if self.chains[dir].is_watched() {
            self.observe(dir, name, None, attempt);
        }
    }

    /// Records what `dir/name` is now: `known` when the caller already
    /// knows (a subdirectory), otherwise it is checked. `attempt` counts
    /// the re-checks of a placeholder so far.
    fn observe(&mut self, dir: DirIndex, name: OsString, known: Option<EntryKind>, attempt: u32) {
        let kind = match known {
            Some(kind) => Some(kind),
            None => match self.classify(dir, &name) {
                Ok(kind) => kind,
                Err(err) => {
                    self.pending.push_back(Err(err));
                    return;
                }
            },
        };
        tracing::trace!(name = ?name, ?kind, "checked");
        let Some(kind) = kind else {
            self.apply(Fact::Vanished { dir, name });
            return;
        };
        // Without mount events, a new placeholder is checked again on a
        // timer until it is mounted or the attempts run out.
        if kind == EntryKind::Placeholder && matches!(self.mounts, Some(MountWatch::Poll)) {
            let was_waiting = self.reconciler.entry(dir, &name) == Some(EntryKind::Placeholder);
            if !was_waiting || attempt > 0 {
                self.retries.schedule(dir, name.clone(), attempt);
            }
        }
        self.apply(Fact::Appeared { dir, name, kind });
    }

    /// What `dir/name` is now; `None` if it is gone.
    fn classify(&mut self, dir: DirIndex, name: &OsString) -> Result<Option<EntryKind>> {
        if self.mounts.is_none() {
            // Immediate mode: any non-directory file is reported as is.
            return Ok(Some(EntryKind::Namespace(None)));
        }
        let path = self.chains[dir].path().join(name);
        let ids = self
            .mounts
            .as_ref()
            .map_or(MountIdKind::Skip, MountWatch::id_kind);
        let found = probe(&path, ids).map_err(|err| Error::from_path(&path, err))?;
        Ok(match found {
            Probe::Missing => None,
            Probe::Directory => Some(EntryKind::Ignored),
            Probe::Placeholder => Some(EntryKind::Placeholder),
            Probe::Namespace { identity, mount } => {
                if let Some(id) = mount {
                    self.own_mount(id, MountOwner::Entry(dir, name.clone()));
                }
                Some(EntryKind::Namespace(Some(identity)))
            }
        })
    }

    /// Remembers that mount `id` shows `owner`.
    fn own_mount(&mut self, id: u64, owner: MountOwner) {
        let owners = self.mount_owners.entry(id).or_default();
        if !owners.contains(&owner) {
            owners.push(owner);
        }
    }

    fn apply(&mut self, fact: Fact) {
        self.reconciler.apply(fact, &mut OkSink(&mut self.pending));
    }

    /// Rescans `dir`, reporting a failure in-band: the watcher goes on.
    // TODO(retry): a chain that could not be re-established (the watch
    // limit reached, a directory unreadable) is tried again only when
    // something happens to it or above it. Raising the limit afterwards is
    // not noticed; a bounded retry timer (like `retry.rs`) would cover it
    // once a user meets this.
    fn resync_or_report(&mut self, dir: DirIndex) {
        if let Err(err) = self.resync(dir) {
            self.pending.push_back(Err(err));
        }
    }

    /// Re-establishes the watches of `dir`, rescans it and queues the
    /// difference against the reconciled state.
    ///
    /// The listing is read synchronously: these directories hold few
    /// entries on in-memory filesystems (about 1 us per entry, plus a few
    /// for each namespace's check).
    fn resync(&mut self, dir: DirIndex) -> Result<()> {
        let relinked = self.chains[dir].relink(dir, &self.inotify, &mut self.interests);
        if relinked.replaced {
            self.apply(Fact::Listed { dir, entries: None });
        }
        let entries = if relinked.present {
            let path = self.chains[dir].path().to_path_buf();
            let ids = self
                .mounts
                .as_ref()
                .map_or(MountIdKind::Skip, MountWatch::id_kind);
            if let Some(id) = std::fs::File::open(&path)
                .ok()
                .and_then(|f| mount_id(f, ids))
            {
                self.own_mount(id, MountOwner::Dir(dir));
            }
            match scan::list(&path) {
                Ok(Some(found)) => Some(self.classify_all(dir, found)?),
                Ok(None) => None,
                Err(err) => return Err(Error::from_path(&path, err)),
            }
        } else {
            None
        };
        self.apply(Fact::Listed { dir, entries });
        relinked.failure.map_or(Ok(()), Err)
    }

    fn classify_all(
        &mut self,
        dir: DirIndex,
        found: Vec<(OsString, bool)>,
    ) -> Result<Vec<(OsString, EntryKind)>> {
        let mut entries = Vec::with_capacity(found.len());
        for (name, is_dir) in found {
            let kind = if is_dir {
                Some(EntryKind::Ignored)
            } else {
                self.classify(dir, &name)?
            };
            if let Some(kind) = kind {
                if kind == EntryKind::Placeholder
                    && matches!(self.mounts, Some(MountWatch::Poll))
                    && self.reconciler.entry(dir, &name) != Some(EntryKind::Placeholder)
                {
                    self.retries.schedule(dir, name.clone(), 0);
                }
                entries.push((name, kind));
            }
        }
        Ok(entries)
    }
}

/// The name for the interest at `position`: moved into the last one
/// handled (position 0, as they are walked from the end), copied before.
fn take_or_copy(name: &mut Option<OsString>, position: usize) -> Option<OsString> {
    if position == 0 {
        name.take()
    } else {
        name.clone()
    }
}

/// Lists one directory now, without watching it.
fn list_one(dir: &Path, readiness: Readiness) -> Result<Vec<Namespace>> {
    if let Ok(meta) = std::fs::metadata(dir) {
        if !meta.is_dir() {
            return Err(Error::NotADirectory { path: dir.into() });
        }
    }
    let entries = scan::list(dir).map_err(|source| Error::from_path(dir, source))?;
    let mut found = Vec::new();
    for (name, is_dir) in entries.unwrap_or_default() {
        if is_dir {
            continue;
        }
        let mut ns = Namespace::new(dir, name);
        if readiness == Readiness::Mounted {
            let path = ns.path();
            match probe(&path, MountIdKind::Skip) {
                Ok(Probe::Namespace { identity, .. }) => ns.identity = Some(identity),
                Ok(_) => continue,
                Err(err) => {
                    tracing::warn!("{}", Error::from_path(&path, err));
                    continue;
                }
            }
        }
        found.push(ns);
    }
    found.sort();
    Ok(found)
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
