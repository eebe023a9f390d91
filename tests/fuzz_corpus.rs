//! Every input of the fuzzing corpus (`fuzz/corpus/`), replayed through its
//! target on the stable toolchain: what the fuzzer once found interesting
//! stays a regression test, with or without the fuzzer.

use std::path::Path;

use netns_watch::fuzzing;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        run(&std::fs::read(&path).unwrap());
        count += 1;
    }
    assert!(count > 0, "{}: the corpus is empty", dir.display());
}

#[test]
fn fanotify_records_corpus() {
    replay("fanotify_records", fuzzing::fanotify_records);
}

#[test]
fn statmount_buffer_corpus() {
    replay("statmount_buffer", fuzzing::statmount_buffer);
}

#[test]
fn mountinfo_text_corpus() {
    replay("mountinfo_text", fuzzing::mountinfo_text);
}

#[test]
fn inotify_event_corpus() {
    replay("inotify_event", fuzzing::inotify_event);
}

#[test]
fn reconciler_facts_corpus() {
    replay("reconciler_facts", fuzzing::reconciler_facts);
}
