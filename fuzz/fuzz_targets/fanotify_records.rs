//! Fuzz target: `netns_watch::fuzzing::fanotify_records` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netns_watch::fuzzing::fanotify_records(data));
