//! Real-world failure cases of other namespace watchers, reproduced with
//! real `ip netns` in a private mount namespace (see `common::PrivateRun`).
//! Each test is named after its case id. These tests need root.

mod common;

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::process::Command;

use common::{changes, during, ip, settle, PrivateRun, Replay};
use netns_watch::{Config, Event, NamespaceWatcher};

/// Prefix of every namespace these tests make.
const P: &str = "nwt-";

const RUN_NETNS: &str = "/run/netns";

async fn watcher_on(dir: &str) -> NamespaceWatcher {
    NamespaceWatcher::with_config(Config::with_dirs([dir]))
        .await
        .unwrap_or_else(|e| panic!("cannot watch {dir}: {e}"))
}

#[tokio::test]
async fn c01_burst_delete() {
    let _run = PrivateRun::new();
    std::fs::create_dir(RUN_NETNS).unwrap();
    let mut w = NamespaceWatcher::new().await.unwrap();

    let dir = Path::new("/var/run/netns");
    let events = during(&mut [(&mut w, dir)], || {
        for i in 1..=5 {
            ip(&["netns", "add", &format!("{P}bd{i}")]);
        }
        ip(&["-all", "netns", "delete"]);
    })
    .await
    .remove(0);
    let mut replay = Replay::default();
    events.iter().for_each(|e| replay.apply(e));
    assert!(replay.present.is_empty(), "left over: {:?}", replay.present);
    let mut added: Vec<String> = changes(&events)
        .into_iter()
        .filter(|c| c.starts_with('+'))
        .collect();
    added.sort();
    let expected: Vec<String> = (1..=5).map(|i| format!("+{P}bd{i}")).collect();
    assert_eq!(added, expected);
    assert_eq!(events.len(), 10, "5 additions and 5 removals, nothing else");
}

#[tokio::test]
async fn c05_many_at_once_first_time() {
    let _run = PrivateRun::new();
    assert!(
        !Path::new(RUN_NETNS).exists(),
        "a fresh /run has no netns directory"
    );
    let mut w = NamespaceWatcher::new().await.unwrap();
    assert!(!w.is_watching());

    let events = during(&mut [(&mut w, Path::new("/var/run/netns"))], || {
        let children: Vec<_> = (0..10)
            .map(|i| {
                Command::new("ip")
                    .args(["netns", "add", &format!("{P}p{i}")])
                    .spawn()
                    .expect("run ip")
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success(), "ip netns add failed");
        }
    })
    .await;

    let mut added = changes(&events[0]);
    added.sort();
    let expected: Vec<String> = (0..10).map(|i| format!("+{P}p{i}")).collect();
    assert_eq!(added, expected, "each of p0..p9 once, nothing else");
    assert!(w.is_watching());
}

#[tokio::test]
async fn c08_names_that_are_not_polite() {
    let _run = PrivateRun::new();
    ip(&["netns", "add", &format!("{P}first")]);
    let mut w = watcher_on(RUN_NETNS).await;

    let names: Vec<OsString> = vec![
        OsString::from(format!("{P}x\ndelete y")),
        OsString::from_vec([P.as_bytes(), b"n\xff"].concat()),
        OsString::from(format!("{P}{}", "l".repeat(255 - P.len()))),
    ];
    for name in &names {
        let out = Command::new("ip")
            .arg("netns")
            .arg("add")
            .arg(name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip netns add {name:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let got: Vec<OsString> = settle(&mut w, Path::new(RUN_NETNS))
        .await
        .into_iter()
        .map(|e| match e {
            Event::Created(ns) => ns.name,
            other => panic!("only creations expected, got {other:?}"),
        })
        .collect();
    assert_eq!(got, names, "every name, byte for byte, in order");
    assert_eq!(got[2].as_bytes().len(), 255);
    let listed: BTreeSet<OsString> = NamespaceWatcher::list_dir(RUN_NETNS)
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert!(
        names.iter().all(|n| listed.contains(n)),
        "list shows every name exactly"
    );
}

#[tokio::test]
async fn c09_var_run_and_run() {
    let _run = PrivateRun::new();
    let var_run = std::fs::read_link("/var/run").expect("/var/run is a symbolic link here");
    assert_eq!(var_run, Path::new("/run"), "/var/run points to /run");
    std::fs::create_dir(RUN_NETNS).unwrap();

    let mut via_var = watcher_on("/var/run/netns").await;
    let mut via_run = watcher_on(RUN_NETNS).await;
    // A directory two levels below one that does not exist yet.
    let deep = "/run/nwt-deep/sub/netns";
    let mut via_deep = watcher_on(deep).await;

    let events = during(
        &mut [
            (&mut via_var, Path::new("/var/run/netns")),
            (&mut via_run, Path::new(RUN_NETNS)),
        ],
        || {
            ip(&["netns", "add", &format!("{P}a")]);
            ip(&["netns", "add", &format!("{P}b")]);
            ip(&["netns", "del", &format!("{P}a")]);
        },
    )
    .await;
    let (from_var, from_run) = (changes(&events[0]), changes(&events[1]));
    assert_eq!(
        from_var,
        [format!("+{P}a"), format!("+{P}b"), format!("-{P}a")]
    );
    assert_eq!(from_var, from_run);

    std::fs::create_dir_all(deep).unwrap();
    let target = Path::new(deep).join(format!("{P}deep"));
    std::fs::File::create(&target).unwrap();
    common::run(
        "unshare",
        &[
            OsStr::new(&format!("--net={}", target.display())),
            OsStr::new("true"),
        ],
    );
    let from_deep = changes(&settle(&mut via_deep, Path::new(deep)).await);
    assert_eq!(from_deep, [format!("+{P}deep")]);
    common::run("umount", &[target.as_os_str()]);
}
