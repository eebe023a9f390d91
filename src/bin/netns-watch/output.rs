//! How events and entries are written: text, iproute2 lines and JSON Lines.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::time::SystemTime;

use netns_watch::{Event, Namespace};
use serde::{Serialize, Serializer};

use crate::cli::Format;

/// Writes `text` so that no byte of it can start a new line or field.
///
/// Printable characters other than space and backslash pass through
/// unchanged. A backslash is doubled; tab, newline and carriage return
/// become `\t`, `\n` and `\r`; space, every other ASCII control byte and
/// every byte that is not valid UTF-8 become `\xHH`; Unicode control,
/// line-separator and bidirectional-override characters become `\u{HHHH}`.
pub(crate) fn escape(text: &OsStr) -> String {
    let mut out = String::with_capacity(text.len());
    for chunk in text.as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                ' ' => out.push_str("\\x20"),
                c if c.is_ascii_control() => {
                    let _ = write!(out, "\\x{:02x}", u32::from(c));
                }
                c if c.is_control() || is_layout_control(c) => {
                    let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// Characters that move text around on a terminal without being controls:
/// line and paragraph separators, and bidirectional embeddings, overrides
/// and isolates.
fn is_layout_control(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// One event as the CLI reports it; in JSON, the library's fields of the
/// event between `time` and `initial`.
#[derive(Serialize)]
pub(crate) struct Record<'a> {
    #[serde(serialize_with = "rfc3339_micros")]
    pub(crate) time: SystemTime,
    #[serde(flatten)]
    pub(crate) event: &'a Event,
    pub(crate) initial: bool,
}

fn rfc3339_micros<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_micros(*time))
}

/// Renders one record as a line (without its newline) in `format`; `None`
/// for a record the format has no line for.
pub(crate) fn render(format: Format, record: &Record<'_>) -> Option<String> {
    match format {
        Format::Text => Some(text_line(record)),
        Format::Ip => ip_line(record.event),
        Format::Json => serde_json::to_string(record).ok(),
    }
}

/// Escapes control characters in a message meant for one line of stderr
/// (paths and names in it may hold newlines); spaces stay as they are.
pub(crate) fn one_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || is_layout_control(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// `add NAME` / `delete NAME`, as `ip netns monitor` prints them.
fn ip_line(event: &Event) -> Option<String> {
    match event {
        Event::Created(ns) => Some(format!("add {}", escape(&ns.name))),
        Event::Deleted(ns) => Some(format!("delete {}", escape(&ns.name))),
        _ => None,
    }
}

fn text_line(record: &Record<'_>) -> String {
    let time = humantime::format_rfc3339_millis(record.time);
    let kind = match record.event {
        Event::Created(_) if record.initial => "present",
        event => event.kind(),
    };
    match record.event {
        Event::Created(ns) | Event::Deleted(ns) => {
            let identity = ns.identity.map(identity_text).unwrap_or_default();
            format!(
                "{time}  {kind:<17}  {}  {}{identity}",
                escape(&ns.name),
                escape(ns.dir.as_os_str())
            )
        }
        Event::DirectoryCreated { dir } | Event::DirectoryDeleted { dir } => {
            format!("{time}  {kind:<17}  {}", escape(dir.as_os_str()))
        }
        _ => format!("{time}  {kind:<17}  kernel queue overflowed; directories rescanned"),
    }
}

/// One `list` entry: a namespace, the other names of the same namespace,
/// and whether it is the one `netns-watch` itself runs in.
#[derive(Serialize)]
pub(crate) struct Listed<'a> {
    #[serde(flatten)]
    pub(crate) ns: &'a Namespace,
    /// `None` when identities are unknown (immediate mode).
    pub(crate) aliases: Option<Vec<&'a Namespace>>,
    /// `None` when identities are unknown (immediate mode).
    pub(crate) own: Option<bool>,
}

/// Writes one `list` entry: a JSON object, the escaped name alone, or the
/// name with its identity and notes.
pub(crate) fn write_entry(
    out: &mut impl Write,
    json: bool,
    names_only: bool,
    entry: &Listed<'_>,
) -> io::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, entry)?;
        return out.write_all(b"\n");
    }
    let mut line = escape(&entry.ns.name);
    if !names_only {
        if let Some(identity) = entry.ns.identity {
            line.push_str(&identity_text(identity));
        }
        let aliases = entry.aliases.as_deref().unwrap_or_default();
        if !aliases.is_empty() {
            // An alias in another directory is shown by its whole path.
            let shown: Vec<String> = aliases
                .iter()
                .map(|a| match a.dir == entry.ns.dir {
                    true => escape(&a.name),
                    false => escape(a.path().as_os_str()),
                })
                .map(|a| a.replace(',', "\\x2c"))
                .collect();
            let _ = write!(line, "  aliases={}", shown.join(","));
        }
        if entry.own == Some(true) {
            line.push_str("  own");
        }
    }
    writeln!(out, "{line}")
}

/// `  id=N inode=N` (`id=-` when the kernel cannot tell the id).
fn identity_text(identity: netns_watch::Identity) -> String {
    match identity.id {
        Some(id) => format!("  id={id} inode={}", identity.inode),
        None => format!("  id=- inode={}", identity.inode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(bytes: &[u8]) -> String {
        escape(OsStr::from_bytes(bytes))
    }

    #[test]
    fn plain_names_are_unchanged() {
        assert_eq!(esc(b"blue-1.ns_2"), "blue-1.ns_2");
        assert_eq!(esc("réseau".as_bytes()), "réseau");
    }

    #[test]
    fn line_and_field_breaks_are_escaped() {
        assert_eq!(esc(b"x\ndelete y"), "x\\ndelete\\x20y");
        assert_eq!(esc(b"a\tb\rc"), "a\\tb\\rc");
        assert_eq!(esc("a\u{2028}b\u{85}".as_bytes()), "a\\u{2028}b\\u{0085}");
    }

    #[test]
    fn backslash_is_doubled_so_escapes_cannot_be_forged() {
        assert_eq!(esc(b"a\\nb"), "a\\\\nb");
    }

    #[test]
    fn invalid_utf8_bytes_are_hex() {
        assert_eq!(esc(b"n\xff"), "n\\xff");
        assert_eq!(esc(b"\x00\x7f"), "\\x00\\x7f");
    }

    #[test]
    fn ip_lines_match_iproute2() {
        let ns = Namespace::new("/run/netns", "blue");
        assert_eq!(
            ip_line(&Event::Created(ns.clone())).as_deref(),
            Some("add blue")
        );
        assert_eq!(ip_line(&Event::Deleted(ns)).as_deref(), Some("delete blue"));
        assert_eq!(ip_line(&Event::Overflow), None);
    }
}
