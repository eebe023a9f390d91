//! Mount changes from `/proc/thread-self/mountinfo`, for when fanotify mount
//! events are not available (no CAP_SYS_ADMIN, or Linux before 6.15).
//!
//! proc(5): the file polls with POLLPRI (and POLLERR) whenever the mount
//! table of the reader's mount namespace changed since the last poll. On
//! each wake the table is read again (about 1.2 us per line here) and
//! compared with the previous reading.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::MountChange;

/// One mount: its (reusable) id, the root it shows (for nsfs,
/// `net:[INODE]`, so that a namespace re-bound under a reused id still
/// differs), and where it is mounted.
type Mount = (u64, Vec<u8>, PathBuf);

/// A watch on this process's mount table.
#[derive(Debug)]
pub(crate) struct MountInfo {
    file: AsyncFd<File>,
    mounts: HashSet<Mount>,
    buf: Vec<u8>,
}

impl MountInfo {
    /// Opens the mount table and takes its first reading.
    pub(crate) fn new() -> io::Result<Self> {
        let file = File::open("/proc/thread-self/mountinfo")?;
        // Only POLLPRI means "changed": the file is always readable, so
        // asking for readability would wake the process for nothing.
        // SAFETY: the `File` moves into the `AsyncFd`, which owns it.
        let file = unsafe { AsyncFd::register_with_interest(file, Interest::PRIORITY) }?;
        let mut this = Self {
            file,
            mounts: HashSet::new(),
            buf: Vec::new(),
        };
        this.mounts = this.read_table()?;
        Ok(this)
    }

    /// Waits for the mount table to change, then reports what changed.
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<MountChange>,
    ) -> Poll<io::Result<()>> {
        let mut guard = ready!(self.file.poll_read_ready(cx))?;
        guard.clear_ready();
        drop(guard);
        let now = self.read_table()?;
        let mut changes: Vec<(usize, MountChange)> = Vec::new();
        for (id, _, point) in self.mounts.difference(&now) {
            let change = MountChange::Detached {
                id: *id,
                point: Some(point.clone()),
            };
            changes.push((point.components().count(), change));
        }
        for (id, _, point) in now.difference(&self.mounts) {
            let change = MountChange::Attached {
                id: *id,
                point: Some(point.clone()),
            };
            changes.push((point.components().count(), change));
        }
        // Shallow mounts first: a directory mounted (or moved) is handled
        // before the entries under it, as a rescan of it covers them.
        changes.sort_by_key(|(depth, _)| *depth);
        out.extend(changes.into_iter().map(|(_, change)| change));
        self.mounts = now;
        Poll::Ready(Ok(()))
    }

    fn read_table(&mut self) -> io::Result<HashSet<Mount>> {
        let file = self.file.get_mut();
        file.rewind()?;
        self.buf.clear();
        file.read_to_end(&mut self.buf)?;
        Ok(parse(&self.buf).collect())
    }
}

/// Parses mountinfo text into (mount id, mount point) pairs; a line that
/// does not parse is skipped.
pub(crate) fn parse(text: &[u8]) -> impl Iterator<Item = Mount> + '_ {
    text.split(|b| *b == b'\n').filter_map(parse_line)
}

fn parse_line(line: &[u8]) -> Option<Mount> {
    // proc(5): "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 ..."
    let mut fields = line.split(|b| *b == b' ');
    let id = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    let root = fields.nth(2)?;
    let point = fields.next()?;
    Some((
        id,
        root.to_vec(),
        PathBuf::from(OsString::from_vec(unescape(point)?)),
    ))
}

/// Undoes the kernel's octal escapes (`\040` for space, `\012` for
/// newline, `\134` for backslash, ...); `None` if one is malformed.
fn unescape(field: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' {
            let digits = field.get(i + 1..i + 4)?;
            let mut value: u32 = 0;
            for d in digits {
                if !(b'0'..=b'7').contains(d) {
                    return None;
                }
                value = value * 8 + u32::from(d - b'0');
            }
            out.push(u8::try_from(value).ok()?);
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_give_id_and_mount_point() {
        let text = b"22 1 0:21 / /run rw,nosuid shared:5 - tmpfs tmpfs rw\n\
                     45 22 0:4 net:[4026532174] /run/netns/blue rw - nsfs nsfs rw\n";
        let got: Vec<_> = parse(text).map(|(id, _, point)| (id, point)).collect();
        assert_eq!(got, [(22, "/run".into()), (45, "/run/netns/blue".into())]);
    }

    #[test]
    fn escapes_are_undone() {
        let line = b"45 22 0:4 net:[1] /run/netns/a\\040b\\012c\\134 rw - nsfs nsfs rw";
        let (_, root, point) = parse_line(line).unwrap();
        assert_eq!(root, b"net:[1]");
        assert_eq!(point, PathBuf::from("/run/netns/a b\nc\\"));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert_eq!(parse(b"garbage\n\n45 22\nx 1 2 3 /p\n").count(), 0);
        assert!(parse_line(b"1 2 3 4 /bad\\09 rw").is_none());
        assert!(parse_line(b"1 2 3 4 /bad\\777 rw").is_none());
    }

    #[test]
    fn the_real_table_parses() {
        let text = std::fs::read("/proc/self/mountinfo").unwrap();
        let mounts: Vec<_> = parse(&text).collect();
        assert!(mounts.iter().any(|(_, _, p)| p == &PathBuf::from("/")));
    }
}
