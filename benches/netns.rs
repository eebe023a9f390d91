//! Benchmarks of netns-watch, each figure beside a reference measured in
//! the same run (these machines are shared, so absolute times drift).
//!
//! `cargo bench --bench netns` (as root) runs all of them and prints a
//! table, then the same figures as JSON; `-- --quick` is a seconds-long
//! smoke run; `-- --json FILE` also writes the JSON to FILE.
//!
//! Everything happens in a private mount namespace with a fresh tmpfs on
//! `/run`, so no namespace of the machine is seen or touched.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netns_watch::{Config, Event, MountSource, NamespaceWatcher, Readiness};
use rustix::fs::inotify;

/// One measured figure and its reference.
#[derive(Debug, serde::Serialize)]
struct Row {
    id: &'static str,
    what: String,
    value: f64,
    unit: &'static str,
    reference: Option<(String, f64)>,
    goal: Option<String>,
    met: Option<bool>,
}

impl Row {
    fn new(id: &'static str, what: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Self {
            id,
            what: what.into(),
            value,
            unit,
            reference: None,
            goal: None,
            met: None,
        }
    }

    fn against(mut self, name: impl Into<String>, value: f64) -> Self {
        self.reference = Some((name.into(), value));
        self
    }

    fn goal(mut self, goal: impl Into<String>, met: bool) -> Self {
        self.goal = Some(goal.into());
        self.met = Some(met);
        self
    }
}

struct Scale {
    quick: bool,
    b1_rounds: usize,
    b2_files: usize,
    b3_namespaces: usize,
    b4_namespaces: usize,
    b5_idle: Duration,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let json_path = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1))
        .cloned();
    if !rustix::process::geteuid().is_root() {
        eprintln!("netns-watch benchmarks: run as root (they make network namespaces and mounts)");
        std::process::exit(1);
    }
    private_run();
    let scale = if quick {
        Scale {
            quick,
            b1_rounds: 3,
            b2_files: 10_000,
            b3_namespaces: 100,
            b4_namespaces: 200,
            b5_idle: Duration::from_secs(2),
        }
    } else {
        Scale {
            quick,
            b1_rounds: 30,
            b2_files: 20_000,
            b3_namespaces: 1000,
            b4_namespaces: 2000,
            b5_idle: Duration::from_secs(10),
        }
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    rows.extend(b1_throughput(&runtime, &scale));
    rows.extend(b2_loss(&runtime, &scale));
    rows.extend(b3_readiness(&runtime, &scale));
    rows.extend(b4_scale(&runtime, &scale));
    rows.extend(b5_idle(&scale));

    print_table(&rows);
    let json = serde_json::to_string_pretty(&rows).unwrap();
    println!("{json}");
    if let Some(path) = json_path {
        std::fs::write(&path, json + "\n").unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
    if scale.quick {
        eprintln!("(quick run: figures are for a smoke check, not for comparison)");
    }
}

/// A private mount namespace with an empty tmpfs on /run, for this process
/// and everything it starts.
fn private_run() {
    use rustix::mount::{mount, mount_change, MountFlags, MountPropagationFlags};
    // SAFETY: called before any other thread exists.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .expect("unshare(CLONE_NEWNS)");
    mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .expect("make / private");
    mount(
        "netns-bench",
        "/run",
        "tmpfs",
        MountFlags::empty(),
        c"mode=755",
    )
    .expect("tmpfs on /run");
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?} failed");
}

fn ip_batch(lines: impl Iterator<Item = String>) {
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("run ip -batch");
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success(), "ip -batch failed");
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new("/run").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Creates and deletes `files` files: 2 events each.
fn churn(dir: &Path, files: usize, tag: &str) {
    for i in 0..files {
        let path = dir.join(format!("{tag}{i}"));
        std::fs::File::create(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
    }
}

/// B1: events per second drained from a backlog, library vs a minimal raw
/// inotify reader, in rounds that stay under the kernel queue's size.
fn b1_throughput(runtime: &tokio::runtime::Runtime, scale: &Scale) -> Vec<Row> {
    const FILES: usize = 8000; // 16,000 events per round, under 16,384
    let dir = fresh_dir("b1");

    // The library, immediate mode (every file is an event).
    let (lib_time, lib_cpu, lib_events) = runtime.block_on(async {
        let config = Config::with_dirs([&dir]).readiness(Readiness::Immediate);
        let mut w = NamespaceWatcher::with_config(config).await.unwrap();
        let (mut time, mut cpu, mut events) = (Duration::ZERO, Duration::ZERO, 0usize);
        for round in 0..scale.b1_rounds {
            churn(&dir, FILES, &format!("l{round}-"));
            let (start, cpu0) = (Instant::now(), thread_cpu());
            for _ in 0..2 * FILES {
                w.recv().await.unwrap().unwrap();
            }
            time += start.elapsed();
            cpu += thread_cpu() - cpu0;
            events += 2 * FILES;
        }
        (time, cpu, events)
    });

    // The reference: read(2) and parse, nothing else.
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC).unwrap();
    let mask = inotify::WatchFlags::CREATE
        | inotify::WatchFlags::DELETE
        | inotify::WatchFlags::MOVED_FROM
        | inotify::WatchFlags::MOVED_TO;
    inotify::add_watch(&fd, &dir, mask).unwrap();
    let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
    let (mut raw_time, mut raw_cpu, mut raw_events) = (Duration::ZERO, Duration::ZERO, 0usize);
    for round in 0..scale.b1_rounds {
        churn(&dir, FILES, &format!("r{round}-"));
        let (start, cpu0) = (Instant::now(), thread_cpu());
        let mut seen = 0;
        let mut reader = inotify::Reader::new(&fd, &mut buf);
        while seen < 2 * FILES {
            let event = reader.next().unwrap();
            std::hint::black_box(event.file_name());
            seen += 1;
        }
        raw_time += start.elapsed();
        raw_cpu += thread_cpu() - cpu0;
        raw_events += seen;
    }

    let lib_rate = lib_events as f64 / lib_time.as_secs_f64();
    let raw_rate = raw_events as f64 / raw_time.as_secs_f64();
    let ratio = lib_rate / raw_rate;
    vec![
        Row::new(
            "B1",
            "events/s drained (library, immediate mode)",
            lib_rate,
            "events/s",
        )
        .against("raw inotify reader", raw_rate)
        .goal(">= 0.8 x raw reader", ratio >= 0.8),
        Row::new(
            "B1",
            "CPU time per event (library)",
            lib_cpu.as_nanos() as f64 / lib_events as f64,
            "ns",
        )
        .against(
            "raw inotify reader",
            raw_cpu.as_nanos() as f64 / raw_events as f64,
        ),
    ]
}

/// B2: a paused consumer and 40,000 events (20,000 with --quick): what
/// each consumer's final view misses of the directory's real content.
fn b2_loss(runtime: &tokio::runtime::Runtime, scale: &Scale) -> Vec<Row> {
    let dir = fresh_dir("netns");
    let n = scale.b2_files;

    // ip netns monitor, stopped while the events happen.
    let mut monitor = Command::new("ip")
        .args(["netns", "monitor"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("ip netns monitor");
    let monitor_lines = read_lines(&mut monitor);
    std::thread::sleep(Duration::from_millis(300));
    signal(&monitor, rustix::process::Signal::STOP);

    // A raw inotify reader that does not read until the end.
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).unwrap();
    let mask = inotify::WatchFlags::CREATE | inotify::WatchFlags::DELETE;
    inotify::add_watch(&fd, &dir, mask).unwrap();

    let (lib_missed, lib_overflows) = runtime.block_on(async {
        let mut w = NamespaceWatcher::with_config(
            Config::with_dirs([&dir]).readiness(Readiness::Immediate),
        )
        .await
        .unwrap();
        // n creations, n/2 deletions, n/2 more creations: 2n events.
        for i in 0..n {
            std::fs::File::create(dir.join(format!("f{i}"))).unwrap();
        }
        for i in 0..n / 2 {
            std::fs::remove_file(dir.join(format!("f{i}"))).unwrap();
        }
        for i in 0..n / 2 {
            std::fs::File::create(dir.join(format!("g{i}"))).unwrap();
        }
        let mut overflows = 0;
        loop {
            match tokio::time::timeout(Duration::from_millis(500), w.recv()).await {
                Ok(Ok(Some(Event::Overflow))) => overflows += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let view: BTreeSet<OsString> = w.namespaces().into_iter().map(|ns| ns.name).collect();
        (missed(&view, &real(&dir)), overflows)
    });

    // The raw reader replays what it got.
    let mut raw_view = BTreeSet::new();
    let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
    let mut reader = inotify::Reader::new(&fd, &mut buf);
    while let Ok(event) = reader.next() {
        let Some(name) = event.file_name() else {
            continue;
        };
        let name = OsString::from_vec(name.to_bytes().to_vec());
        if event.events().contains(inotify::ReadFlags::CREATE) {
            raw_view.insert(name);
        } else if event.events().contains(inotify::ReadFlags::DELETE) {
            raw_view.remove(&name);
        }
    }

    signal(&monitor, rustix::process::Signal::CONT);
    std::thread::sleep(Duration::from_millis(1000));
    let _ = monitor.kill();
    let _ = monitor.wait();
    let mut monitor_view = BTreeSet::new();
    for (_, line) in monitor_lines.lock().unwrap().iter() {
        if let Some(name) = line.strip_prefix("add ") {
            monitor_view.insert(OsString::from(name));
        } else if let Some(name) = line.strip_prefix("delete ") {
            monitor_view.remove(&OsString::from(name));
        }
    }
    let real = real(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    vec![
        Row::new(
            "B2",
            format!(
                "entries the final view misses after {} events, consumer paused",
                2 * n
            ),
            lib_missed as f64,
            "entries",
        )
        .against("raw inotify reader", missed(&raw_view, &real) as f64)
        .goal("0", lib_missed == 0),
        Row::new(
            "B2",
            "same, ip netns monitor (stopped)",
            missed(&monitor_view, &real) as f64,
            "entries",
        ),
        Row::new(
            "B2",
            "overflow records reported in-band (library)",
            lib_overflows as f64,
            "records",
        ),
    ]
}

/// Entries that differ between a view and the real content.
fn missed(view: &BTreeSet<OsString>, real: &BTreeSet<OsString>) -> usize {
    view.symmetric_difference(real).count()
}

fn real(dir: &Path) -> BTreeSet<OsString> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect()
}

fn signal(child: &Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

/// Collects a child's stdout lines with the time each was read.
fn read_lines(child: &mut Child) -> Arc<Mutex<Vec<(Instant, String)>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push((Instant::now(), line));
        }
    });
    lines
}

/// Whether `path` is a mounted namespace right now (`statfs` says nsfs).
fn is_mounted_namespace(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|fs| u64::try_from(fs.f_type).ok() == Some(0x6e73_6673))
}

/// Like [`read_lines`], also noting each `add NAME` line whose namespace was
/// not mounted yet when the line was read.
fn read_lines_checking(
    child: &mut Child,
    dir: PathBuf,
    unusable: Arc<Mutex<Vec<String>>>,
) -> Arc<Mutex<Vec<(Instant, String)>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(name) = line.strip_prefix("add ") {
                if !is_mounted_namespace(&dir.join(name)) {
                    unusable.lock().unwrap().push(name.to_owned());
                }
            }
            sink.lock().unwrap().push((Instant::now(), line));
        }
    });
    lines
}

/// A minimal fanotify mount listener: when each mount at `dir/NAME` was
/// announced by the kernel, independent of the watcher under test.
fn mount_clock(dir: PathBuf) -> Arc<Mutex<HashMap<OsString, Instant>>> {
    let times = Arc::new(Mutex::new(HashMap::new()));
    let sink = Arc::clone(&times);
    // SAFETY: plain system calls with integer arguments and valid pointers.
    let fd = unsafe {
        libc::fanotify_init(0x4000 /* FAN_REPORT_MNT */ | 1 /* FAN_CLOEXEC */, 0)
    };
    assert!(
        fd >= 0,
        "fanotify_init: {}",
        std::io::Error::last_os_error()
    );
    let ns = std::fs::File::open("/proc/self/ns/mnt").unwrap();
    let marked = unsafe {
        libc::fanotify_mark(
            fd,
            0x1 | 0x110,
            0x0100_0000,
            std::os::fd::AsRawFd::as_raw_fd(&ns),
            std::ptr::null(),
        )
    };
    assert!(
        marked == 0,
        "fanotify_mark: {}",
        std::io::Error::last_os_error()
    );
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return;
            }
            let now = Instant::now();
            let mut at = 0;
            while at + 24 <= n as usize {
                let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
                let meta = u16::from_ne_bytes(buf[at + 6..at + 8].try_into().unwrap()) as usize;
                if len < 24 || at + len > n as usize {
                    break;
                }
                if len >= meta + 16 {
                    let id =
                        u64::from_ne_bytes(buf[at + meta + 8..at + meta + 16].try_into().unwrap());
                    if let Some(point) = statmount_point(id) {
                        if point.parent() == Some(dir.as_path()) {
                            sink.lock()
                                .unwrap()
                                .entry(point.file_name().unwrap().to_os_string())
                                .or_insert(now);
                        }
                    }
                }
                at += len;
            }
        }
    });
    times
}

fn statmount_point(id: u64) -> Option<PathBuf> {
    let mut req = [0u8; 24];
    req[0..4].copy_from_slice(&24u32.to_ne_bytes());
    req[8..16].copy_from_slice(&id.to_ne_bytes());
    req[16..24].copy_from_slice(&0x10u64.to_ne_bytes());
    let mut buf = vec![0u64; 1024];
    let ret = unsafe { libc::syscall(457, req.as_ptr(), buf.as_mut_ptr(), buf.len() * 8, 0) };
    if ret != 0 {
        return None;
    }
    let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), buf.len() * 8) };
    let offset = u32::from_ne_bytes(bytes[108..112].try_into().ok()?) as usize;
    let text = &bytes[512 + offset..];
    let end = text.iter().position(|b| *b == 0)?;
    Some(PathBuf::from(OsString::from_vec(text[..end].to_vec())))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// B3: from each mount (the kernel's mount notification, read by a
/// listener of its own) to the watcher's `Created`, per mount source; and
/// how many reports came before the namespace was mounted.
fn b3_readiness(runtime: &tokio::runtime::Runtime, scale: &Scale) -> Vec<Row> {
    let mut rows = Vec::new();
    let dir = PathBuf::from("/run/netns");
    for source in MountSource::ALL {
        ip(&["netns", "add", "bench-setup"]);
        ip(&["netns", "del", "bench-setup"]);
        let clock = mount_clock(dir.clone());
        // Line-buffered, as on a terminal: piped, ip would hold lines back.
        let mut monitor = Command::new("stdbuf")
            .args(["-oL", "ip", "netns", "monitor"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("stdbuf -oL ip netns monitor");
        let monitor_unusable = Arc::new(Mutex::new(Vec::new()));
        let monitor_lines =
            read_lines_checking(&mut monitor, dir.clone(), Arc::clone(&monitor_unusable));
        std::thread::sleep(Duration::from_millis(300));

        let n = scale.b3_namespaces;
        let (created, unusable): (HashMap<OsString, Instant>, usize) = runtime.block_on(async {
            let config = Config::with_dirs([&dir]).mount_source(source);
            let mut w = NamespaceWatcher::with_config(config).await.unwrap();
            let adder =
                std::thread::spawn(move || ip_batch((0..n).map(|i| format!("netns add b3-{i}"))));
            let mut created = HashMap::new();
            let mut unusable = 0;
            while created.len() < n {
                match tokio::time::timeout(Duration::from_secs(30), w.recv()).await {
                    Ok(Ok(Some(Event::Created(ns)))) => {
                        let at = Instant::now();
                        // Usable at the moment it is reported?
                        if !is_mounted_namespace(&ns.path()) {
                            unusable += 1;
                        }
                        created.entry(ns.name).or_insert(at);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            adder.join().unwrap();
            (created, unusable)
        });
        std::thread::sleep(Duration::from_millis(300));
        let _ = monitor.kill();
        let _ = monitor.wait();
        let mounted = clock.lock().unwrap().clone();

        // The listener wakes up a little after the kernel queued the
        // event, so a watcher that is quicker shows a small negative time.
        let mut latencies: Vec<f64> = Vec::new();
        for (name, at) in &created {
            if let Some(m) = mounted.get(name) {
                latencies.push(if at < m {
                    -(m.duration_since(*at).as_secs_f64() * 1e3)
                } else {
                    at.duration_since(*m).as_secs_f64() * 1e3
                });
            }
        }
        latencies.sort_by(f64::total_cmp);
        let lines = monitor_lines.lock().unwrap();
        let monitor_total = lines.iter().filter(|(_, l)| l.starts_with("add ")).count();
        let monitor_early = monitor_unusable.lock().unwrap().len();
        drop(lines);
        let early = unusable;
        let p99 = percentile(&latencies, 0.99);
        let mut p99_row = Row::new(
            "B3",
            format!(
                "{source}: mount to Created, p99 ({} namespaces)",
                created.len()
            ),
            p99,
            "ms",
        );
        if source == MountSource::Fanotify {
            p99_row = p99_row.goal("< 1 ms", p99 < 1.0);
        }
        rows.push(Row::new(
            "B3",
            format!("{source}: mount to Created, p50"),
            percentile(&latencies, 0.5),
            "ms",
        ));
        rows.push(p99_row);
        rows.push(Row::new(
            "B3",
            format!("{source}: mount to Created, max"),
            latencies.last().copied().unwrap_or(f64::NAN),
            "ms",
        ));
        let share = early as f64 / created.len().max(1) as f64;
        rows.push(
            Row::new(
                "B3",
                format!("{source}: share reported while not yet usable"),
                share,
                "share",
            )
            .against(
                "ip netns monitor",
                monitor_early as f64 / monitor_total.max(1) as f64,
            )
            .goal("0", early == 0),
        );
        rows.push(
            Row::new(
                "B3",
                format!("{source}: namespaces reported / made"),
                created.len() as f64 / n as f64,
                "share",
            )
            .goal("1", created.len() == n),
        );
        ip(&["-all", "netns", "delete"]);
    }
    rows
}

/// B4: with many namespaces present, start-and-list time, the cost of a
/// full rescan, and the CLI's peak memory.
fn b4_scale(runtime: &tokio::runtime::Runtime, scale: &Scale) -> Vec<Row> {
    let n = scale.b4_namespaces;
    ip_batch((0..n).map(|i| format!("netns add b4-{i}")));
    let dir = PathBuf::from("/run/netns");

    let (start_list, listed) = runtime.block_on(async {
        let t = Instant::now();
        let (list, _w) = NamespaceWatcher::list_and_watch_with_config(Config::with_dirs([&dir]))
            .await
            .unwrap();
        (t.elapsed(), list.len())
    });
    let t = Instant::now();
    let rescanned = NamespaceWatcher::list_dir(&dir).unwrap().len();
    let rescan = t.elapsed();
    let t = Instant::now();
    let ip_listed = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap()
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let ip_list = t.elapsed();
    assert_eq!((listed, rescanned), (n, n));
    assert_eq!(ip_listed, n);

    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/netns-watch");
    let bin = if bin.exists() {
        bin
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debug/netns-watch")
    };
    let rss = peak_rss_after_lines(
        Command::new(&bin).args([
            "watch",
            "--initial",
            "--format",
            "json",
            "--dir",
            "/run/netns",
        ]),
        n,
    );
    let monitor_rss = peak_rss_after_lines(Command::new("ip").args(["netns", "monitor"]), 0);
    ip(&["-all", "netns", "delete"]);
    vec![
        Row::new(
            "B4",
            format!("start and list {n} namespaces (library)"),
            start_list.as_secs_f64() * 1e3,
            "ms",
        )
        .against("ip netns list (process)", ip_list.as_secs_f64() * 1e3),
        Row::new(
            "B4",
            format!("one full rescan of {n} namespaces (list and check each)"),
            rescan.as_secs_f64() * 1e3,
            "ms",
        ),
        Row::new(
            "B4",
            format!("CLI peak RSS, watch --initial with {n} namespaces"),
            rss as f64 / 1024.0,
            "MiB",
        )
        .against("ip netns monitor", monitor_rss as f64 / 1024.0)
        .goal("< 16 MiB", rss < 16 * 1024),
    ]
}

/// Starts `command`, waits for `lines` lines of output (or a moment), and
/// returns its peak resident memory in KiB.
fn peak_rss_after_lines(command: &mut Command, lines: usize) -> u64 {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let got = read_lines(&mut child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.lock().unwrap().len() < lines && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    field_kib(&status, "VmHWM:")
}

fn field_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// B5: CPU time and wake-ups (context switches) of idle watchers, all at
/// once over the same window, beside `ip netns monitor`.
fn b5_idle(scale: &Scale) -> Vec<Row> {
    ip(&["netns", "add", "b5-present"]);
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/netns-watch");
    let bin = if bin.exists() {
        bin
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debug/netns-watch")
    };
    let modes: [(&str, Vec<&str>); 4] = [
        ("fanotify", vec!["--mount-source", "fanotify"]),
        ("mountinfo", vec!["--mount-source", "mountinfo"]),
        ("poll", vec!["--mount-source", "poll"]),
        ("immediate", vec!["--immediate"]),
    ];
    let mut children: Vec<(String, Child)> = modes
        .iter()
        .map(|(name, extra)| {
            let child = Command::new(&bin)
                .args(["watch", "--dir", "/run/netns"])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            (name.to_string(), child)
        })
        .collect();
    children.push((
        "ip netns monitor".into(),
        Command::new("ip")
            .args(["netns", "monitor"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    std::thread::sleep(Duration::from_millis(500));
    let before: Vec<(u64, u64)> = children.iter().map(|(_, c)| usage(c.id())).collect();
    std::thread::sleep(scale.b5_idle);
    let after: Vec<(u64, u64)> = children.iter().map(|(_, c)| usage(c.id())).collect();
    let reference = after[4].1 - before[4].1;
    let mut rows = Vec::new();
    for (i, (name, child)) in children.iter_mut().enumerate() {
        let (cpu, wakeups) = (after[i].0 - before[i].0, after[i].1 - before[i].1);
        if i < 4 {
            let mut row = Row::new(
                "B5",
                format!(
                    "{name}: wake-ups in {:?} idle (CPU {} ms)",
                    scale.b5_idle,
                    cpu * 10
                ),
                wakeups as f64,
                "wake-ups",
            )
            .against("ip netns monitor", reference as f64);
            if name == "fanotify" || name == "mountinfo" {
                row = row.goal("0", wakeups == 0);
            }
            rows.push(row);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    ip(&["netns", "del", "b5-present"]);
    rows
}

/// (CPU time in clock ticks, context switches) of process `pid`.
fn usage(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let switches = field_kib(&status, "voluntary_ctxt_switches:")
        + field_kib(&status, "nonvoluntary_ctxt_switches:");
    (ticks, switches)
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<4} {:<72} {:>14} {:<9} {:>26} {:>10}",
        "id", "measure", "value", "unit", "reference (same run)", "goal"
    );
    for row in rows {
        let reference = match &row.reference {
            Some((name, value)) => format!("{value:.3} ({name})"),
            None => String::new(),
        };
        let goal = match (&row.goal, row.met) {
            (Some(goal), Some(true)) => format!("{goal}: met"),
            (Some(goal), Some(false)) => format!("{goal}: MISSED"),
            _ => String::new(),
        };
        println!(
            "{:<4} {:<72} {:>14.3} {:<9} {:>26} {}",
            row.id, row.what, row.value, row.unit, reference, goal
        );
    }
}
