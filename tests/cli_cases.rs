//! The real-world cases through `netns-watch watch`, in each output format,
//! with real `ip netns` in a private mount namespace (see
//! `common::PrivateRun`). The library side of each case is in `cases.rs`
//! and `readiness.rs`. These tests need root.

mod common;

use std::process::Command;

use common::{ip, Out, PrivateRun, Running};

const FORMATS: [&str; 3] = ["text", "ip", "json"];

/// `+NAME` or `-NAME` for a line about a name, in `format`.
fn change(format: &str, line: &str) -> Option<String> {
    let (kind, name) = match format {
        "ip" => {
            let (kind, name) = line.split_once(' ')?;
            (
                if kind == "add" { "created" } else { "deleted" }.to_owned(),
                name.to_owned(),
            )
        }
        "text" => {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(1)?.to_string(), fields.get(2)?.to_string())
        }
        _ => {
            let record: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            (
                record["event"].as_str()?.to_owned(),
                record["name"].as_str()?.to_owned(),
            )
        }
    };
    match kind.as_str() {
        "created" | "present" => Some(format!("+{name}")),
        "deleted" => Some(format!("-{name}")),
        _ => None,
    }
}

/// A running `watch` in one format, and the changes it printed.
struct Watch {
    cli: Running,
    format: &'static str,
    sentinels: u32,
}

impl Watch {
    /// Starts `watch --format FORMAT -v --dir DIR`, and waits until it
    /// watches `DIR` (or waits for it to appear).
    fn start(format: &'static str, dir: &str) -> Self {
        Self::start_with(format, dir, &[])
    }

    /// Like [`Watch::start`], with more arguments for `watch`.
    fn start_with(format: &'static str, dir: &str, extra: &[&str]) -> Self {
        let mut args = vec!["-v", "watch", "--format", format, "--dir", dir];
        args.extend_from_slice(extra);
        let mut cli = Running::start(&[], &args, None);
        cli.expect(Out::Stderr, "saying it watches", |l| {
            l.contains(&format!("watching {dir}")) || l.contains(&format!("waiting for {dir}"))
        });
        Self {
            cli,
            format,
            sentinels: 0,
        }
    }

    /// The next change printed.
    fn next(&mut self) -> String {
        let format = self.format;
        let line = self
            .cli
            .expect(Out::Stdout, "about a name", |l| change(format, l).is_some());
        change(format, &line).unwrap()
    }

    /// Collects `count` changes.
    fn take(&mut self, count: usize) -> Vec<String> {
        (0..count).map(|_| self.next()).collect()
    }

    /// Adds and deletes a namespace of its own, returning every other change
    /// printed meanwhile: what a case printed beyond what was taken.
    fn rest(&mut self) -> Vec<String> {
        self.sentinels += 1;
        let name = format!("nwt-sentinel{}", self.sentinels);
        let mut others = Vec::new();
        for (step, mark) in [("add", '+'), ("del", '-')] {
            ip(&["netns", step, &name]);
            loop {
                let got = self.next();
                if got == format!("{mark}{name}") {
                    break;
                }
                others.push(got);
            }
        }
        others
    }
}

fn set_up_dir() {
    ip(&["netns", "add", "nwt-setup"]);
    ip(&["netns", "del", "nwt-setup"]);
}

fn sorted(mut changes: Vec<String>) -> Vec<String> {
    changes.sort();
    changes
}

#[test]
fn c01_burst_delete_cli() {
    let _run = PrivateRun::new();
    set_up_dir();
    for format in FORMATS {
        let mut w = Watch::start(format, "/var/run/netns");
        for i in 1..=5 {
            ip(&["netns", "add", &format!("nwt-bd{i}")]);
        }
        // The five are reported before the burst of deletions, which is
        // what the case is about (a process starved for longer than a
        // namespace lives may miss one: see "Guarantees" in README.md).
        let mut got = w.take(5);
        ip(&["-all", "netns", "delete"]);
        got.extend(w.take(5));
        for i in 1..=5 {
            let (add, del) = (format!("+nwt-bd{i}"), format!("-nwt-bd{i}"));
            let at = |c: &str| got.iter().position(|g| g == c);
            assert!(
                at(&add) < at(&del) && at(&add).is_some(),
                "{format}: {got:?}"
            );
        }
        assert_eq!(w.rest(), Vec::<String>::new(), "{format}: each name once");
    }
}

#[test]
fn c02_slow_mount_cli() {
    let _run = PrivateRun::new();
    set_up_dir();
    for format in FORMATS {
        let mut w = Watch::start(format, "/var/run/netns");
        let name = format!("nwt-slow-{format}");
        let slow = name.clone();
        let strace = std::thread::spawn(move || common::ip_add_injected(common::DELAY_BIND, &slow));
        assert_eq!(w.next(), format!("+{name}"), "{format}");
        // Reported only once usable.
        let exec = Command::new("ip")
            .args(["netns", "exec", &name, "true"])
            .status()
            .unwrap();
        assert!(
            exec.success(),
            "{format}: ip netns exec failed at the report"
        );
        assert!(strace.join().unwrap().status.success());
        assert_eq!(
            w.rest(),
            Vec::<String>::new(),
            "{format}: nothing for the placeholder"
        );
        ip(&["netns", "del", &name]);
        assert_eq!(w.next(), format!("-{name}"));
    }
}

#[test]
fn c03_failed_add_cli() {
    let _run = PrivateRun::new();
    set_up_dir();
    for format in FORMATS {
        let mut w = Watch::start(format, "/var/run/netns");
        let failed = common::ip_add_injected(common::FAIL_BIND, "nwt-ghost");
        assert!(
            !failed.status.success(),
            "the injected failure makes ip fail"
        );
        assert_eq!(w.rest(), Vec::<String>::new(), "{format}: nothing at all");
    }
}

#[test]
fn c04_stale_placeholder_at_start_cli() {
    let _run = PrivateRun::new();
    set_up_dir();
    for format in FORMATS {
        let name = format!("nwt-stale-{format}");
        let path = format!("/run/netns/{name}");
        std::fs::File::create(&path).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o000))
            .unwrap();
        let list = Command::new(env!("CARGO_BIN_EXE_netns-watch"))
            .args(["list", "--names"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&list.stdout),
            "",
            "{format}: list shows no placeholder"
        );

        let mut w = Watch::start_with(format, "/var/run/netns", &["--initial"]);
        std::fs::remove_file(&path).unwrap();
        ip(&["netns", "add", &name]);
        assert_eq!(
            w.next(),
            format!("+{name}"),
            "{format}: the initial listing had no placeholder"
        );
        assert_eq!(
            w.rest(),
            Vec::<String>::new(),
            "{format}: exactly one addition"
        );
        ip(&["netns", "del", &name]);
    }
}

#[test]
fn c05_many_at_once_first_time_cli() {
    for format in FORMATS {
        // Each format starts with no /run/netns at all.
        let format_run = std::thread::spawn(move || {
            let _run = PrivateRun::new();
            let mut w = Watch::start(format, "/var/run/netns");
            let children: Vec<_> = (0..10)
                .map(|i| {
                    Command::new("ip")
                        .args(["netns", "add", &format!("nwt-p{i}")])
                        .spawn()
                        .unwrap()
                })
                .collect();
            for mut child in children {
                assert!(child.wait().unwrap().success());
            }
            let got = sorted(w.take(10));
            let want = sorted((0..10).map(|i| format!("+nwt-p{i}")).collect());
            assert_eq!(got, want, "{format}");
            assert_eq!(w.rest(), Vec::<String>::new(), "{format}: each once");
        });
        format_run
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
    }
}

#[test]
fn c09_var_run_and_run_cli() {
    let _run = PrivateRun::new();
    set_up_dir();
    for format in FORMATS {
        let mut via_var = Watch::start(format, "/var/run/netns");
        let mut via_run = Watch::start(format, "/run/netns");
        ip(&["netns", "add", "nwt-a"]);
        ip(&["netns", "add", "nwt-b"]);
        let added = ["+nwt-a", "+nwt-b"].map(String::from).to_vec();
        assert_eq!(sorted(via_var.take(2)), added, "{format} /var/run/netns");
        assert_eq!(sorted(via_run.take(2)), added, "{format} /run/netns");
        ip(&["netns", "del", "nwt-a"]);
        assert_eq!(via_var.next(), "-nwt-a", "{format} /var/run/netns");
        assert_eq!(via_run.next(), "-nwt-a", "{format} /run/netns");
        ip(&["netns", "del", "nwt-b"]);
        assert_eq!(via_var.next(), "-nwt-b");
        assert_eq!(via_run.next(), "-nwt-b");
    }
}

#[test]
fn c10_removed_when_unmounted_cli() {
    let _run = PrivateRun::new();
    set_up_dir();
    for format in FORMATS {
        let mut w = Watch::start(format, "/var/run/netns");
        let name = format!("nwt-um-{format}");
        ip(&["netns", "add", &name]);
        assert_eq!(w.next(), format!("+{name}"));
        let path = format!("/run/netns/{name}");
        common::run("umount", &[std::ffi::OsStr::new(&path)]);
        assert_eq!(
            w.next(),
            format!("-{name}"),
            "{format}: removed at the unmount"
        );
        assert!(
            std::path::Path::new(&path).exists(),
            "the file is still there"
        );
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            w.rest(),
            Vec::<String>::new(),
            "{format}: nothing when the placeholder goes"
        );
    }
}

#[test]
fn c07_exact_names_cli() {
    let _run = PrivateRun::new();
    set_up_dir();
    ip(&["netns", "add", "nwt-mario2"]);
    let wait = Command::new(env!("CARGO_BIN_EXE_netns-watch"))
        .args(["wait", "nwt-mario", "--timeout", "1"])
        .output()
        .unwrap();
    assert_eq!(
        wait.status.code(),
        Some(124),
        "timed out, and the status says so"
    );
    for format in FORMATS {
        let mut w = Watch::start_with(format, "/var/run/netns", &["--match", "nwt-mario"]);
        let name = format!("nwt-mario{format}");
        ip(&["netns", "add", &name]);
        ip(&["netns", "add", "nwt-mario"]);
        // Neither `nwt-mario2` nor the one just added before matches.
        assert_eq!(w.next(), "+nwt-mario", "{format}");
        ip(&["netns", "del", "nwt-mario"]);
        assert_eq!(w.next(), "-nwt-mario", "{format}");
        ip(&["netns", "del", &name]);
    }
}
