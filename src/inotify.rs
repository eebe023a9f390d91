//! The inotify source: directory watches and their raw events.
//!
//! Written on `rustix` rather than a higher-level inotify crate so that a
//! whole kernel read is turned into facts in one step (one wake-up per batch,
//! which keeps a paused consumer's backlog cheap to drain) and so that an
//! unknown mask bit from a newer kernel is carried, never a panic.

use std::ffi::OsString;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::task::{ready, Context, Poll};

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::{Error, Result};

/// A watch descriptor, as the kernel numbers it.
pub(crate) type Wd = i32;

/// The events every directory watch asks for. A watched directory's own
/// entries come from the first four; the rest say the directory itself is
/// gone, moved, or changed its permissions (so it may have become readable),
/// which the watcher answers with a rescan.
const MASK: WatchFlags = WatchFlags::ATTRIB
    .union(WatchFlags::CREATE)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);

/// Bytes read from the kernel at once: room for about 2,000 events with
/// short names, so a full default queue (16,384 events) drains in a few
/// reads.
const BUFFER_LEN: usize = 64 * 1024;

/// One event as read from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEvent {
    pub(crate) wd: Wd,
    pub(crate) mask: ReadFlags,
    pub(crate) name: Option<OsString>,
}

/// What a raw event means for the directory it was reported on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Signal<'a> {
    /// The kernel queue overflowed: events were dropped.
    Overflow,
    /// An entry was created in, or moved into, the watched directory.
    Added { name: &'a OsString, is_dir: bool },
    /// An entry was deleted from, or moved out of, the watched directory.
    Removed { name: &'a OsString },
    /// The watched directory itself is gone, moved, unmounted, no longer
    /// watched, or changed its permissions.
    SelfChanged,
    /// An entry's metadata changed (such as its permissions).
    EntryChanged { name: &'a OsString },
    /// Nothing the watcher acts on.
    Other,
}

impl RawEvent {
    /// Classifies the event; a pure function of the mask and name.
    pub(crate) fn signal(&self) -> Signal<'_> {
        let mask = self.mask;
        if mask.contains(ReadFlags::QUEUE_OVERFLOW) {
            return Signal::Overflow;
        }
        if mask.intersects(
            ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF | ReadFlags::IGNORED | ReadFlags::UNMOUNT,
        ) {
            return Signal::SelfChanged;
        }
        let Some(name) = &self.name else {
            if mask.contains(ReadFlags::ATTRIB) {
                return Signal::SelfChanged;
            }
            return Signal::Other;
        };
        if mask.contains(ReadFlags::ATTRIB) {
            return Signal::EntryChanged { name };
        }
        if mask.intersects(ReadFlags::CREATE | ReadFlags::MOVED_TO) {
            Signal::Added {
                name,
                is_dir: mask.contains(ReadFlags::ISDIR),
            }
        } else if mask.intersects(ReadFlags::DELETE | ReadFlags::MOVED_FROM) {
            Signal::Removed { name }
        } else {
            Signal::Other
        }
    }
}

/// An inotify instance registered with the tokio reactor.
pub(crate) struct Inotify {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<MaybeUninit<u8>>,
}

impl std::fmt::Debug for Inotify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inotify")
            .field("fd", self.fd.get_ref())
            .finish()
    }
}

impl Inotify {
    /// Creates a non-blocking instance; must run inside a tokio runtime.
    pub(crate) fn new() -> Result<Self> {
        let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC).map_err(|errno| {
            // inotify_init1(2): EMFILE is the per-user instance limit (or,
            // rarely, the process's open file limit).
            if errno == Errno::MFILE {
                Error::InstanceLimit
            } else {
                Error::Inotify {
                    source: errno.into(),
                }
            }
        })?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Inotify {
                source: io::Error::other("a watcher must be created inside a tokio runtime"),
            });
        }
        // SAFETY: the descriptor is an `OwnedFd` moved into the `AsyncFd`,
        // which owns it, never replaces it, and closes it only when dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|err| Error::Inotify { source: err.into() })?;
        Ok(Self {
            fd,
            buf: vec![MaybeUninit::uninit(); BUFFER_LEN],
        })
    }

    /// Watches the directory at `path` (following symbolic links).
    ///
    /// Watching an inode that is already watched returns its existing
    /// descriptor, so equal descriptors mean the same directory.
    pub(crate) fn add(&self, path: &Path) -> io::Result<Wd> {
        Ok(inotify::add_watch(self.fd.get_ref(), path, MASK)?)
    }

    /// Stops a watch. The kernel may have dropped it already (the directory
    /// was deleted), which is not an error here.
    pub(crate) fn remove(&self, wd: Wd) {
        match inotify::remove_watch(self.fd.get_ref(), wd) {
            Ok(()) | Err(Errno::INVAL) => {}
            Err(errno) => tracing::warn!(wd, %errno, "could not remove an inotify watch"),
        }
    }

    /// Reads one batch of events into `out`, waiting until there is one.
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<RawEvent>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let buf = &mut self.buf;
            match guard.try_io(|fd| read_batch(fd.get_ref(), buf, out)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Performs one read(2) and parses every event it returned.
fn read_batch(
    fd: impl AsFd,
    buf: &mut [MaybeUninit<u8>],
    out: &mut Vec<RawEvent>,
) -> io::Result<()> {
    let mut reader = inotify::Reader::new(fd, buf);
    loop {
        let event = reader.next()?;
        out.push(RawEvent {
            wd: event.wd(),
            mask: event.events(),
            name: event
                .file_name()
                .map(|name| OsString::from_vec(name.to_bytes().to_vec())),
        });
        if reader.is_buffer_empty() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(mask: ReadFlags, name: Option<&str>) -> RawEvent {
        RawEvent {
            wd: 1,
            mask,
            name: name.map(OsString::from),
        }
    }

    #[test]
    fn create_and_move_in_are_additions() {
        let created = raw(ReadFlags::CREATE, Some("a"));
        assert!(matches!(
            created.signal(),
            Signal::Added { is_dir: false, .. }
        ));
        let moved = raw(ReadFlags::MOVED_TO | ReadFlags::ISDIR, Some("d"));
        assert!(matches!(moved.signal(), Signal::Added { is_dir: true, .. }));
    }

    #[test]
    fn delete_and_move_out_are_removals() {
        for mask in [ReadFlags::DELETE, ReadFlags::MOVED_FROM] {
            assert!(matches!(
                raw(mask, Some("a")).signal(),
                Signal::Removed { .. }
            ));
        }
    }

    #[test]
    fn overflow_wins_over_everything() {
        let event = RawEvent {
            wd: -1,
            mask: ReadFlags::QUEUE_OVERFLOW,
            name: None,
        };
        assert_eq!(event.signal(), Signal::Overflow);
    }

    #[test]
    fn losing_the_directory_is_a_self_change() {
        for mask in [
            ReadFlags::DELETE_SELF,
            ReadFlags::MOVE_SELF,
            ReadFlags::IGNORED,
            ReadFlags::UNMOUNT,
        ] {
            assert_eq!(raw(mask, None).signal(), Signal::SelfChanged);
        }
    }

    #[test]
    fn the_directory_changing_permissions_asks_for_a_rescan() {
        assert_eq!(raw(ReadFlags::ATTRIB, None).signal(), Signal::SelfChanged);
        let entry = raw(ReadFlags::ATTRIB, Some("entry"));
        assert!(matches!(entry.signal(), Signal::EntryChanged { .. }));
    }

    #[test]
    fn unknown_bits_are_carried_without_panic() {
        let event = raw(ReadFlags::from_bits_retain(0x0400_0000), Some("a"));
        assert_eq!(event.signal(), Signal::Other);
    }
}
