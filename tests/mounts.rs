//! Mounts that change what a watched directory holds: over it, under a
//! reused id, moved into place, seen under two spellings. These tests
//! need root (see `common::PrivateRun`).

#[macro_use]
mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::{changes, during, ip, settle, PrivateRun};
use netns_watch::{Config, Event, MountSource, NamespaceWatcher};

const P: &str = "nwt-";

async fn watcher(dirs: &[&str], source: MountSource) -> NamespaceWatcher {
    let config = Config::with_dirs(dirs.iter().copied()).mount_source(source);
    NamespaceWatcher::with_config(config).await.unwrap()
}

fn mount_tmpfs(at: &str) {
    common::run(
        "mount",
        &[
            OsStr::new("-t"),
            OsStr::new("tmpfs"),
            OsStr::new("nwt"),
            OsStr::new(at),
        ],
    );
}

/// Makes `path` a namespace of its own (a plain file first, then a mount).
fn make_namespace(path: &Path) {
    std::fs::File::create(path).unwrap();
    let arg = format!("--net={}", path.display());
    common::run("unshare", &[OsStr::new(&arg), OsStr::new("true")]);
}

async fn a_directory_that_appears_through_a_mount_is_seen(source: MountSource) {
    let _run = PrivateRun::new();
    std::fs::create_dir("/run/nwt-base").unwrap();
    let dir = "/run/nwt-base/netns";
    let mut w = watcher(&[dir], source).await;

    let events = during(&mut [(&mut w, Path::new(dir))], move || {
        // A filesystem mounted over the ancestor the watcher waits on.
        mount_tmpfs("/run/nwt-base");
        std::fs::create_dir(dir).unwrap();
        make_namespace(&Path::new(dir).join(format!("{P}late")));
    })
    .await;
    assert_eq!(changes(&events[0]), [format!("+{P}late")]);
}

async fn a_rebind_under_a_reused_mount_id_is_seen(source: MountSource) {
    let _run = PrivateRun::new();
    ip(&["netns", "add", &format!("{P}x")]);
    ip(&["netns", "add", &format!("{P}other")]);
    let (list, mut w) = NamespaceWatcher::list_and_watch_with_config(
        Config::with_dirs(["/run/netns"]).mount_source(source),
    )
    .await
    .unwrap();
    let old = list
        .iter()
        .find(|n| n.name == OsStr::new(&format!("{P}x")))
        .unwrap()
        .identity;
    let new = list
        .iter()
        .find(|n| n.name == OsStr::new(&format!("{P}other")))
        .unwrap()
        .identity;

    // Both steps happen while the watcher is not reading: the mount table
    // differs only in what the mount at the same place shows.
    let x = format!("/run/netns/{P}x");
    common::run("umount", &[OsStr::new(&x)]);
    common::run(
        "mount",
        &[
            OsStr::new("--bind"),
            OsStr::new(&format!("/run/netns/{P}other")),
            OsStr::new(&x),
        ],
    );

    let events = settle(&mut w, Path::new("/run/netns")).await;
    match &events[..] {
        [Event::Deleted(gone), Event::Created(came)] => {
            assert_eq!((gone.identity, came.identity), (old, new));
        }
        other => panic!("expected x deleted then created with the other identity, got {other:?}"),
    }
}

async fn a_stale_deletion_does_not_invent_events(source: MountSource) {
    let _run = PrivateRun::new();
    let name = format!("{P}again");
    ip(&["netns", "add", &name]);
    let (list, mut w) = NamespaceWatcher::list_and_watch_with_config(
        Config::with_dirs(["/run/netns"]).mount_source(source),
    )
    .await
    .unwrap();
    let old = list[0].identity;

    // Deleted and added again while the watcher is not reading.
    ip(&["netns", "del", &name]);
    ip(&["netns", "add", &name]);
    let events = settle(&mut w, Path::new("/run/netns")).await;
    match &events[..] {
        [Event::Deleted(gone), Event::Created(came)] => {
            assert_eq!(gone.identity, old);
            assert_ne!(came.identity, old);
        }
        other => panic!("expected one deletion and one creation, got {other:?}"),
    }
}

async fn a_directory_moved_into_place_is_listed_once(source: MountSource) {
    let _run = PrivateRun::new();
    ip(&["netns", "add", &format!("{P}a")]);
    std::fs::create_dir("/run/nwt-other").unwrap();
    let mut w = watcher(&["/run/nwt-other"], source).await;

    let events = during(&mut [(&mut w, Path::new("/run/nwt-other"))], || {
        common::run(
            "mount",
            &[OsStr::new("--make-private"), OsStr::new("/run/netns")],
        );
        common::run(
            "mount",
            &[
                OsStr::new("--move"),
                OsStr::new("/run/netns"),
                OsStr::new("/run/nwt-other"),
            ],
        );
    })
    .await;
    assert_eq!(changes(&events[0]), [format!("+{P}a")]);
    common::run("umount", &[OsStr::new(&format!("/run/nwt-other/{P}a"))]);
}

async fn two_spellings_both_see_an_unmount(source: MountSource) {
    let _run = PrivateRun::new();
    let name = format!("{P}both");
    ip(&["netns", "add", &name]);
    let mut w = watcher(&["/run/netns", "/var/run/netns"], source).await;

    common::run("umount", &[OsStr::new(&format!("/run/netns/{name}"))]);
    let mut dirs = vec![common::next(&mut w).await, common::next(&mut w).await]
        .into_iter()
        .map(|e| match e {
            Event::Deleted(ns) if ns.name == OsStr::new(&name) => ns.dir,
            other => panic!("expected a deletion of {name}, got {other:?}"),
        })
        .collect::<Vec<_>>();
    dirs.sort();
    assert_eq!(dirs, [Path::new("/run/netns"), Path::new("/var/run/netns")]);
}

for_each_source!(
    a_directory_that_appears_through_a_mount_is_seen,
    a_rebind_under_a_reused_mount_id_is_seen,
    a_stale_deletion_does_not_invent_events,
    a_directory_moved_into_place_is_listed_once,
    two_spellings_both_see_an_unmount,
);

#[test]
fn a_directory_made_readable_is_rescanned() {
    use common::{Out, Running};

    let _run = PrivateRun::new();
    std::fs::create_dir("/run/netns").unwrap();
    let mut cli = Running::start(
        &common::NOBODY,
        &["watch", "-v", "--format", "ip", "--dir", "/run/netns"],
        None,
    );
    cli.expect(Out::Stderr, "saying it watches", |l| {
        l.contains("watching /run/netns")
    });

    std::fs::set_permissions(
        "/run/netns",
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    ip(&["netns", "add", "nwt-hidden"]);
    std::fs::set_permissions(
        "/run/netns",
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    cli.expect(
        Out::Stdout,
        "for the namespace made while unreadable",
        |l| l == "add nwt-hidden",
    );
}
