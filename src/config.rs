//! What a watcher watches, and how.

use std::path::{Path, PathBuf};

use crate::MountSource;

/// The directory `ip netns` (iproute2) keeps its named namespaces in.
///
/// On most systems `/var/run` is a symbolic link to `/run`; watching either
/// spelling reports the same events.
pub const IPROUTE2_DIR: &str = "/var/run/netns";

/// Settings of a [`NamespaceWatcher`](crate::NamespaceWatcher).
///
/// Build one from [`Config::default`] (which watches [`IPROUTE2_DIR`]) or
/// [`Config::with_dirs`], then adjust it with the chaining setters.
///
/// ```
/// use netns_watch::Config;
///
/// let config = Config::with_dirs(["/run/netns", "/run/docker/netns"])
///     .watch_parent(true)
///     .emit_directory_events(true);
/// assert_eq!(config.dirs().len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    dirs: Vec<PathBuf>,
    watch_parent: bool,
    emit_directory_events: bool,
    readiness: Readiness,
    mount_source: Option<MountSource>,
}

/// When a name counts as a namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Readiness {
    /// Once a network namespace is mounted on its file, so it can be
    /// entered (`ip netns exec NAME` works) the moment it is reported. An
    /// empty placeholder file is never reported, and a name stops being a
    /// namespace when it is unmounted. Events carry the identity.
    #[default]
    Mounted,
    /// As soon as its file appears, as `ip netns monitor` reports it: a
    /// moment before the namespace is mounted, and also for placeholders
    /// that never become one. No identity is read.
    Immediate,
}

impl Default for Config {
    fn default() -> Self {
        Self::with_dirs([IPROUTE2_DIR])
    }
}

impl Config {
    /// Creates a configuration that watches each of `dirs`.
    ///
    /// Relative paths are taken from the current directory when the watcher
    /// starts. Events name the directory exactly as given here.
    pub fn with_dirs<I, P>(dirs: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        Self {
            dirs: dirs.into_iter().map(Into::into).collect(),
            watch_parent: true,
            emit_directory_events: false,
            readiness: Readiness::Mounted,
            mount_source: None,
        }
    }

    /// Sets when a name counts as a namespace (default
    /// [`Readiness::Mounted`]).
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// Forces how mounts are noticed; by default the best source that
    /// works here is chosen at start ([`MountSource::ALL`] in order).
    pub fn mount_source(mut self, source: MountSource) -> Self {
        self.mount_source = Some(source);
        self
    }

    /// Returns when a name counts as a namespace.
    pub fn readiness_mode(&self) -> Readiness {
        self.readiness
    }

    /// Returns the forced mount source, if any.
    pub fn forced_mount_source(&self) -> Option<MountSource> {
        self.mount_source
    }

    /// Adds one more directory to watch.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dirs.push(dir.into());
        self
    }

    /// Sets whether a directory that does not exist yet is waited for
    /// (default `true`).
    ///
    /// When `true`, the watcher watches the nearest existing ancestor, however
    /// many levels are missing, and switches over when the directory appears,
    /// reporting every name it already holds. When `false`, a missing
    /// directory is an error at start. Either way, a directory that vanishes
    /// while watched is waited for until it comes back.
    pub fn watch_parent(mut self, enabled: bool) -> Self {
        self.watch_parent = enabled;
        self
    }

    /// Sets whether [`Event::DirectoryCreated`](crate::Event::DirectoryCreated)
    /// and [`Event::DirectoryDeleted`](crate::Event::DirectoryDeleted) are
    /// reported (default `false`).
    pub fn emit_directory_events(mut self, enabled: bool) -> Self {
        self.emit_directory_events = enabled;
        self
    }

    /// Returns the directories to watch, as given.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Returns whether missing directories are waited for.
    pub fn watches_parent(&self) -> bool {
        self.watch_parent
    }

    /// Returns whether directory events are reported.
    pub fn emits_directory_events(&self) -> bool {
        self.emit_directory_events
    }
}

/// Returns `dir` made absolute against the current directory, without
/// resolving symbolic links (so `/var/run/netns` stays as given).
pub(crate) fn absolute(dir: &Path) -> std::io::Result<PathBuf> {
    std::path::absolute(dir)
}
