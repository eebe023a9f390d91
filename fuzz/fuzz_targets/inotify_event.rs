//! Fuzz target: `netns_watch::fuzzing::inotify_event` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netns_watch::fuzzing::inotify_event(data));
