//! The pure state machine between kernel facts and reported events.
//!
//! The reconciler knows, for every watched directory, whether it exists and
//! which entries it holds. Sources feed it facts ("this entry appeared",
//! "this is the whole listing now"); it answers with the events that are
//! true transitions of that state. A fact that changes nothing produces
//! nothing, which is what makes rescans safe: after any doubt the watcher
//! rescans, and only the difference is reported.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use crate::{Event, Identity, Namespace};

/// Index of a watched directory, in configuration order.
pub(crate) type DirIndex = usize;

/// What an entry of a watched directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// A namespace under this name, reported; its identity when known
    /// (it is not in immediate mode, where any file counts).
    Namespace(Option<Identity>),
    /// A file that is not (or not yet, or no longer) a namespace: silent.
    Placeholder,
    /// A subdirectory, which never names a namespace.
    Ignored,
}

impl EntryKind {
    fn identity(self) -> Option<Option<Identity>> {
        match self {
            EntryKind::Namespace(identity) => Some(identity),
            _ => None,
        }
    }
}

/// Something a source observed about a watched directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fact {
    /// An entry appeared in the directory (created, or moved in).
    Appeared {
        dir: DirIndex,
        name: OsString,
        kind: EntryKind,
    },
    /// An entry vanished from the directory (deleted, or moved out).
    Vanished { dir: DirIndex, name: OsString },
    /// The directory's whole content now, or `None` if it does not exist.
    Listed {
        dir: DirIndex,
        entries: Option<Vec<(OsString, EntryKind)>>,
    },
}

#[derive(Debug, Default)]
struct DirState {
    exists: bool,
    entries: BTreeMap<OsString, EntryKind>,
}

/// The reconciled view of every watched directory.
#[derive(Debug)]
pub(crate) struct Reconciler {
    paths: Vec<PathBuf>,
    dirs: Vec<DirState>,
    directory_events: bool,
}

impl Reconciler {
    /// Creates a view of `paths`, all assumed absent until listed.
    pub(crate) fn new(paths: Vec<PathBuf>, directory_events: bool) -> Self {
        let dirs = paths.iter().map(|_| DirState::default()).collect();
        Self {
            paths,
            dirs,
            directory_events,
        }
    }

    /// Applies `fact`, appending the events it causes to `out`.
    pub(crate) fn apply(&mut self, fact: Fact, out: &mut impl Extend<Event>) {
        match fact {
            Fact::Appeared { dir, name, kind } => self.appeared(dir, name, kind, out),
            Fact::Vanished { dir, name } => self.vanished(dir, name, out),
            Fact::Listed { dir, entries } => self.listed(dir, entries, out),
        }
    }

    /// Returns the namespaces present in every watched directory, sorted by
    /// directory (in configuration order), then by name.
    pub(crate) fn namespaces(&self) -> Vec<Namespace> {
        (0..self.dirs.len())
            .flat_map(|dir| self.namespaces_in(dir))
            .collect()
    }

    /// Returns the namespaces present in one watched directory, by name.
    pub(crate) fn namespaces_in(&self, dir: DirIndex) -> impl Iterator<Item = Namespace> + '_ {
        self.dirs[dir]
            .entries
            .iter()
            .filter_map(move |(name, kind)| {
                Some(self.namespace(dir, name.clone(), kind.identity()?))
            })
    }

    /// Returns the entry's current kind, if the name is present.
    pub(crate) fn entry(&self, dir: DirIndex, name: &OsString) -> Option<EntryKind> {
        self.dirs[dir].entries.get(name).copied()
    }

    // TODO(throughput): each event clones the directory's path and the name
    // (about a third of the library's cost per event; benchmark B1 is at
    // 0.7 of a raw inotify reader, the goal 0.8). Sharing the path
    // (`Arc<Path>` in `Namespace`) is the next step, at the next change of
    // the public `Namespace` type.
    fn namespace(&self, dir: DirIndex, name: OsString, identity: Option<Identity>) -> Namespace {
        let mut ns = Namespace::new(self.paths[dir].clone(), name);
        ns.identity = identity;
        ns
    }

    fn appeared(
        &mut self,
        dir: DirIndex,
        name: OsString,
        kind: EntryKind,
        out: &mut impl Extend<Event>,
    ) {
        // An entry can only appear in a directory that exists; an event that
        // says so is proof of it (the listing that confirms it may follow).
        self.mark_existing(dir, out);
        match self.dirs[dir].entries.get(&name) {
            Some(old) if *old == kind => return,
            // Same name, other thing (a namespace mounted on a placeholder,
            // unmounted, or re-bound to another namespace): the old one goes.
            Some(_) => self.vanished(dir, name.clone(), out),
            None => {}
        }
        self.dirs[dir].entries.insert(name.clone(), kind);
        if let Some(identity) = kind.identity() {
            out.extend([Event::Created(self.namespace(dir, name, identity))]);
        }
    }

    fn vanished(&mut self, dir: DirIndex, name: OsString, out: &mut impl Extend<Event>) {
        if let Some(identity) = self.dirs[dir]
            .entries
            .remove(&name)
            .and_then(EntryKind::identity)
        {
            out.extend([Event::Deleted(self.namespace(dir, name, identity))]);
        }
    }

    fn listed(
        &mut self,
        dir: DirIndex,
        entries: Option<Vec<(OsString, EntryKind)>>,
        out: &mut impl Extend<Event>,
    ) {
        let Some(entries) = entries else {
            self.mark_missing(dir, out);
            return;
        };
        self.mark_existing(dir, out);

        let now: BTreeMap<OsString, EntryKind> = entries.into_iter().collect();
        let gone: Vec<OsString> = self.dirs[dir]
            .entries
            .iter()
            .filter(|(name, kind)| now.get(*name) != Some(kind))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            self.vanished(dir, name, out);
        }
        for (name, kind) in now {
            self.appeared(dir, name, kind, out);
        }
    }

    fn mark_existing(&mut self, dir: DirIndex, out: &mut impl Extend<Event>) {
        if !self.dirs[dir].exists {
            self.dirs[dir].exists = true;
            if self.directory_events {
                out.extend([Event::DirectoryCreated {
                    dir: self.paths[dir].clone(),
                }]);
            }
        }
    }

    fn mark_missing(&mut self, dir: DirIndex, out: &mut impl Extend<Event>) {
        let names: Vec<OsString> = self.dirs[dir].entries.keys().cloned().collect();
        for name in names {
            self.vanished(dir, name, out);
        }
        if self.dirs[dir].exists {
            self.dirs[dir].exists = false;
            if self.directory_events {
                out.extend([Event::DirectoryDeleted {
                    dir: self.paths[dir].clone(),
                }]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reconciler(directory_events: bool) -> Reconciler {
        Reconciler::new(vec![PathBuf::from("/d")], directory_events)
    }

    fn apply(r: &mut Reconciler, fact: Fact) -> Vec<Event> {
        let mut out = Vec::new();
        r.apply(fact, &mut out);
        out
    }

    fn appeared(name: &str) -> Fact {
        Fact::Appeared {
            dir: 0,
            name: name.into(),
            kind: EntryKind::Namespace(None),
        }
    }

    fn vanished(name: &str) -> Fact {
        Fact::Vanished {
            dir: 0,
            name: name.into(),
        }
    }

    fn listed(names: &[&str]) -> Fact {
        Fact::Listed {
            dir: 0,
            entries: Some(
                names
                    .iter()
                    .map(|n| ((*n).into(), EntryKind::Namespace(None)))
                    .collect(),
            ),
        }
    }

    fn created(name: &str) -> Event {
        Event::Created(Namespace::new("/d", name))
    }

    fn deleted(name: &str) -> Event {
        Event::Deleted(Namespace::new("/d", name))
    }

    #[test]
    fn appearing_twice_is_reported_once() {
        let mut r = reconciler(false);
        assert_eq!(apply(&mut r, appeared("a")), [created("a")]);
        assert_eq!(apply(&mut r, appeared("a")), []);
    }

    #[test]
    fn vanishing_of_unknown_name_is_silent() {
        let mut r = reconciler(false);
        assert_eq!(apply(&mut r, vanished("a")), []);
    }

    #[test]
    fn subdirectories_are_never_reported() {
        let mut r = reconciler(false);
        let sub = Fact::Appeared {
            dir: 0,
            name: "sub".into(),
            kind: EntryKind::Ignored,
        };
        assert_eq!(apply(&mut r, sub), []);
        assert_eq!(apply(&mut r, vanished("sub")), []);
        assert!(r.namespaces().is_empty());
    }

    #[test]
    fn entry_turning_into_subdirectory_is_deleted() {
        let mut r = reconciler(false);
        apply(&mut r, appeared("x"));
        let as_dir = Fact::Appeared {
            dir: 0,
            name: "x".into(),
            kind: EntryKind::Ignored,
        };
        assert_eq!(apply(&mut r, as_dir), [deleted("x")]);
    }

    fn identity(inode: u64) -> Identity {
        Identity {
            id: Some(inode),
            inode,
            dev: 4,
        }
    }

    fn with(dir_name: &str, kind: EntryKind) -> Fact {
        Fact::Appeared {
            dir: 0,
            name: dir_name.into(),
            kind,
        }
    }

    #[test]
    fn a_placeholder_is_silent_until_mounted() {
        let mut r = reconciler(false);
        assert_eq!(apply(&mut r, with("n", EntryKind::Placeholder)), []);
        let mounted = apply(&mut r, with("n", EntryKind::Namespace(Some(identity(5)))));
        assert!(matches!(&mounted[..], [Event::Created(ns)] if ns.identity == Some(identity(5))));
        // Unmounted, the file left behind: deleted; then its removal: nothing.
        let unmounted = apply(&mut r, with("n", EntryKind::Placeholder));
        assert!(matches!(&unmounted[..], [Event::Deleted(ns)] if ns.identity == Some(identity(5))));
        assert_eq!(apply(&mut r, vanished("n")), []);
    }

    #[test]
    fn a_rebound_name_is_deleted_then_created() {
        let mut r = reconciler(false);
        apply(&mut r, with("n", EntryKind::Namespace(Some(identity(5)))));
        let rebound = apply(&mut r, with("n", EntryKind::Namespace(Some(identity(6)))));
        match &rebound[..] {
            [Event::Deleted(old), Event::Created(new)] => {
                assert_eq!(old.identity, Some(identity(5)));
                assert_eq!(new.identity, Some(identity(6)));
            }
            other => panic!("expected a deletion then a creation, got {other:?}"),
        }
    }

    #[test]
    fn listing_reports_only_the_difference() {
        let mut r = reconciler(false);
        apply(&mut r, listed(&["a", "b"]));
        assert_eq!(
            apply(&mut r, listed(&["b", "c"])),
            [deleted("a"), created("c")]
        );
        assert_eq!(apply(&mut r, listed(&["b", "c"])), []);
    }

    #[test]
    fn missing_directory_deletes_every_name_then_itself() {
        let mut r = reconciler(true);
        assert_eq!(
            apply(&mut r, listed(&["a"])),
            [Event::DirectoryCreated { dir: "/d".into() }, created("a")]
        );
        let gone = Fact::Listed {
            dir: 0,
            entries: None,
        };
        assert_eq!(
            apply(&mut r, gone.clone()),
            [deleted("a"), Event::DirectoryDeleted { dir: "/d".into() }]
        );
        assert_eq!(apply(&mut r, gone), []);
    }

    #[test]
    fn directory_events_are_off_by_default() {
        let mut r = reconciler(false);
        assert_eq!(apply(&mut r, listed(&[])), []);
        assert_eq!(
            apply(
                &mut r,
                Fact::Listed {
                    dir: 0,
                    entries: None
                }
            ),
            []
        );
    }

    #[test]
    fn namespaces_are_sorted_by_name() {
        let mut r = reconciler(false);
        apply(&mut r, listed(&["c", "a", "b"]));
        let names: Vec<_> = r.namespaces().into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn directories_are_independent() {
        let mut r = Reconciler::new(vec!["/x".into(), "/y".into()], false);
        let mut out = Vec::new();
        r.apply(
            Fact::Appeared {
                dir: 1,
                name: "n".into(),
                kind: EntryKind::Namespace(None),
            },
            &mut out,
        );
        assert_eq!(out, [Event::Created(Namespace::new("/y", "n"))]);
        assert!(r.namespaces_in(0).next().is_none());
    }
}
