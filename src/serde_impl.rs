//! JSON-friendly serialization of events and entries (feature `serde`).
//!
//! Names are bytes, and JSON strings are Unicode. Every byte-string field
//! `X` (`name`, `dir`, `path`) is written as a string: exact when the bytes
//! are valid UTF-8, and otherwise with each invalid sequence replaced by
//! U+FFFD. In that second case only, a field `X_hex` is added holding the
//! exact bytes in lowercase hexadecimal, so every name round-trips.

use std::os::unix::ffi::OsStrExt;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::{Event, Namespace};

/// Writes `key` (and `key_hex` when the bytes are not UTF-8) into `map`.
fn bytes_field<M: SerializeMap>(map: &mut M, key: &str, bytes: &[u8]) -> Result<(), M::Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => map.serialize_entry(key, text),
        Err(_) => {
            map.serialize_entry(key, &String::from_utf8_lossy(bytes))?;
            map.serialize_entry(&format!("{key}_hex"), &hex(bytes))
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// Writes the fields of `ns` into an open map.
pub(crate) fn namespace_fields<M: SerializeMap>(
    map: &mut M,
    ns: &Namespace,
) -> Result<(), M::Error> {
    bytes_field(map, "name", ns.name.as_bytes())?;
    bytes_field(map, "dir", ns.dir.as_os_str().as_bytes())?;
    bytes_field(map, "path", ns.path().as_os_str().as_bytes())?;
    map.serialize_entry("id", &ns.identity.and_then(|i| i.id))?;
    map.serialize_entry("inode", &ns.identity.map(|i| i.inode))
}

/// Writes the fields of `event` (starting with `event`) into an open map.
pub(crate) fn event_fields<M: SerializeMap>(map: &mut M, event: &Event) -> Result<(), M::Error> {
    map.serialize_entry("event", event.kind())?;
    match event {
        Event::Created(ns) | Event::Deleted(ns) => namespace_fields(map, ns),
        Event::DirectoryCreated { dir } | Event::DirectoryDeleted { dir } => {
            bytes_field(map, "dir", dir.as_os_str().as_bytes())
        }
        Event::Overflow => Ok(()),
    }
}

impl Serialize for Namespace {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        namespace_fields(&mut map, self)?;
        map.end()
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        event_fields(&mut map, self)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn hex_is_lowercase_and_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xff, 0x6e]), "000fff6e");
    }

    #[test]
    fn utf8_name_has_no_hex_field() {
        let json = serde_json::to_value(Namespace::new("/run/netns", "blue")).unwrap();
        assert_eq!(json["name"], "blue");
        assert_eq!(json["path"], "/run/netns/blue");
        assert!(json.get("name_hex").is_none());
    }

    #[test]
    fn non_utf8_name_round_trips_through_hex() {
        let name = OsStr::from_bytes(b"n\xff");
        let json = serde_json::to_value(Namespace::new("/run/netns", name)).unwrap();
        assert_eq!(json["name"], "n\u{fffd}");
        assert_eq!(json["name_hex"], "6eff");
        assert_eq!(json["path_hex"], hex(b"/run/netns/n\xff"));
    }

    #[test]
    fn identity_fields_are_null_when_unknown() {
        let mut ns = Namespace::new("/d", "x");
        let json = serde_json::to_value(&ns).unwrap();
        assert!(json["id"].is_null() && json["inode"].is_null());
        ns.identity = Some(crate::Identity {
            id: Some(4131),
            inode: 4026532174,
            dev: 4,
        });
        let json = serde_json::to_value(&ns).unwrap();
        assert_eq!(json["id"], 4131);
        assert_eq!(json["inode"], 4026532174u64);
    }

    #[test]
    fn event_kind_leads_the_record() {
        let event = Event::Deleted(Namespace::new("/d", "x"));
        let json = serde_json::to_string(&event).unwrap();
        assert!(
            json.starts_with(r#"{"event":"deleted","name":"x""#),
            "{json}"
        );
    }
}
