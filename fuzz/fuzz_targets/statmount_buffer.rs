//! Fuzz target: `netns_watch::fuzzing::statmount_buffer` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netns_watch::fuzzing::statmount_buffer(data));
