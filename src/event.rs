//! What the watcher reports: namespace entries and the events about them.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::Identity;

/// A named network namespace entry: a name inside a watched directory.
///
/// The name is kept as the exact bytes the kernel gave (an [`OsString`]):
/// nothing is skipped, replaced or trimmed, whatever the bytes are.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct Namespace {
    /// The entry's name inside `dir`, exactly as stored on disk.
    pub name: OsString,
    /// The watched directory the entry lives in, as configured.
    pub dir: PathBuf,
    /// Which namespace the name points to; `None` in immediate mode, where
    /// a name is reported before anything is mounted on it.
    pub identity: Option<Identity>,
}

impl Namespace {
    /// Creates an entry for `name` inside `dir`.
    pub fn new(dir: impl Into<PathBuf>, name: impl Into<OsString>) -> Self {
        Self {
            name: name.into(),
            dir: dir.into(),
            identity: None,
        }
    }

    /// Returns the full path of the entry (`dir/name`).
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Returns the name as an [`OsStr`].
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// Returns the watched directory the entry lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A change seen by a [`NamespaceWatcher`](crate::NamespaceWatcher).
///
/// Events for one name always arrive in the order the changes happened, and
/// a name is never reported created twice without a deletion in between.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A namespace name appeared in a watched directory.
    Created(Namespace),
    /// A namespace name went away from a watched directory.
    Deleted(Namespace),
    /// A watched directory appeared (only with
    /// [`Config::emit_directory_events`](crate::Config::emit_directory_events)).
    DirectoryCreated {
        /// The watched directory, as configured.
        dir: PathBuf,
    },
    /// A watched directory went away (only with
    /// [`Config::emit_directory_events`](crate::Config::emit_directory_events)).
    ///
    /// A `Deleted` event for every name it held comes before this one.
    DirectoryDeleted {
        /// The watched directory, as configured.
        dir: PathBuf,
    },
    /// The kernel's event queue overflowed and events were dropped.
    ///
    /// The watcher has already rescanned every watched directory and emitted
    /// the differences as ordinary `Created` and `Deleted` events before this
    /// one, so a consumer that only applies events stays exact. It is
    /// reported for those who want to know (for example, to log it or to
    /// re-check their own state).
    Overflow,
}

impl Event {
    /// Returns the namespace entry the event is about, if it is about one.
    pub fn namespace(&self) -> Option<&Namespace> {
        match self {
            Event::Created(ns) | Event::Deleted(ns) => Some(ns),
            _ => None,
        }
    }

    /// Returns the watched directory the event is about, if any.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Event::Created(ns) | Event::Deleted(ns) => Some(&ns.dir),
            Event::DirectoryCreated { dir } | Event::DirectoryDeleted { dir } => Some(dir),
            Event::Overflow => None,
        }
    }

    /// Returns the stable, lowercase kind of the event (`created`, `deleted`,
    /// `directory-created`, `directory-deleted` or `overflow`).
    ///
    /// These are the values of the `event` field in JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Created(_) => "created",
            Event::Deleted(_) => "deleted",
            Event::DirectoryCreated { .. } => "directory-created",
            Event::DirectoryDeleted { .. } => "directory-deleted",
            Event::Overflow => "overflow",
        }
    }
}
