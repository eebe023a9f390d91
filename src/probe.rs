//! Is this name a usable network namespace, and which one?
//!
//! A name is a namespace while its file is a mount of the namespace
//! filesystem (nsfs) holding a network namespace. The check opens the file
//! only as a path first (no side effect on whatever it is), reads the
//! identity through a real descriptor only when it is nsfs, and closes
//! everything at once: a descriptor kept open, or an inotify watch on the
//! file, would keep the namespace alive after `ip netns del`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use rustix::fs::{fstat, fstatfs, open, statx, AtFlags, Mode, OFlags, StatxFlags};
use rustix::io::Errno;

/// `f_type` of the namespace filesystem (`NSFS_MAGIC`, linux/magic.h).
const NSFS_MAGIC: i64 = 0x6e73_6673;
/// `ioctl(fd, NS_GET_NSTYPE)` returns the namespace's `CLONE_NEW*` type.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
/// `ioctl(fd, NS_GET_ID, &u64)`: the namespace's 64-bit id (Linux 6.12+).
const NS_GET_ID: libc::c_ulong = 0x8008_b70d;
/// `statx` mask bit for the unique 64-bit mount id (Linux 6.8+).
const STATX_MNT_ID_UNIQUE: u32 = 0x4000;

/// Which network namespace a name points to.
///
/// Two names with equal identities are the same namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct Identity {
    /// The kernel's 64-bit namespace id (`NS_GET_ID`), never reused while
    /// the system runs; `None` on kernels older than 6.12.
    pub id: Option<u64>,
    /// The namespace's inode number in nsfs, as `ls -i` and
    /// `ip netns identify` see it; may be reused after the namespace dies.
    pub inode: u64,
    /// The device of nsfs, which with `inode` identifies the namespace.
    pub dev: u64,
}

/// What a name in a watched directory is right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// Nothing by that name.
    Missing,
    /// A directory: never a namespace.
    Directory,
    /// Something else, not (or not yet) a network namespace: the empty
    /// placeholder file `ip netns add` creates before mounting, a file left
    /// after an unmount, or a mount of another namespace type.
    Placeholder,
    /// A mounted network namespace, with the id of the mount showing it.
    Namespace {
        identity: Identity,
        mount: Option<u64>,
    },
}

/// Which mount id to read: the one the running mount source reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MountIdKind {
    /// The 64-bit id, never reused (fanotify, statmount).
    Unique,
    /// The 32-bit id of mountinfo, reused once freed.
    Reusable,
    /// None: nothing reports mounts by id.
    Skip,
}

/// Checks what `path` is, holding no descriptor afterwards.
pub(crate) fn probe(path: &Path, ids: MountIdKind) -> io::Result<Probe> {
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(Probe::Missing),
        // A symbolic link (O_NOFOLLOW): not a mount, so not a namespace.
        Err(Errno::LOOP) => return Ok(Probe::Placeholder),
        Err(errno) => return Err(errno.into()),
    };
    let stat = fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Directory {
        return Ok(Probe::Directory);
    }
    if fstatfs(&fd)?.f_type as i64 != NSFS_MAGIC {
        return Ok(Probe::Placeholder);
    }
    let mount = mount_id(&fd, ids);

    // It is nsfs: open it for real to ask which namespace it is, and check
    // again on that descriptor in case the mount changed meanwhile.
    let real = match open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(Probe::Missing),
        Err(errno) => return Err(errno.into()),
    };
    if fstatfs(&real)?.f_type as i64 != NSFS_MAGIC || ns_type(&real)? != libc::CLONE_NEWNET {
        return Ok(Probe::Placeholder);
    }
    let stat = fstat(&real)?;
    Ok(Probe::Namespace {
        identity: Identity {
            id: ns_id(&real),
            inode: stat.st_ino,
            dev: stat.st_dev,
        },
        mount,
    })
}

impl Identity {
    /// Returns the identity of the network namespace the calling thread is
    /// in, to tell which names point to it (`ip netns attach NAME PID`).
    ///
    /// # Errors
    ///
    /// Fails if `/proc` is not mounted.
    pub fn of_current_thread() -> io::Result<Identity> {
        own_identity()
    }
}

/// Returns the identity of the network namespace the calling thread is in.
fn own_identity() -> io::Result<Identity> {
    let fd = open(
        "/proc/thread-self/ns/net",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let stat = fstat(&fd)?;
    Ok(Identity {
        id: ns_id(&fd),
        inode: stat.st_ino,
        dev: stat.st_dev,
    })
}

fn ns_type(fd: &OwnedFd) -> io::Result<i32> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only returns a value.
    let kind = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
    if kind < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(kind)
}

fn ns_id(fd: &OwnedFd) -> Option<u64> {
    let mut id: u64 = 0;
    // SAFETY: NS_GET_ID writes one u64 through the pointer, which is valid
    // for writes for the duration of the call.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_ID, &mut id as *mut u64) };
    (ret == 0).then_some(id)
}

/// The id of the mount `fd` is on, of the kind asked for, when the kernel
/// reports it.
pub(crate) fn mount_id(fd: impl AsFd, kind: MountIdKind) -> Option<u64> {
    let bit = match kind {
        MountIdKind::Unique => STATX_MNT_ID_UNIQUE,
        MountIdKind::Reusable => StatxFlags::MNT_ID.bits(),
        MountIdKind::Skip => return None,
    };
    let stx = statx(
        fd,
        "",
        AtFlags::EMPTY_PATH,
        StatxFlags::from_bits_retain(bit),
    )
    .ok()?;
    (stx.stx_mask & bit != 0).then_some(stx.stx_mnt_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_file_is_a_placeholder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        std::fs::File::create(&path).unwrap();
        assert_eq!(probe(&path, MountIdKind::Skip).unwrap(), Probe::Placeholder);
    }

    #[test]
    fn a_missing_name_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            probe(&dir.path().join("none"), MountIdKind::Skip).unwrap(),
            Probe::Missing
        );
    }

    #[test]
    fn a_directory_is_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            probe(dir.path(), MountIdKind::Skip).unwrap(),
            Probe::Directory
        );
    }

    #[test]
    fn the_own_namespace_has_an_identity() {
        let own = own_identity().unwrap();
        assert!(own.inode != 0);
        // /proc/self/ns/net is a symbolic link into nsfs; followed, it is
        // the namespace itself.
        let via_proc = probe(Path::new("/proc/thread-self/ns/net"), MountIdKind::Skip).unwrap();
        assert_eq!(
            via_proc,
            Probe::Placeholder,
            "a symbolic link is not followed"
        );
    }
}
