//! Directory listings: what a watched directory holds right now.

use std::ffi::OsString;
use std::io;
use std::path::Path;

/// Lists `dir` as (name, is a directory) pairs, or `Ok(None)` if it does
/// not exist (or is no longer a directory).
///
/// Entry types come from the directory itself (`d_type`), so no entry is
/// opened; an entry whose type the filesystem does not report is checked
/// with `lstat`.
pub(crate) fn list(dir: &Path) -> io::Result<Option<Vec<(OsString, bool)>>> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(err) if is_missing(&err) => return Ok(None),
        Err(err) => return Err(err),
    };
    let mut entries = Vec::new();
    for entry in read {
        let entry = match entry {
            Ok(entry) => entry,
            // The directory was removed while being read.
            Err(err) if is_missing(&err) => return Ok(None),
            Err(err) => return Err(err),
        };
        let is_dir = match entry.file_type() {
            Ok(t) => t.is_dir(),
            // The entry went away between readdir and lstat: it is not here.
            Err(err) if is_missing(&err) => continue,
            Err(err) => return Err(err),
        };
        entries.push((entry.file_name(), is_dir));
    }
    Ok(Some(entries))
}

/// Whether an error means "the directory is not there (as a directory)".
pub(crate) fn is_missing(err: &io::Error) -> bool {
    matches!(
        rustix::io::Errno::from_io_error(err),
        Some(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR)
    )
}
