//! `watch --exec` and `--exec-in`: the environment a hook sees, hostile
//! names, ordering, `--jobs`, timeouts and shutdown. Tests with real
//! namespaces need root (see `common::PrivateRun`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use common::{ip, temp_dir, Out, PrivateRun, Running};
use rustix::process::Signal;

/// A hook that records its environment, one file per run, in `$OUT`; the
/// file appears whole (written aside, then renamed).
const RECORD: &str = r#"f=$(mktemp -p "$OUT" part.XXXXXX) && env | grep '^NETNS_' | sort > "$f" && mv "$f" "$OUT/hook.${f##*.}""#;

/// Reads every record left by [`RECORD`]: one map per hook run.
fn records(dir: &Path) -> Vec<BTreeMap<String, String>> {
    let mut all = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("hook.")
        {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        all.push(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        );
    }
    all
}

/// Waits until `dir` holds `count` hook records.
fn wait_for_records(dir: &Path, count: usize) -> Vec<BTreeMap<String, String>> {
    let ok = common::eventually(|| records(dir).len() >= count);
    let got = records(dir);
    assert!(
        ok,
        "expected {count} hook runs, got {}: {got:#?}",
        got.len()
    );
    got
}

/// Starts `netns-watch ARGS...` with `OUT` set (for the child only) and
/// `out` as its working directory.
fn start_with_out(out: &Path, args: &[&str]) -> Running {
    let out_arg = format!("OUT={}", out.display());
    Running::start(&["env", &out_arg], args, Some(out))
}

/// Starts an immediate-mode `watch --initial` on `watched` with `args`
/// (after the directory), once a file `ready` is there, and waits until it
/// is reported: from then on, every change is seen. The hook runs once for
/// `ready`.
fn start_ready(out: &Path, watched: &Path, args: &[&str]) -> Running {
    common::touch(watched, "ready");
    let dir = watched.to_str().unwrap();
    let mut all = vec!["watch", "--immediate", "--initial", "--dir", dir];
    all.extend_from_slice(args);
    let mut cli = start_with_out(out, &all);
    cli.expect(Out::Stdout, "for the name present at start", |l| {
        l.contains("ready")
    });
    cli
}

#[test]
fn hooks_see_every_event_kind_in_their_environment() {
    let tmp = temp_dir();
    let watched = tmp.path().join("netns");
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::create_dir(&watched).unwrap();
    common::touch(&watched, "before");
    let dir = watched.to_str().unwrap();
    let mut cli = start_with_out(
        &out,
        &[
            "watch",
            "--immediate",
            "--initial",
            "--directory-events",
            "--format",
            "json",
            "--dir",
            dir,
            "--exec",
            "sh",
            "-c",
            RECORD,
        ],
    );
    cli.expect(Out::Stdout, "for the initial name", |l| {
        l.contains("\"before\"")
    });

    common::touch(&watched, "new");
    fs::remove_file(watched.join("new")).unwrap();
    fs::remove_file(watched.join("before")).unwrap();
    fs::remove_dir(&watched).unwrap();
    cli.expect(Out::Stdout, "for the directory's deletion", |l| {
        l.contains("directory-deleted")
    });

    let mut got: Vec<(String, String, String)> = wait_for_records(&out, 5)
        .into_iter()
        .map(|r| {
            assert_eq!(r.get("NETNS_DIR").map(String::as_str), Some(dir));
            (
                r["NETNS_EVENT"].clone(),
                r.get("NETNS_NAME").cloned().unwrap_or_default(),
                r["NETNS_INITIAL"].clone(),
            )
        })
        .collect();
    got.sort();
    let want = [
        ("created", "before", "1"),
        ("created", "new", "0"),
        ("deleted", "before", "0"),
        ("deleted", "new", "0"),
        ("directory-deleted", "", "0"),
    ]
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()));
    assert_eq!(got, want);
}

#[test]
fn hostile_names_run_nothing() {
    let tmp = temp_dir();
    let watched = tmp.path().join("netns");
    let out = tmp.path().join("out");
    fs::create_dir_all(&watched).unwrap();
    fs::create_dir_all(&out).unwrap();
    let _cli = start_ready(
        &out,
        &watched,
        &["--format", "ip", "--exec", "sh", "-c", RECORD],
    );

    let hostile = [
        "$(touch pwned1)",
        "; touch pwned2",
        "`touch pwned3`",
        "x\ntouch pwned4",
    ];
    for name in hostile {
        common::touch(&watched, name);
    }
    let names: BTreeSet<String> = wait_for_records(&out, 1 + hostile.len())
        .into_iter()
        .map(|r| r["NETNS_NAME"].clone())
        .collect();
    for name in hostile {
        // `env` prints the value as is; a newline splits it across lines.
        let first_line = name.lines().next().unwrap();
        assert!(
            names.contains(first_line),
            "{name:?} reached its hook as is: {names:?}"
        );
    }
    for n in 1..=4 {
        assert!(
            !out.join(format!("pwned{n}")).exists(),
            "a name ran a command"
        );
    }
}

#[tokio::test]
async fn exec_in_runs_inside_the_namespace_the_event_named() {
    let _run = PrivateRun::new();
    let out = temp_dir();
    let script = r#"readlink /proc/self/ns/net > "$OUT/in.$NETNS_NAME"; echo "$NETNS_INODE" > "$OUT/inode.$NETNS_NAME""#;
    ip(&["netns", "add", "nwt-ready"]);
    let mut cli = start_with_out(
        out.path(),
        &[
            "watch",
            "--initial",
            "--format",
            "json",
            "--dir",
            "/run/netns",
            "--exec-in",
            "sh",
            "-c",
            script,
        ],
    );
    cli.expect(Out::Stdout, "for the namespace present at start", |l| {
        l.contains("nwt-ready")
    });
    ip(&["netns", "add", "nwt-inside"]);
    let line = cli.expect(Out::Stdout, "for the creation", |l| {
        l.contains("nwt-inside")
    });
    let record: serde_json::Value = serde_json::from_str(&line).unwrap();
    let inode = record["inode"].as_u64().unwrap();

    let seen = out.path().join("in.nwt-inside");
    assert!(common::eventually(|| seen.exists()), "the hook did not run");
    std::thread::sleep(std::time::Duration::from_millis(50));
    let link = fs::read_to_string(&seen).unwrap();
    assert_eq!(
        link.trim(),
        format!("net:[{inode}]"),
        "the hook ran in the namespace of the event"
    );
    let env_inode = fs::read_to_string(out.path().join("inode.nwt-inside")).unwrap();
    assert_eq!(env_inode.trim(), inode.to_string());
}

#[tokio::test]
async fn hooks_keep_order_per_namespace_and_respect_jobs_under_a_burst() {
    let _run = PrivateRun::new();
    ip(&["netns", "add", "nwt-first"]);
    let out = temp_dir();
    let log = out.path().join("log");
    // Each run logs its start and end with a sequence number per process.
    let script = r#"echo "start $NETNS_NAME $NETNS_EVENT" >> "$OUT/log"; sleep 0.02; echo "end $NETNS_NAME $NETNS_EVENT" >> "$OUT/log""#;
    let mut cli = start_with_out(
        out.path(),
        &[
            "watch",
            "--initial",
            "--format",
            "ip",
            "--dir",
            "/run/netns",
            "--jobs",
            "4",
            "--exec",
            "sh",
            "-c",
            script,
        ],
    );
    cli.expect(Out::Stdout, "for the namespace present at start", |l| {
        l == "add nwt-first"
    });

    let mut batch = String::new();
    for i in 0..200 {
        batch.push_str(&format!("netns add nwt-b{i}\n"));
    }
    for i in 0..200 {
        batch.push_str(&format!("netns del nwt-b{i}\n"));
    }
    common::run_with_input("ip", &["-batch", "-"], batch.as_bytes());

    let lines = || fs::read_to_string(&log).unwrap_or_default();
    let done = common::eventually_for(std::time::Duration::from_secs(60), || {
        lines().matches("end ").count() >= 401
    });
    assert!(
        done,
        "not every hook ran: {} of 401",
        lines().matches("end ").count()
    );

    let mut running: BTreeSet<String> = BTreeSet::new();
    let mut order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut max_parallel = 0;
    for line in lines().lines() {
        let mut words = line.split(' ');
        let (what, name, event) = (
            words.next().unwrap(),
            words.next().unwrap(),
            words.next().unwrap(),
        );
        match what {
            "start" => {
                assert!(
                    running.insert(name.to_owned()),
                    "two hooks for {name} at once"
                );
                order
                    .entry(name.to_owned())
                    .or_default()
                    .push(event.to_owned());
            }
            _ => {
                running.remove(name);
            }
        }
        max_parallel = max_parallel.max(running.len());
    }
    assert!(
        max_parallel <= 4,
        "more than --jobs hooks at once: {max_parallel}"
    );
    assert!(
        max_parallel >= 2,
        "hooks for different namespaces never ran in parallel"
    );
    for i in 0..200 {
        assert_eq!(
            order[&format!("nwt-b{i}")],
            ["created", "deleted"],
            "order of nwt-b{i}"
        );
    }
}

#[test]
fn a_slow_hook_under_a_burst_loses_nothing() {
    let tmp = temp_dir();
    let watched = tmp.path().join("netns");
    fs::create_dir(&watched).unwrap();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    // The first hook blocks for 3 s; meanwhile 20,000 events arrive.
    let script = r#"[ "$NETNS_NAME" = slow ] && [ "$NETNS_EVENT" = created ] && sleep 3; exit 0"#;
    let mut cli = start_ready(
        &out,
        &watched,
        &["--format", "json", "--exec", "sh", "-c", script],
    );
    common::touch(&watched, "slow");
    cli.expect(Out::Stdout, "for the slow one", |l| l.contains("\"slow\""));
    for i in 0..10_000 {
        let path = common::touch(&watched, format!("f{i}"));
        fs::remove_file(path).unwrap();
    }
    common::touch(&watched, "last");
    cli.expect(Out::Stdout, "for the last name", |l| l.contains("\"last\""));
    let events = cli.seen.iter().filter(|(o, _)| *o == Out::Stdout).count();
    assert_eq!(events, 20_003, "every event read while the hook was slow");
    assert!(
        !cli.seen.iter().any(|(_, l)| l.contains("overflow")),
        "the kernel queue never overflowed"
    );
}

#[test]
fn a_failing_hook_is_logged_and_the_watcher_goes_on() {
    let tmp = temp_dir();
    let mut cli = start_ready(
        tmp.path(),
        tmp.path(),
        &["--format", "ip", "--exec", "sh", "-c", "exit 3"],
    );
    common::touch(tmp.path(), "a");
    cli.expect(Out::Stderr, "with the exit status", |l| {
        l.contains("created a") && l.contains("status 3")
    });
    common::touch(tmp.path(), "b");
    cli.expect(Out::Stdout, "for the next event", |l| l == "add b");
}

#[test]
fn a_hung_hook_is_killed_with_its_process_group() {
    let tmp = temp_dir();
    let out = tmp.path().join("out");
    let watched = tmp.path().join("netns");
    fs::create_dir(&out).unwrap();
    fs::create_dir(&watched).unwrap();
    let script = r#"sleep 100 & echo $! > "$OUT/child"; echo $$ > "$OUT/shell"; wait"#;
    let script = format!("[ \"$NETNS_NAME\" = hang ] || exit 0; {script}");
    let mut cli = start_ready(
        &out,
        &watched,
        &["--hook-timeout", "0.5", "--exec", "sh", "-c", &script],
    );
    common::touch(&watched, "hang");
    cli.expect(Out::Stderr, "about the timeout", |l| l.contains("killing"));
    for file in ["child", "shell"] {
        let pid = fs::read_to_string(out.join(file))
            .unwrap()
            .trim()
            .to_owned();
        let gone = common::eventually(|| {
            fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
        });
        assert!(gone, "the hook's {file} (pid {pid}) survived the timeout");
    }
}

#[test]
fn shutdown_waits_for_running_hooks() {
    let tmp = temp_dir();
    let out = tmp.path().join("out");
    let watched = tmp.path().join("netns");
    fs::create_dir(&out).unwrap();
    fs::create_dir(&watched).unwrap();
    let script = r#"touch "$OUT/started"; sleep 1; touch "$OUT/finished""#;
    let script = format!("[ \"$NETNS_NAME\" = n ] || exit 0; {script}");
    let mut cli = start_ready(&out, &watched, &["--exec", "sh", "-c", &script]);
    common::touch(&watched, "n");
    assert!(common::eventually(|| out.join("started").exists()));
    cli.signal(Signal::TERM);
    assert_eq!(cli.wait_exit(), Some(0));
    assert!(
        out.join("finished").exists(),
        "netns-watch exited before its hook ended"
    );
}

#[test]
fn a_command_is_required_and_exec_conflicts_are_refused() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_netns-watch"))
            .args(args)
            .output()
            .unwrap()
    };
    let missing = run(&["watch", "--exec"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("need a command"));
    let stray = run(&["watch", "--", "true"]);
    assert_eq!(stray.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&stray.stderr).contains("needs --exec or --exec-in"));
}
