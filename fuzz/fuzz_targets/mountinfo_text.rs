//! Fuzz target: `netns_watch::fuzzing::mountinfo_text` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netns_watch::fuzzing::mountinfo_text(data));
