//! Where mount changes come from: the three sources behind one interface.
//!
//! A name becomes a namespace when a namespace is mounted on its file, and
//! stops being one when it is unmounted; inotify sees neither. These
//! sources tell the watcher which path to check again.

pub(crate) mod fanotify;
pub(crate) mod mountinfo;

use std::io;
use std::path::PathBuf;
use std::task::{Context, Poll};

pub(crate) use fanotify::mount_point;

/// How mounts are noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum MountSource {
    /// fanotify mount events (Linux 6.15+, needs CAP_SYS_ADMIN): exact and
    /// immediate, no polling.
    Fanotify,
    /// `poll()` on `/proc/self/mountinfo`, then a re-read of the mount
    /// table: works unprivileged and on older kernels.
    Mountinfo,
    /// No mount notifications: each new entry is checked again a bounded
    /// number of times. Unmounts that leave the file behind, and a name
    /// re-bound to another namespace, are not noticed in this mode.
    Poll,
}

impl MountSource {
    /// The sources in order of preference.
    pub const ALL: [MountSource; 3] = [
        MountSource::Fanotify,
        MountSource::Mountinfo,
        MountSource::Poll,
    ];

    /// Returns the lowercase name used on the command line and in logs.
    pub fn name(self) -> &'static str {
        match self {
            MountSource::Fanotify => "fanotify",
            MountSource::Mountinfo => "mountinfo",
            MountSource::Poll => "poll",
        }
    }
}

impl std::fmt::Display for MountSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for MountSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MountSource::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown mount source {s:?} (use fanotify, mountinfo or poll)"))
    }
}

/// Something that happened to a mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MountChange {
    /// A mount appeared; where, if the source knows without asking.
    Attached { id: u64, point: Option<PathBuf> },
    /// A mount went away; where, if the source knows.
    Detached { id: u64, point: Option<PathBuf> },
    /// Mount events were lost: everything must be checked again.
    Overflow,
    /// A record could not be understood: everything must be checked again.
    Unknown,
}

/// A running mount source.
#[derive(Debug)]
pub(crate) enum MountWatch {
    Fanotify(fanotify::Fanotify),
    Mountinfo(mountinfo::MountInfo),
    /// Nothing to read: the watcher retries new entries on a timer.
    Poll,
}

impl MountWatch {
    /// Starts `source`.
    pub(crate) fn start(source: MountSource) -> io::Result<Self> {
        Ok(match source {
            MountSource::Fanotify => MountWatch::Fanotify(fanotify::Fanotify::new()?),
            MountSource::Mountinfo => MountWatch::Mountinfo(mountinfo::MountInfo::new()?),
            MountSource::Poll => MountWatch::Poll,
        })
    }

    /// Starts the best source that works here, logging why better ones
    /// did not.
    pub(crate) fn start_best() -> Self {
        for source in MountSource::ALL {
            match Self::start(source) {
                Ok(watch) => return watch,
                Err(err) => tracing::debug!(%source, %err, "mount source unavailable"),
            }
        }
        MountWatch::Poll
    }

    /// Which mount ids this source reports.
    pub(crate) fn id_kind(&self) -> crate::probe::MountIdKind {
        match self {
            MountWatch::Fanotify(_) => crate::probe::MountIdKind::Unique,
            MountWatch::Mountinfo(_) => crate::probe::MountIdKind::Reusable,
            MountWatch::Poll => crate::probe::MountIdKind::Skip,
        }
    }

    /// Which source this is.
    pub(crate) fn source(&self) -> MountSource {
        match self {
            MountWatch::Fanotify(_) => MountSource::Fanotify,
            MountWatch::Mountinfo(_) => MountSource::Mountinfo,
            MountWatch::Poll => MountSource::Poll,
        }
    }

    /// Reads the next batch of changes; never ready for [`MountWatch::Poll`].
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<MountChange>,
    ) -> Poll<io::Result<()>> {
        match self {
            MountWatch::Fanotify(f) => f.poll_read(cx, out),
            MountWatch::Mountinfo(m) => m.poll_read(cx, out),
            MountWatch::Poll => Poll::Pending,
        }
    }
}
