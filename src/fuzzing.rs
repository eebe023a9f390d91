//! Entry points for the fuzz targets in `fuzz/`: every parser of kernel
//! records written here by hand, and the reconciler fed arbitrary facts with
//! its invariants checked. Hidden from the documentation; not a stable API.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use rustix::fs::inotify::ReadFlags;

use crate::inotify::RawEvent;
use crate::mounts::{fanotify, mountinfo};
use crate::reconciler::{EntryKind, Fact, Reconciler};
use crate::{Event, Identity};

/// Parses fanotify event records.
pub fn fanotify_records(data: &[u8]) {
    let (mut out, mut fds) = (Vec::new(), Vec::new());
    fanotify::parse(data, &mut out, &mut fds);
}

/// Parses a `struct statmount` buffer.
pub fn statmount_buffer(data: &[u8]) {
    let _ = fanotify::parse_mount_point(data);
}

/// Parses mountinfo text.
pub fn mountinfo_text(data: &[u8]) {
    for (_, root, point) in mountinfo::parse(data) {
        std::hint::black_box((root, point));
    }
}

/// Classifies one inotify event.
pub fn inotify_event(data: &[u8]) {
    let Some((mask, name)) = data.split_first_chunk::<4>() else {
        return;
    };
    let event = RawEvent {
        wd: 1,
        mask: ReadFlags::from_bits_retain(u32::from_ne_bytes(*mask)),
        name: (!name.is_empty()).then(|| OsString::from_vec(name.to_vec())),
    };
    std::hint::black_box(event.signal());
}

/// Feeds the reconciler facts decoded from `data` (two directories, eight
/// names) and checks, after every fact, that the events it emitted replay
/// to exactly its view: nothing created twice, nothing deleted that was not
/// there or with another identity.
///
/// # Panics
///
/// When an invariant breaks: that is what the fuzzer looks for.
pub fn reconciler_facts(data: &[u8]) {
    let dirs = vec![PathBuf::from("/a"), PathBuf::from("/b")];
    let mut reconciler = Reconciler::new(dirs, true);
    let mut replay: BTreeMap<(PathBuf, OsString), Option<Identity>> = BTreeMap::new();
    let mut bytes = data.iter().copied();
    while let Some(op) = bytes.next() {
        let dir = usize::from(op / 4 % 2);
        let fact = match op % 4 {
            0 | 1 => {
                let (Some(name), Some(kind)) = (bytes.next(), bytes.next()) else {
                    break;
                };
                if op % 4 == 0 {
                    Fact::Appeared {
                        dir,
                        name: name_of(name),
                        kind: kind_of(kind),
                    }
                } else {
                    Fact::Vanished {
                        dir,
                        name: name_of(name),
                    }
                }
            }
            _ => {
                let Some(count) = bytes.next() else { break };
                let entries = (count % 7 != 6).then(|| {
                    (0..count % 7)
                        .filter_map(|_| Some((name_of(bytes.next()?), kind_of(bytes.next()?))))
                        .collect::<BTreeMap<_, _>>()
                        .into_iter()
                        .collect()
                });
                Fact::Listed { dir, entries }
            }
        };
        let mut events = Vec::new();
        reconciler.apply(fact, &mut events);
        for event in &events {
            match event {
                Event::Created(ns) => {
                    let previous = replay.insert((ns.dir.clone(), ns.name.clone()), ns.identity);
                    assert!(previous.is_none(), "created twice: {ns:?}");
                }
                Event::Deleted(ns) => {
                    let previous = replay.remove(&(ns.dir.clone(), ns.name.clone()));
                    assert_eq!(
                        previous,
                        Some(ns.identity),
                        "deleted without matching creation: {ns:?}"
                    );
                }
                _ => {}
            }
        }
        let view: BTreeMap<_, _> = reconciler
            .namespaces()
            .into_iter()
            .map(|ns| ((ns.dir, ns.name), ns.identity))
            .collect();
        assert_eq!(view, replay, "the view differs from the events");
    }
}

fn name_of(byte: u8) -> OsString {
    OsString::from_vec(vec![b'n', b'0' + byte % 8])
}

fn kind_of(byte: u8) -> EntryKind {
    match byte % 4 {
        0 => EntryKind::Ignored,
        1 => EntryKind::Placeholder,
        2 => EntryKind::Namespace(None),
        _ => EntryKind::Namespace(Some(Identity {
            id: Some(u64::from(byte / 4)),
            inode: u64::from(byte / 4),
            dev: 4,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_points_take_any_bytes() {
        let samples: [&[u8]; 5] = [
            b"",
            b"\x00",
            b"\xff\xff\xff\xff",
            &[0x18, 0, 0, 0, 3, 0, 24, 0],
            &[2, 3, 2, 7, 3, 3, 8, 0, 1, 1, 5, 6],
        ];
        for data in samples {
            fanotify_records(data);
            statmount_buffer(data);
            mountinfo_text(data);
            inotify_event(data);
            reconciler_facts(data);
        }
    }
}
