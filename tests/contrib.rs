//! The service example in `contrib/`, run as its unit file says. Needs
//! root (see `common::PrivateRun`).

mod common;

use std::path::Path;

use common::{ip, Out, PrivateRun, Running};
use rustix::process::Signal;

/// The words of the unit's `ExecStart=`, with the installed paths mapped to
/// this build and this checkout.
fn exec_start() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("contrib/netns-watch-sysctl.service")).unwrap();
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart= line");
    line.split_whitespace()
        .map(|word| match word {
            "/usr/local/bin/netns-watch" => env!("CARGO_BIN_EXE_netns-watch").to_owned(),
            "/usr/local/lib/netns-watch/netns-sysctl" => {
                root.join("contrib/netns-sysctl").display().to_string()
            }
            other => other.to_owned(),
        })
        .collect()
}

fn forwarding_in(name: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", name, "sysctl", "-n", "net.ipv4.ip_forward"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_sysctl_service_applies_settings_in_every_namespace() {
    let _run = PrivateRun::new();
    let conf = common::temp_dir();
    let conf_file = conf.path().join("sysctl.conf");
    std::fs::write(&conf_file, "net.ipv4.ip_forward = 1\n").unwrap();
    // One namespace before the service starts, one after.
    ip(&["netns", "add", "nwt-before"]);
    assert_eq!(forwarding_in("nwt-before"), "0");

    let words = exec_start();
    assert_eq!(
        words[0],
        env!("CARGO_BIN_EXE_netns-watch"),
        "the unit runs netns-watch"
    );
    let conf_env = format!("NETNS_SYSCTL_CONF={}", conf_file.display());
    // `-v` first: `--exec-in` takes the rest of the command line.
    let args: Vec<&str> = ["-v"]
        .into_iter()
        .chain(words[1..].iter().map(String::as_str))
        .collect();
    let mut service = Running::start(&["env", &conf_env], &args, None);
    service.expect(Out::Stderr, "saying it watches", |l| {
        l.contains("watching /var/run/netns")
    });

    ip(&["netns", "add", "nwt-after"]);
    for name in ["nwt-before", "nwt-after"] {
        let applied = common::eventually(|| forwarding_in(name) == "1");
        assert!(applied, "forwarding not turned on in {name}");
    }
    service.signal(Signal::TERM);
    assert_eq!(service.wait_exit(), Some(0));
}
