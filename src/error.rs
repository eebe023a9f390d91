//! The errors a watcher can report.

use std::io;
use std::path::PathBuf;

use rustix::io::Errno;

/// A specialized [`Result`](std::result::Result) for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while listing or watching.
///
/// Each variant names the path or value involved and, where the kernel's
/// error code has a known remedy, says what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The per-user limit of inotify instances is reached.
    #[error(
        "cannot create an inotify instance: the per-user limit is reached \
         (raise the sysctl fs.inotify.max_user_instances, or close other watchers)"
    )]
    InstanceLimit,

    /// The per-user limit of inotify watches is reached.
    #[error(
        "{path}: cannot watch: the per-user inotify watch limit is reached \
         (raise the sysctl fs.inotify.max_user_watches)"
    )]
    WatchLimit {
        /// The directory that could not be watched.
        path: PathBuf,
    },

    /// A configured path exists but is not a directory.
    #[error("{path}: not a directory (give the directory that holds the namespace files)")]
    NotADirectory {
        /// The offending path.
        path: PathBuf,
    },

    /// A configured directory does not exist and waiting for it is disabled.
    #[error("{path}: no such directory (create it, or enable watching its parent)")]
    NotFound {
        /// The missing directory.
        path: PathBuf,
    },

    /// A directory (or one of its ancestors) cannot be read or watched.
    #[error("{path}: permission denied (run with access to it, e.g. as root)")]
    PermissionDenied {
        /// The directory that was refused.
        path: PathBuf,
    },

    /// A configured path is unusable as given.
    #[error("{path}: {reason}")]
    InvalidPath {
        /// The offending path.
        path: PathBuf,
        /// Why it cannot be used.
        reason: &'static str,
    },

    /// Any other failure of a system call on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path the call was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The requested mount source cannot start, or failed while reading.
    #[error("mount source {source_name}: {source} (choose another, or let it be chosen)")]
    MountSource {
        /// Which source (`fanotify`, `mountinfo` or `poll`).
        source_name: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Creating or reading the inotify instance failed.
    #[error("inotify: {source}")]
    Inotify {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Maps an error of a call on `path` to the variant a user can act on.
    pub(crate) fn from_path(path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        match Errno::from_io_error(&source) {
            Some(Errno::NOTDIR) => Error::NotADirectory { path },
            Some(Errno::NOENT) => Error::NotFound { path },
            Some(Errno::ACCESS | Errno::PERM) => Error::PermissionDenied { path },
            // inotify_add_watch(2): ENOSPC means the watch limit, not a full disk.
            Some(Errno::NOSPC) => Error::WatchLimit { path },
            _ => Error::Io { path, source },
        }
    }
}
