//! Mount events from fanotify (Linux 6.15+, CAP_SYS_ADMIN).
//!
//! Written by hand: neither `libc` nor `rustix` knows the mount-event
//! constants, records or the `statmount` system call yet, and no crate
//! wraps them. Values are from linux/fanotify.h and linux/mount.h of Linux
//! 6.15, checked on these machines.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::MountChange;

const FAN_CLOEXEC: libc::c_uint = 0x0000_0001;
const FAN_NONBLOCK: libc::c_uint = 0x0000_0002;
const FAN_REPORT_MNT: libc::c_uint = 0x0000_4000;
const FAN_MARK_ADD: libc::c_uint = 0x0000_0001;
const FAN_MARK_MNTNS: libc::c_uint = 0x0000_0110;
const FAN_Q_OVERFLOW: u64 = 0x0000_4000;
const FAN_MNT_ATTACH: u64 = 0x0100_0000;
const FAN_MNT_DETACH: u64 = 0x0200_0000;
const FAN_EVENT_INFO_TYPE_MNT: u8 = 7;
const METADATA_LEN: usize = 24;

const SYS_STATMOUNT: libc::c_long = 457;
const STATMOUNT_MNT_POINT: u64 = 0x10;
/// Size of `struct statmount` before its strings.
const STATMOUNT_FIXED_LEN: usize = 512;

/// A fanotify instance reporting mounts attached to and detached from the
/// watcher's mount namespace.
#[derive(Debug)]
pub(crate) struct Fanotify {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
}

impl Fanotify {
    /// Starts listening, or says why it cannot (EPERM without
    /// CAP_SYS_ADMIN, EINVAL before Linux 6.15).
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain system call with integer arguments.
        let raw = unsafe { libc::fanotify_init(FAN_REPORT_MNT | FAN_NONBLOCK | FAN_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let ns = std::fs::File::open("/proc/thread-self/ns/mnt")?;
        let mask = FAN_MNT_ATTACH | FAN_MNT_DETACH;
        // SAFETY: both descriptors are open; a null path means "the
        // object `ns` refers to".
        let marked = unsafe {
            libc::fanotify_mark(
                fd.as_raw_fd(),
                FAN_MARK_ADD | FAN_MARK_MNTNS,
                mask,
                ns.as_raw_fd(),
                std::ptr::null(),
            )
        };
        if marked < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the `OwnedFd` moves into the `AsyncFd`, which owns it
        // and closes it only when dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        Ok(Self {
            fd,
            buf: vec![0; 16 * 1024],
        })
    }

    /// Reads one batch of mount changes into `out`.
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<MountChange>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let buf = &mut self.buf;
            let read = guard.try_io(|fd| {
                // SAFETY: the buffer is valid for writes of its length.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match read {
                Ok(Ok(n)) => {
                    let mut fds = Vec::new();
                    parse(&self.buf[..n], out, &mut fds);
                    // Mount events carry no file descriptor (FAN_NOFD);
                    // any other is one the kernel opened for this process.
                    for fd in fds {
                        // SAFETY: the kernel gave this descriptor to this
                        // process with the event, and nothing else owns it.
                        drop(unsafe { OwnedFd::from_raw_fd(fd) });
                    }
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(err)) => return Poll::Ready(Err(err)),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Turns a buffer of fanotify event records into mount changes, and lists
/// the file descriptors the records carry (for the caller to close).
///
/// Pure and total: a record that is malformed, truncated or lacks a mount
/// id becomes [`MountChange::Unknown`] (the watcher then rescans), and
/// nothing after it in the buffer is trusted.
pub(crate) fn parse(mut buf: &[u8], out: &mut Vec<MountChange>, fds: &mut Vec<i32>) {
    while !buf.is_empty() {
        let Some(event_len) = u32_at(buf, 0).map(|n| n as usize) else {
            out.push(MountChange::Unknown);
            return;
        };
        let (Some(meta_len), Some(mask)) = (u16_at(buf, 6), u64_at(buf, 8)) else {
            out.push(MountChange::Unknown);
            return;
        };
        let meta_len = usize::from(meta_len);
        if event_len < METADATA_LEN
            || event_len > buf.len()
            || meta_len < METADATA_LEN
            || meta_len > event_len
        {
            out.push(MountChange::Unknown);
            return;
        }
        if let Some(fd) = i32_at(buf, 16).filter(|fd| *fd >= 0) {
            fds.push(fd);
        }

        let record = &buf[..event_len];
        buf = &buf[event_len..];
        if mask & FAN_Q_OVERFLOW != 0 {
            out.push(MountChange::Overflow);
            continue;
        }
        match mount_id(&record[meta_len..]) {
            Some(id) => {
                // A move is one event with both bits: gone from one place,
                // there at another.
                if mask & FAN_MNT_DETACH != 0 {
                    out.push(MountChange::Detached { id, point: None });
                }
                if mask & FAN_MNT_ATTACH != 0 {
                    out.push(MountChange::Attached { id, point: None });
                }
            }
            None => out.push(MountChange::Unknown),
        }
    }
}

/// Finds the mount id among an event's info records.
fn mount_id(mut info: &[u8]) -> Option<u64> {
    while info.len() >= 4 {
        let kind = info[0];
        let len = usize::from(u16_at(info, 2)?);
        if len < 4 || len > info.len() {
            return None;
        }
        if kind == FAN_EVENT_INFO_TYPE_MNT {
            // struct fanotify_event_info_mnt: the 4-byte header, padding to
            // 8, then the 64-bit id.
            return u64_at(&info[..len], 8);
        }
        info = &info[len..];
    }
    None
}

/// Where mount `id` is mounted (relative to this process's root), via
/// `statmount(2)`; fails once the mount is gone.
pub(crate) fn mount_point(id: u64) -> io::Result<PathBuf> {
    // struct mnt_id_req (version 0): size, spare, mnt_id, param.
    let mut req = [0u8; 24];
    req[0..4].copy_from_slice(&24u32.to_ne_bytes());
    req[8..16].copy_from_slice(&id.to_ne_bytes());
    req[16..24].copy_from_slice(&STATMOUNT_MNT_POINT.to_ne_bytes());
    let mut buf = vec![0u64; (STATMOUNT_FIXED_LEN + 4096) / 8];
    loop {
        let len = buf.len() * 8;
        // SAFETY: `req` is a valid request; `buf` is valid for writes of
        // `len` bytes and 8-byte aligned as `struct statmount` needs.
        let ret = unsafe { libc::syscall(SYS_STATMOUNT, req.as_ptr(), buf.as_mut_ptr(), len, 0) };
        if ret == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EOVERFLOW) && len < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        return Err(err);
    }
    // SAFETY: viewing initialized u64s as bytes.
    let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), buf.len() * 8) };
    parse_mount_point(bytes).ok_or_else(|| io::Error::other("statmount returned no mount point"))
}

/// Extracts the mount point from a `struct statmount` buffer.
pub(crate) fn parse_mount_point(bytes: &[u8]) -> Option<PathBuf> {
    let mask = u64_at(bytes, 8)?;
    if mask & STATMOUNT_MNT_POINT == 0 {
        return None;
    }
    let offset = u32_at(bytes, 108)? as usize;
    let strings = bytes.get(STATMOUNT_FIXED_LEN..)?;
    let text = strings.get(offset..)?;
    let end = text.iter().position(|b| *b == 0)?;
    Some(PathBuf::from(OsString::from_vec(text[..end].to_vec())))
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

fn i32_at(buf: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(buf.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(mask: u64, info: &[u8]) -> Vec<u8> {
        let len = METADATA_LEN + info.len();
        let mut r = Vec::new();
        r.extend_from_slice(&(len as u32).to_ne_bytes());
        r.extend_from_slice(&[3, 0]);
        r.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
        r.extend_from_slice(&mask.to_ne_bytes());
        r.extend_from_slice(&(-1i32).to_ne_bytes());
        r.extend_from_slice(&0i32.to_ne_bytes());
        r.extend_from_slice(info);
        r
    }

    fn mnt_info(id: u64) -> Vec<u8> {
        let mut i = vec![FAN_EVENT_INFO_TYPE_MNT, 0];
        i.extend_from_slice(&16u16.to_ne_bytes());
        i.extend_from_slice(&[0; 4]);
        i.extend_from_slice(&id.to_ne_bytes());
        i
    }

    fn parsed(buf: &[u8]) -> Vec<MountChange> {
        let mut out = Vec::new();
        let mut fds = Vec::new();
        parse(buf, &mut out, &mut fds);
        assert!(fds.is_empty(), "mount events carry no descriptor");
        out
    }

    #[test]
    fn attach_and_detach_carry_the_mount_id() {
        let mut buf = record(FAN_MNT_ATTACH, &mnt_info(7));
        buf.extend(record(FAN_MNT_DETACH, &mnt_info(8)));
        assert_eq!(
            parsed(&buf),
            [
                MountChange::Attached { id: 7, point: None },
                MountChange::Detached { id: 8, point: None }
            ]
        );
    }

    #[test]
    fn a_move_is_a_detach_then_an_attach() {
        let buf = record(FAN_MNT_ATTACH | FAN_MNT_DETACH, &mnt_info(9));
        assert_eq!(
            parsed(&buf),
            [
                MountChange::Detached { id: 9, point: None },
                MountChange::Attached { id: 9, point: None }
            ]
        );
    }

    #[test]
    fn overflow_is_reported() {
        assert_eq!(
            parsed(&record(FAN_Q_OVERFLOW, &[])),
            [MountChange::Overflow]
        );
    }

    #[test]
    fn truncated_or_malformed_records_ask_for_a_rescan() {
        let good = record(FAN_MNT_ATTACH, &mnt_info(7));
        assert_eq!(parsed(&good[..10]), [MountChange::Unknown]);
        assert_eq!(parsed(&good[..good.len() - 1]), [MountChange::Unknown]);
        let no_id = record(FAN_MNT_ATTACH, &[]);
        assert_eq!(parsed(&no_id), [MountChange::Unknown]);
        let mut bad_info = record(FAN_MNT_ATTACH, &mnt_info(7));
        bad_info[METADATA_LEN + 2] = 0xff; // info length beyond the record
        assert_eq!(parsed(&bad_info), [MountChange::Unknown]);
    }

    #[test]
    fn mount_point_is_read_from_the_string_area() {
        let mut buf = vec![0u8; STATMOUNT_FIXED_LEN + 16];
        buf[8..16].copy_from_slice(&STATMOUNT_MNT_POINT.to_ne_bytes());
        buf[108..112].copy_from_slice(&3u32.to_ne_bytes());
        buf[STATMOUNT_FIXED_LEN + 3..STATMOUNT_FIXED_LEN + 10].copy_from_slice(b"/run/x\0");
        assert_eq!(parse_mount_point(&buf), Some(PathBuf::from("/run/x")));
        buf[108..112].copy_from_slice(&9999u32.to_ne_bytes());
        assert_eq!(parse_mount_point(&buf), None);
    }
}
