//! The chain of inotify watches that leads to one configured directory.
//!
//! A directory is watched together with each of its ancestors, so that the
//! directory (or any component of its path) being created, deleted, moved
//! or replaced is seen; while it does not exist, the deepest existing
//! ancestor is the end of the chain.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::config::absolute;
use crate::inotify::{Inotify, Wd};
use crate::reconciler::DirIndex;
use crate::{scan, Error, Result};

/// One configured directory and the watches on its path.
#[derive(Debug)]
pub(crate) struct Chain {
    /// `prefixes[i]` is the path made of the first `i + 1` components; the
    /// last one is the directory itself.
    prefixes: Vec<PathBuf>,
    /// `children[i]` is the name under `prefixes[i]` that leads on.
    children: Vec<OsString>,
    /// Descriptors of the prefixes watched now, from the root down.
    wds: Vec<Wd>,
    /// The directory's path with links resolved, as mount tables show it:
    /// the deepest existing prefix resolved, and the missing rest appended,
    /// so a mount that makes the directory appear is recognised too.
    pub(crate) canonical: Option<PathBuf>,
}

/// Why a watch descriptor matters: it is level `level` of chain `dir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interest {
    pub(crate) dir: DirIndex,
    pub(crate) level: usize,
}

/// What re-establishing a chain found.
#[derive(Debug)]
pub(crate) struct Relinked {
    /// The directory is watched now under another descriptor than before:
    /// it is another directory, and what the old one held is gone.
    pub(crate) replaced: bool,
    /// The directory itself is watched (it exists).
    pub(crate) present: bool,
    /// A prefix could not be watched for another reason than not existing.
    pub(crate) failure: Option<Error>,
}

impl Chain {
    pub(crate) fn new(dir: &Path) -> Result<Self> {
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
            canonical: None,
        })
    }

    /// The level of the directory itself in the chain.
    pub(crate) fn own_level(&self) -> usize {
        self.prefixes.len() - 1
    }

    /// The directory's absolute path, as configured (links unresolved).
    pub(crate) fn path(&self) -> &Path {
        &self.prefixes[self.own_level()]
    }

    /// Whether the directory itself is watched.
    ///
    /// While it is not, only the chain's ancestors are.
    pub(crate) fn is_watched(&self) -> bool {
        self.wds.len() > self.own_level()
    }

    /// The name under level `level` that leads on to the directory.
    pub(crate) fn child(&self, level: usize) -> Option<&OsString> {
        self.children.get(level)
    }

    /// Re-establishes the watches from the root down, registering and
    /// dropping interests in `interests` as the chain changes.
    ///
    /// Each prefix is watched before the next one is looked up, so a
    /// component created meanwhile is either found here or reported by the
    /// watch just placed on its parent.
    pub(crate) fn relink(
        &mut self,
        me: DirIndex,
        inotify: &Inotify,
        interests: &mut Interests,
    ) -> Relinked {
        let mut wds = Vec::new();
        let mut failure = None;
        for prefix in &self.prefixes {
            match inotify.add(prefix) {
                Ok(wd) => wds.push(wd),
                Err(err) if scan::is_missing(&err) => break,
                Err(err) => {
                    failure = Some(Error::from_path(prefix, err));
                    break;
                }
            }
        }

        let old = std::mem::replace(&mut self.wds, wds);
        for (level, wd) in old.iter().enumerate() {
            if self.wds.get(level) != Some(wd) {
                interests.forget(*wd, Interest { dir: me, level }, inotify);
            }
        }
        for (level, wd) in self.wds.iter().enumerate() {
            if old.get(level) != Some(wd) {
                interests.add(*wd, Interest { dir: me, level });
            }
        }

        let own = self.own_level();
        let (was, is) = (old.get(own), self.wds.get(own));
        self.canonical = self.wds.len().checked_sub(1).and_then(|deepest| {
            let mut path = std::fs::canonicalize(&self.prefixes[deepest]).ok()?;
            path.extend(&self.children[deepest..]);
            Some(path)
        });
        Relinked {
            replaced: was.is_some() && was != is,
            present: is.is_some(),
            failure,
        }
    }
}

/// Who cares about each watch descriptor. One descriptor can serve several
/// chains: two spellings of one directory, or a directory that is another's
/// ancestor.
#[derive(Debug, Default)]
pub(crate) struct Interests(HashMap<Wd, Vec<Interest>>);

impl Interests {
    pub(crate) fn get(&self, wd: Wd) -> Option<&[Interest]> {
        self.0.get(&wd).map(Vec::as_slice)
    }

    fn add(&mut self, wd: Wd, interest: Interest) {
        self.0.entry(wd).or_default().push(interest);
    }

    /// Drops one interest in `wd`, and the watch itself once nobody cares.
    fn forget(&mut self, wd: Wd, interest: Interest, inotify: &Inotify) {
        if let Some(list) = self.0.get_mut(&wd) {
            list.retain(|i| *i != interest);
            if list.is_empty() {
                self.0.remove(&wd);
                inotify.remove(wd);
            }
        }
    }
}
