//! "Created" means mounted and usable, with the namespace's identity; for
//! each of the three mount sources. These tests need root: they make real
//! namespaces in a private mount namespace (see `common::PrivateRun`).

#[macro_use]
mod common;

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{changes, during, ip, settle, PrivateRun};
use netns_watch::{Config, Event, MountSource, NamespaceWatcher};

const RUN_NETNS: &str = "/run/netns";

/// Prefix of every namespace these tests make.
const P: &str = "nwt-";

async fn watcher(source: MountSource) -> NamespaceWatcher {
    let config = Config::with_dirs([RUN_NETNS]).mount_source(source);
    let w = NamespaceWatcher::with_config(config).await.unwrap();
    assert_eq!(w.mount_source(), Some(source));
    w
}

/// Makes `/run/netns` the way `ip netns` sets it up, with no namespace.
fn set_up_dir() {
    ip(&["netns", "add", &format!("{P}setup")]);
    ip(&["netns", "del", &format!("{P}setup")]);
}

fn output(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"))
}

fn dir() -> &'static Path {
    Path::new(RUN_NETNS)
}

async fn c02_slow_mount(source: MountSource) {
    let _run = PrivateRun::new();
    set_up_dir();
    let mut w = watcher(source).await;
    let name = format!("{P}slow");

    let slow = name.clone();
    let strace = std::thread::spawn(move || {
        // The bind mount of `ip netns add` waits 0.5 s.
        common::ip_add_injected(common::DELAY_BIND, &slow)
    });
    let created = common::next(&mut w).await;
    let Event::Created(ns) = &created else {
        panic!("expected the creation of {name}, got {created:?}");
    };
    assert_eq!(ns.name, OsStr::new(&name));
    // At the moment it is reported, it can be entered.
    let exec = output("ip", &["netns", "exec", &name, "true"]);
    assert!(
        exec.status.success(),
        "ip netns exec failed: {}",
        String::from_utf8_lossy(&exec.stderr)
    );
    let inode = std::fs::metadata(dir().join(&name)).unwrap().ino();
    assert_eq!(
        ns.identity.map(|i| i.inode),
        Some(inode),
        "the event names the mounted namespace"
    );
    let traced = strace.join().unwrap();
    assert!(
        traced.status.success(),
        "strace ip netns add: {}",
        String::from_utf8_lossy(&traced.stderr)
    );
    assert_eq!(
        settle(&mut w, dir()).await,
        [],
        "nothing else, nothing for the placeholder"
    );
}

async fn c03_failed_add(source: MountSource) {
    let _run = PrivateRun::new();
    set_up_dir();
    let mut w = watcher(source).await;

    let events = during(&mut [(&mut w, dir())], || {
        let traced = common::ip_add_injected(common::FAIL_BIND, "nwt-ghost");
        assert!(
            !traced.status.success(),
            "the injected failure should make ip fail"
        );
        assert!(
            !Path::new("/run/netns/nwt-ghost").exists(),
            "ip removes its placeholder"
        );
    })
    .await;
    assert_eq!(events[0], [], "nothing at all is reported");
}

async fn c04_stale_placeholder_at_start(source: MountSource) {
    let _run = PrivateRun::new();
    set_up_dir();
    let stale = dir().join(format!("{P}stale"));
    std::fs::File::create(&stale).unwrap();
    std::fs::set_permissions(&stale, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();

    let config = Config::with_dirs([RUN_NETNS]).mount_source(source);
    let (list, mut w) = NamespaceWatcher::list_and_watch_with_config(config)
        .await
        .unwrap();
    assert_eq!(list, [], "the placeholder is not a namespace");
    assert_eq!(NamespaceWatcher::list_dir(RUN_NETNS).unwrap(), []);

    let mut events = during(&mut [(&mut w, dir())], move || {
        std::fs::remove_file(&stale).unwrap();
        ip(&["netns", "add", "nwt-stale"]);
    })
    .await
    .remove(0);
    if events.is_empty() {
        // Without mount events, the mount is seen at a re-check on a timer,
        // which may come after the sentinel.
        events.push(common::next(&mut w).await);
        events.extend(settle(&mut w, dir()).await);
    }
    assert_eq!(
        changes(&events),
        [format!("+{P}stale")],
        "exactly one addition"
    );
}

async fn c07_exact_names(source: MountSource) {
    let _run = PrivateRun::new();
    ip(&["netns", "add", &format!("{P}mario2")]);
    let wait = output(
        env!("CARGO_BIN_EXE_netns-watch"),
        &[
            "wait",
            "nwt-mario",
            "--dir",
            RUN_NETNS,
            "--timeout",
            "1",
            "--mount-source",
            source.name(),
        ],
    );
    assert_eq!(
        wait.status.code(),
        Some(124),
        "timed out, and the status says so"
    );
    let stderr = String::from_utf8_lossy(&wait.stderr);
    assert!(
        stderr.contains("timed out") && stderr.contains("nwt-mario"),
        "{stderr}"
    );

    let ready = output(
        env!("CARGO_BIN_EXE_netns-watch"),
        &[
            "wait",
            "nwt-mario2",
            "--dir",
            RUN_NETNS,
            "--timeout",
            "10",
            "--mount-source",
            source.name(),
        ],
    );
    assert_eq!(
        ready.status.code(),
        Some(0),
        "an existing name is ready at once"
    );
}

async fn c10_removed_when_unmounted(source: MountSource) {
    let _run = PrivateRun::new();
    set_up_dir();
    let mut w = watcher(source).await;
    let name = format!("{P}um");
    let path = dir().join(&name);

    let events = during(&mut [(&mut w, dir())], {
        let name = name.clone();
        move || ip(&["netns", "add", &name])
    })
    .await;
    assert_eq!(changes(&events[0]), [format!("+{name}")]);

    common::run("umount", &[path.as_os_str()]);
    let deleted = common::next(&mut w).await;
    assert!(
        matches!(&deleted, Event::Deleted(ns) if ns.name == OsStr::new(&name)),
        "expected the deletion of {name} at the unmount, got {deleted:?}"
    );
    assert!(path.exists(), "the file is still there");
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        settle(&mut w, dir()).await,
        [],
        "nothing when the placeholder goes"
    );
}

async fn rebinding_a_name_is_reported(source: MountSource) {
    let _run = PrivateRun::new();
    set_up_dir();
    let mut w = watcher(source).await;
    let name = format!("{P}rebound");
    let path = dir().join(&name);

    let first = during(&mut [(&mut w, dir())], {
        let name = name.clone();
        move || ip(&["netns", "add", &name])
    })
    .await;
    let Some(Event::Created(old)) = first[0].first().cloned() else {
        panic!("expected a creation, got {:?}", first[0]);
    };

    // Bind another namespace (this thread's own) over the existing one.
    rustix::mount::mount_bind("/proc/thread-self/ns/net", &path).unwrap();
    let own = netns_watch::Identity::of_current_thread().unwrap();
    let deleted = common::next(&mut w).await;
    let created = common::next(&mut w).await;
    match (&deleted, &created) {
        (Event::Deleted(gone), Event::Created(new)) => {
            assert_eq!(gone.identity, old.identity, "the old namespace goes");
            assert_eq!(
                new.identity.map(|i| i.inode),
                Some(own.inode),
                "the new one comes"
            );
        }
        other => panic!("expected a deletion then a creation, got {other:?}"),
    }
    rustix::mount::unmount(&path, rustix::mount::UnmountFlags::DETACH).unwrap();
    let back = [common::next(&mut w).await, common::next(&mut w).await];
    assert!(
        matches!(&back, [Event::Deleted(a), Event::Created(b)] if a.identity.map(|i| i.inode) == Some(own.inode) && b.identity == old.identity),
        "unbinding brings the first namespace back: {back:?}"
    );
}

for_each_source!(
    c02_slow_mount,
    c03_failed_add,
    c04_stale_placeholder_at_start,
    c07_exact_names,
    c10_removed_when_unmounted,
    rebinding_a_name_is_reported,
);

/// Without mount notifications, only what follows a new entry is seen.
mod poll {
    use netns_watch::MountSource::Poll;

    #[tokio::test]
    async fn c02_slow_mount() {
        super::c02_slow_mount(Poll).await
    }

    #[tokio::test]
    async fn c03_failed_add() {
        super::c03_failed_add(Poll).await
    }

    #[tokio::test]
    async fn c04_stale_placeholder_at_start() {
        super::c04_stale_placeholder_at_start(Poll).await
    }

    #[tokio::test]
    async fn c07_exact_names() {
        super::c07_exact_names(Poll).await
    }

    #[tokio::test]
    #[ignore = "the poll source has no signal for an unmount that leaves the file; \
                it needs fanotify or mountinfo (or a periodic re-check, which would wake an idle process)"]
    async fn c10_removed_when_unmounted() {
        super::c10_removed_when_unmounted(Poll).await
    }

    #[tokio::test]
    #[ignore = "the poll source has no signal for a mount over an existing name; \
                it needs fanotify or mountinfo (or a periodic re-check, which would wake an idle process)"]
    async fn rebinding_a_name_is_reported() {
        super::rebinding_a_name_is_reported(Poll).await
    }
}

#[tokio::test]
async fn a_mount_that_did_not_propagate_is_not_reported() {
    let _run = PrivateRun::new();
    set_up_dir();
    let mut w = NamespaceWatcher::with_config(Config::with_dirs([RUN_NETNS]))
        .await
        .unwrap();
    let path = dir().join(format!("{P}hidden"));
    std::fs::File::create(&path).unwrap();

    let events = during(&mut [(&mut w, dir())], move || {
        // Mounted in a private child mount namespace: this one sees only
        // the placeholder.
        let arg = format!("--net={}", path.display());
        common::run(
            "unshare",
            &[
                OsStr::new("-m"),
                OsStr::new("--propagation"),
                OsStr::new("private"),
                OsStr::new("unshare"),
                OsStr::new(&arg),
                OsStr::new("true"),
            ],
        );
    })
    .await;
    assert_eq!(events[0], []);
}

#[tokio::test]
async fn the_watcher_keeps_no_namespace_alive() {
    let _run = PrivateRun::new();
    set_up_dir();
    let mut w = NamespaceWatcher::with_config(Config::with_dirs([RUN_NETNS]))
        .await
        .unwrap();
    let (outer, held) = (format!("{P}outer"), format!("{P}held"));

    let events = during(&mut [(&mut w, dir())], {
        let (outer, held) = (outer.clone(), held.clone());
        move || {
            ip(&["netns", "add", &outer]);
            ip(&["netns", "add", &held]);
            // A veth pair across the two: its outer end lives as long as
            // the held namespace does.
            ip(&[
                "-n", &outer, "link", "add", "nwt-va", "type", "veth", "peer", "name", "nwt-vb",
                "netns", &held,
            ]);
        }
    })
    .await;
    assert_eq!(
        changes(&events[0]).len(),
        2,
        "both namespaces reported: {:?}",
        events[0]
    );

    ip(&["netns", "del", &held]);
    let deleted = common::next(&mut w).await;
    assert!(
        matches!(&deleted, Event::Deleted(ns) if ns.name == OsStr::new(&held)),
        "{deleted:?}"
    );
    // The kernel destroys the namespace (and so the veth pair) in the
    // background once nothing holds it; the watcher must not be holding it.
    let gone = common::eventually(|| {
        !output("ip", &["-n", &outer, "link", "show", "nwt-va"])
            .status
            .success()
    });
    assert!(
        gone,
        "the veth end is still there: something keeps the deleted namespace alive"
    );
}

#[tokio::test]
async fn c06_queue_overflow_with_real_namespaces() {
    let _run = PrivateRun::new();
    set_up_dir();
    let (list, mut w) =
        NamespaceWatcher::list_and_watch_with_config(Config::with_dirs([RUN_NETNS]))
            .await
            .unwrap();
    let mut replay = common::Replay::from_list(&list);

    // 9,000 namespaces added and 8,820 deleted while nobody reads: more
    // events than the inotify (and fanotify) queues hold.
    let mut batch = String::new();
    for i in 0..9000 {
        batch.push_str(&format!("netns add {P}o{i}\n"));
    }
    for i in (0..9000).filter(|i| i % 50 != 0) {
        batch.push_str(&format!("netns del {P}o{i}\n"));
    }
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run ip -batch");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), batch.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "ip -batch failed");

    for event in settle(&mut w, dir()).await {
        replay.apply(&event);
    }
    assert!(replay.overflows >= 1, "the overflow is reported in-band");
    let real: std::collections::BTreeSet<_> = NamespaceWatcher::list_dir(RUN_NETNS)
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(real.len(), 180);
    assert_eq!(replay.names_in(dir()), real);
}

#[test]
fn unprivileged_it_falls_back_to_mountinfo() {
    use common::{Out, Running};

    let _run = PrivateRun::new();
    set_up_dir();
    // As `nobody`: no CAP_SYS_ADMIN, so no fanotify mount events.
    let mut cli = Running::start(
        &common::NOBODY,
        &["watch", "-v", "--format", "json", "--dir", RUN_NETNS],
        None,
    );

    cli.expect(Out::Stderr, "naming the mount source", |l| {
        l.contains("following mounts with mountinfo")
    });
    // Only once it watches is a new namespace news rather than baseline.
    cli.expect(Out::Stderr, "saying it watches", |l| {
        l.contains("watching /run/netns")
    });
    ip(&["netns", "add", &format!("{P}unpriv")]);
    let line = cli.expect(Out::Stdout, "with a creation", |l| {
        l.contains("\"created\"")
    });
    let record: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["name"], format!("{P}unpriv"));
    let inode = std::fs::metadata(dir().join(format!("{P}unpriv")))
        .unwrap()
        .ino();
    assert_eq!(record["inode"], inode);
}
