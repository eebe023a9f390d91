//! The watcher on plain files in temporary directories, in immediate mode
//! (every file counts): no privileges, no real namespaces; what is tested
//! is how directory changes become events.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use common::{changes, next, real_names, settle, temp_dir, touch, Replay};
use netns_watch::{Config, Error, Event, Namespace, NamespaceWatcher, Readiness};

fn config(dir: &std::path::Path) -> Config {
    Config::with_dirs([dir]).readiness(Readiness::Immediate)
}

#[tokio::test]
async fn it_reports_creation_and_deletion() {
    let tmp = temp_dir();
    let mut w = NamespaceWatcher::with_config(config(tmp.path()))
        .await
        .unwrap();

    let path = touch(tmp.path(), "blue");
    assert_eq!(
        next(&mut w).await,
        Event::Created(Namespace::new(tmp.path(), "blue"))
    );
    std::fs::remove_file(path).unwrap();
    assert_eq!(
        next(&mut w).await,
        Event::Deleted(Namespace::new(tmp.path(), "blue"))
    );
}

#[tokio::test]
async fn entries_present_at_start_are_the_baseline() {
    let tmp = temp_dir();
    touch(tmp.path(), "old");
    let (list, mut w) = NamespaceWatcher::list_and_watch_with_config(config(tmp.path()))
        .await
        .unwrap();
    assert_eq!(list, [Namespace::new(tmp.path(), "old")]);

    touch(tmp.path(), "new");
    std::fs::remove_file(tmp.path().join("old")).unwrap();
    assert_eq!(changes(&settle(&mut w, tmp.path()).await), ["+new", "-old"]);
}

#[tokio::test]
async fn rename_inside_is_deletion_then_creation() {
    let tmp = temp_dir();
    touch(tmp.path(), "a");
    let mut w = NamespaceWatcher::with_config(config(tmp.path()))
        .await
        .unwrap();

    std::fs::rename(tmp.path().join("a"), tmp.path().join("b")).unwrap();
    assert_eq!(changes(&settle(&mut w, tmp.path()).await), ["-a", "+b"]);
}

#[tokio::test]
async fn rename_across_the_directory_is_reported() {
    let tmp = temp_dir();
    let outside = temp_dir();
    let mut w = NamespaceWatcher::with_config(config(tmp.path()))
        .await
        .unwrap();

    let from = touch(outside.path(), "traveller");
    std::fs::rename(&from, tmp.path().join("traveller")).unwrap();
    std::fs::rename(tmp.path().join("traveller"), &from).unwrap();
    assert_eq!(
        changes(&settle(&mut w, tmp.path()).await),
        ["+traveller", "-traveller"]
    );
}

#[tokio::test]
async fn subdirectories_are_ignored() {
    let tmp = temp_dir();
    let mut w = NamespaceWatcher::with_config(config(tmp.path()))
        .await
        .unwrap();

    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    touch(&tmp.path().join("sub"), "inner");
    std::fs::rename(tmp.path().join("sub"), tmp.path().join("sub2")).unwrap();
    assert_eq!(settle(&mut w, tmp.path()).await, []);
    assert!(w.namespaces().is_empty());
}

#[tokio::test]
async fn deleted_and_recreated_directory_is_rescanned() {
    let tmp = temp_dir();
    let dir = tmp.path().join("netns");
    std::fs::create_dir(&dir).unwrap();
    touch(&dir, "a");
    let cfg = config(&dir).emit_directory_events(true);
    let mut w = NamespaceWatcher::with_config(cfg).await.unwrap();

    std::fs::remove_file(dir.join("a")).unwrap();
    std::fs::remove_dir(&dir).unwrap();
    assert_eq!(
        next(&mut w).await,
        Event::Deleted(Namespace::new(&dir, "a"))
    );
    assert_eq!(
        next(&mut w).await,
        Event::DirectoryDeleted { dir: dir.clone() }
    );
    assert!(!w.is_watching());

    std::fs::create_dir(&dir).unwrap();
    assert_eq!(
        next(&mut w).await,
        Event::DirectoryCreated { dir: dir.clone() }
    );
    assert!(w.is_watching());
    touch(&dir, "b");
    assert_eq!(changes(&settle(&mut w, &dir).await), ["+b"]);
}

#[tokio::test]
async fn directory_replaced_by_rename_is_rescanned() {
    let tmp = temp_dir();
    let dir = tmp.path().join("netns");
    let other = tmp.path().join("other");
    std::fs::create_dir(&dir).unwrap();
    std::fs::create_dir(&other).unwrap();
    touch(&dir, "old");
    touch(&other, "new");
    let mut w = NamespaceWatcher::with_config(config(&dir)).await.unwrap();

    // rename(2) over an empty directory replaces it atomically.
    std::fs::remove_file(dir.join("old")).unwrap();
    std::fs::rename(&other, &dir).unwrap();
    let events = settle(&mut w, &dir).await;
    assert_eq!(changes(&events), ["-old", "+new"]);

    // The old directory, moved away, is no longer watched.
    std::fs::rename(&dir, &other).unwrap();
    std::fs::create_dir(&dir).unwrap();
    touch(&other, "elsewhere");
    assert_eq!(changes(&settle(&mut w, &dir).await), ["-new"]);
}

#[tokio::test]
async fn missing_ancestors_are_waited_for() {
    let tmp = temp_dir();
    let dir = tmp.path().join("a/b/c/netns");
    let cfg = config(&dir).emit_directory_events(true);
    let mut w = NamespaceWatcher::with_config(cfg).await.unwrap();
    assert!(!w.is_watching());

    // Level by level, with an entry made before anyone could watch it.
    std::fs::create_dir(tmp.path().join("a")).unwrap();
    std::fs::create_dir(tmp.path().join("a/b")).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    touch(&dir, "early");
    assert_eq!(
        next(&mut w).await,
        Event::DirectoryCreated { dir: dir.clone() }
    );
    assert_eq!(
        next(&mut w).await,
        Event::Created(Namespace::new(&dir, "early"))
    );
    assert!(w.is_watching());
    touch(&dir, "late");
    assert_eq!(changes(&settle(&mut w, &dir).await), ["+late"]);
}

#[tokio::test]
async fn an_ancestor_moved_away_is_noticed() {
    let tmp = temp_dir();
    let dir = tmp.path().join("run/netns");
    std::fs::create_dir_all(&dir).unwrap();
    touch(&dir, "a");
    let mut w = NamespaceWatcher::with_config(config(&dir)).await.unwrap();

    std::fs::rename(tmp.path().join("run"), tmp.path().join("run.old")).unwrap();
    assert_eq!(
        next(&mut w).await,
        Event::Deleted(Namespace::new(&dir, "a"))
    );
    std::fs::create_dir_all(&dir).unwrap();
    touch(&dir, "b");
    assert_eq!(
        next(&mut w).await,
        Event::Created(Namespace::new(&dir, "b"))
    );
}

#[tokio::test]
async fn one_directory_under_two_spellings_reports_both() {
    let tmp = temp_dir();
    let real = tmp.path().join("run/netns");
    std::fs::create_dir_all(&real).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("run"), tmp.path().join("var-run")).unwrap();
    let alias = tmp.path().join("var-run/netns");
    let mut w = NamespaceWatcher::with_config(
        Config::with_dirs([&alias, &real]).readiness(Readiness::Immediate),
    )
    .await
    .unwrap();

    touch(&real, "x");
    let mut got = vec![next(&mut w).await, next(&mut w).await];
    got.sort_by_key(|e| e.dir().map(|d| d.to_path_buf()));
    assert_eq!(
        got,
        [
            Event::Created(Namespace::new(&real, "x")),
            Event::Created(Namespace::new(&alias, "x")),
        ]
    );
}

#[tokio::test]
async fn names_are_kept_byte_for_byte() {
    let tmp = temp_dir();
    let mut w = NamespaceWatcher::with_config(config(tmp.path()))
        .await
        .unwrap();
    let names: [&[u8]; 3] = [b"x\ndelete y", b"n\xff", &[b'l'; 255]];
    for name in names {
        touch(tmp.path(), OsStr::from_bytes(name));
    }
    let got: Vec<Vec<u8>> = settle(&mut w, tmp.path())
        .await
        .iter()
        .map(|e| e.namespace().unwrap().name.as_bytes().to_vec())
        .collect();
    assert_eq!(got, names.map(<[u8]>::to_vec));
}

#[tokio::test]
async fn c06_queue_overflow() {
    // Case C06 in immediate mode: the consumer stops reading while far
    // more than the kernel queue's 16,384 events happen.
    let tmp = temp_dir();
    for i in 0..50 {
        touch(tmp.path(), format!("before-{i}"));
    }
    let (list, mut w) = NamespaceWatcher::list_and_watch_with_config(config(tmp.path()))
        .await
        .unwrap();
    let mut replay = Replay::from_list(&list);

    for i in 0..20_000 {
        let path = touch(tmp.path(), format!("f{i}"));
        if i % 7 != 0 {
            std::fs::remove_file(path).unwrap();
        }
    }
    for i in (0..50).step_by(2) {
        std::fs::remove_file(tmp.path().join(format!("before-{i}"))).unwrap();
    }

    for event in settle(&mut w, tmp.path()).await {
        replay.apply(&event);
    }
    assert_eq!(replay.overflows, 1, "the overflow is reported in-band");
    assert_eq!(replay.names_in(tmp.path()), real_names(tmp.path()));
    let view: std::collections::BTreeSet<_> = w.namespaces().into_iter().map(|n| n.name).collect();
    assert_eq!(view, real_names(tmp.path()));
}

#[tokio::test]
async fn a_file_is_not_a_directory() {
    let tmp = temp_dir();
    let file = touch(tmp.path(), "plain");
    let err = NamespaceWatcher::with_config(config(&file))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotADirectory { path } if *path == file),
        "{err}"
    );
    assert!(err.to_string().contains(&*file.to_string_lossy()));
    let err = NamespaceWatcher::list_dir(&file).unwrap_err();
    assert!(matches!(err, Error::NotADirectory { .. }));
}

#[tokio::test]
async fn a_missing_directory_is_an_error_without_watch_parent() {
    let tmp = temp_dir();
    let dir = tmp.path().join("absent");
    let err = NamespaceWatcher::with_config(config(&dir).watch_parent(false))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { path } if *path == dir),
        "{err}"
    );
}

#[tokio::test]
async fn list_is_sorted_and_skips_subdirectories() {
    let tmp = temp_dir();
    for name in ["c", "a", "b"] {
        touch(tmp.path(), name);
    }
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    let names: Vec<_> = NamespaceWatcher::list_with_config(&config(tmp.path()))
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(NamespaceWatcher::list_dir(tmp.path().join("missing"))
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn recv_is_cancel_safe() {
    let tmp = temp_dir();
    let mut w = NamespaceWatcher::with_config(config(tmp.path()))
        .await
        .unwrap();
    for i in 0..100 {
        touch(tmp.path(), format!("n{i}"));
    }
    // Cancel many receives half-way; every event must still arrive once.
    let mut got = Vec::new();
    while got.len() < 100 {
        tokio::select! {
            biased;
            event = w.recv() => got.push(event.unwrap().unwrap()),
            _ = tokio::task::yield_now() => {}
        }
    }
    let mut replay = Replay::default();
    got.iter().for_each(|e| replay.apply(e));
    assert_eq!(replay.names_in(tmp.path()), real_names(tmp.path()));
}

#[tokio::test]
async fn the_watcher_is_a_stream() {
    use futures_util::StreamExt;

    let tmp = temp_dir();
    let w = NamespaceWatcher::with_config(config(tmp.path()))
        .await
        .unwrap();
    let mut stream = w.into_stream();
    touch(tmp.path(), "s");
    let event = tokio::time::timeout(common::PATIENCE, stream.next())
        .await
        .unwrap();
    assert_eq!(
        event.unwrap().unwrap(),
        Event::Created(Namespace::new(tmp.path(), "s"))
    );
}
