//! Fuzz target: `netns_watch::fuzzing::reconciler_facts` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netns_watch::fuzzing::reconciler_facts(data));
