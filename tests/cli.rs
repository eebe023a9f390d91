//! The `netns-watch` binary, run for real on temporary directories: plain
//! files stand in for namespaces (with `--immediate`, where every file
//! counts), so no privileges are needed. What is tested is what a script
//! sees: the lines on stdout, the messages on stderr and the exit status.

mod common;

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{real_names, temp_dir, touch, PATIENCE};
use rustix::process::{kill_process, Pid, Signal};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_netns-watch");

/// How long to wait for a probe file's line before making another one.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// How often a running process is checked while waiting for it to exit or
/// stop.
const POLL: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// A running `netns-watch`, its stdout read line by line on a thread and its
/// stderr collected on another. Dropping it kills the process (by its PID)
/// and reaps it, so a failing test leaves nothing running.
struct Running {
    child: Child,
    lines: Receiver<Vec<u8>>,
    /// How many lines were taken from `lines`.
    received: usize,
    /// The stdout thread stops, closing the read end, once it has sent this
    /// many lines.
    close_after: Arc<AtomicUsize>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    /// The command line, for failure messages.
    what: String,
}

impl Running {
    fn spawn(args: &[&OsStr]) -> Self {
        let what = format!(
            "netns-watch {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mut child = Command::new(BIN)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");

        let (tx, lines) = mpsc::channel();
        let close_after = Arc::new(AtomicUsize::new(usize::MAX));
        let limit = Arc::clone(&close_after);
        thread::spawn(move || {
            let mut out = BufReader::new(stdout);
            let mut sent = 0;
            loop {
                let mut line = Vec::new();
                match out.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if tx.send(line).is_err() {
                    break;
                }
                sent += 1;
                if sent >= limit.load(Ordering::SeqCst) {
                    break;
                }
            }
            // The read end closes before the channel says so.
            drop(out);
            drop(tx);
        });
        let stderr = thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stderr.read_to_end(&mut all);
            all
        });
        Self {
            child,
            lines,
            received: 0,
            close_after,
            stderr: Some(stderr),
            what,
        }
    }

    /// Starts `netns-watch watch --dir DIR --immediate ARGS...`: in
    /// immediate mode every plain file counts as a namespace.
    fn watch(dir: &Path, args: &[&str]) -> Self {
        Self::watch_with(&[], dir, args)
    }

    fn watch_with(global: &[&str], dir: &Path, args: &[&str]) -> Self {
        let mut all: Vec<&OsStr> = global.iter().map(OsStr::new).collect();
        all.extend([
            OsStr::new("watch"),
            OsStr::new("--dir"),
            dir.as_os_str(),
            OsStr::new("--immediate"),
        ]);
        all.extend(args.iter().map(OsStr::new));
        Self::spawn(&all)
    }

    fn pid(&self) -> Pid {
        let raw = i32::try_from(self.child.id()).expect("a PID fits in i32");
        Pid::from_raw(raw).expect("a child's PID is positive")
    }

    fn signal(&self, signal: Signal) {
        kill_process(self.pid(), signal)
            .unwrap_or_else(|e| panic!("cannot signal {}: {e}", self.what));
    }

    /// The next line of stdout, without its newline, or `None` if none
    /// comes within `timeout`. Fails the test if stdout ends.
    fn line_within(&mut self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(mut bytes) => {
                self.received += 1;
                assert_eq!(
                    bytes.pop(),
                    Some(b'\n'),
                    "{}: last output line is unterminated: {:?}",
                    self.what,
                    String::from_utf8_lossy(&bytes)
                );
                Some(
                    String::from_utf8(bytes)
                        .unwrap_or_else(|e| panic!("{}: output line is not UTF-8: {e}", self.what)),
                )
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.try_wait().ok().flatten();
                panic!(
                    "{}: stdout ended while a line was expected (exit status: {status:?})",
                    self.what
                )
            }
        }
    }

    /// The next line of stdout; fails the test after [`PATIENCE`].
    fn expect_line(&mut self) -> String {
        self.line_within(PATIENCE).unwrap_or_else(|| {
            panic!(
                "{}: no output line within {PATIENCE:?} (is it stuck, or was an event lost?)",
                self.what
            )
        })
    }

    /// Waits until the watcher is surely watching `dir`: creates probe
    /// files until one is reported, then deletes them all, consuming every
    /// line they cause. `dir` is left as it was.
    ///
    /// A probe reported created was made after the watcher's first listing,
    /// so every later probe is reported too, and no earlier one: the lines
    /// that follow are known exactly.
    fn wait_ready(&mut self, dir: &Path, format: Format) {
        let deadline = Instant::now() + PATIENCE;
        let mut probes: Vec<String> = Vec::new();
        let first = loop {
            assert!(
                Instant::now() < deadline,
                "{}: none of {} probe files was reported within {PATIENCE:?}",
                self.what,
                probes.len()
            );
            let name = format!(".probe-{:04}", probes.len());
            touch(dir, &name);
            probes.push(name);
            if let Some(line) = self.line_within(PROBE_INTERVAL) {
                break line;
            }
        };
        let (kind, name) = format.parse(&first);
        assert_eq!(
            kind,
            format.created(),
            "first line while probing: {first:?}"
        );
        let reported = probes
            .iter()
            .position(|p| *p == name)
            .unwrap_or_else(|| panic!("first line while probing names no probe: {first:?}"));
        for probe in &probes[reported + 1..] {
            let line = self.expect_line();
            assert_eq!(
                format.parse(&line),
                (format.created().to_owned(), probe.clone()),
                "line: {line:?}"
            );
        }
        for probe in &probes {
            std::fs::remove_file(dir.join(probe)).unwrap();
            let line = self.expect_line();
            assert_eq!(
                format.parse(&line),
                (format.deleted().to_owned(), probe.clone()),
                "line: {line:?}"
            );
        }
    }

    /// Makes the stdout thread close the read end of the pipe once it has
    /// passed on one more line than the test has taken so far.
    fn close_stdout_after_next_line(&self) {
        self.close_after.store(self.received + 1, Ordering::SeqCst);
    }

    /// Waits until the stdout thread has closed the read end; fails if a
    /// line comes first or nothing happens within [`PATIENCE`].
    fn expect_stdout_closed(&mut self) {
        match self.lines.recv_timeout(PATIENCE) {
            Err(RecvTimeoutError::Disconnected) => {}
            Ok(line) => panic!(
                "{}: unexpected line {:?}",
                self.what,
                String::from_utf8_lossy(&line)
            ),
            Err(RecvTimeoutError::Timeout) => panic!(
                "{}: stdout reader did not stop within {PATIENCE:?}",
                self.what
            ),
        }
    }

    /// The exit status, if the process exited within `timeout`.
    fn exit_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("waitpid") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL);
        }
    }

    /// The exit status; fails the test if it takes more than [`PATIENCE`].
    fn expect_exit(&mut self) -> ExitStatus {
        self.exit_within(PATIENCE).unwrap_or_else(|| {
            panic!(
                "{}: still running {PATIENCE:?} after it should have exited",
                self.what
            )
        })
    }

    /// Everything the process wrote to stdout until it closed it, as
    /// lines; fails the test after [`PATIENCE`].
    fn rest_of_stdout(&mut self) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(mut bytes) => {
                    self.received += 1;
                    assert_eq!(bytes.pop(), Some(b'\n'), "unterminated line");
                    lines.push(String::from_utf8(bytes).expect("output is UTF-8"));
                }
                Err(RecvTimeoutError::Disconnected) => return lines,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: stdout still open after {PATIENCE:?}", self.what)
                }
            }
        }
    }

    /// Everything the process wrote to stderr; call after it exited.
    fn stderr(&mut self) -> String {
        let handle = self.stderr.take().expect("stderr is read once");
        let deadline = Instant::now() + PATIENCE;
        while !handle.is_finished() {
            assert!(
                Instant::now() < deadline,
                "{}: stderr still open after {PATIENCE:?}",
                self.what
            );
            thread::sleep(POLL);
        }
        let bytes = handle.join().expect("stderr reader panicked");
        String::from_utf8(bytes).expect("stderr is UTF-8")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A process already reaped has no PID any more; never signal it.
        if let Ok(None) = self.child.try_wait() {
            let _ = kill_process(self.pid(), Signal::KILL);
            let _ = self.child.wait();
        }
    }
}

/// A finished run: exit status, stdout lines and stderr.
struct Finished {
    status: ExitStatus,
    stdout: Vec<String>,
    stderr: String,
}

/// Runs `netns-watch ARGS...` to its end, failing the test if it takes more
/// than [`PATIENCE`].
fn run(args: &[&OsStr]) -> Finished {
    let mut running = Running::spawn(args);
    let stdout = running.rest_of_stdout();
    let status = running.expect_exit();
    let stderr = running.stderr();
    Finished {
        status,
        stdout,
        stderr,
    }
}

/// The output formats of `watch`, and how to read one line of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Ip,
    Json,
}

const FORMATS: [Format; 3] = [Format::Text, Format::Ip, Format::Json];

impl Format {
    fn arg(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Ip => "ip",
            Format::Json => "json",
        }
    }

    fn args(self) -> [&'static str; 2] {
        ["--format", self.arg()]
    }

    fn created(self) -> &'static str {
        match self {
            Format::Ip => "add",
            Format::Text | Format::Json => "created",
        }
    }

    fn deleted(self) -> &'static str {
        match self {
            Format::Ip => "delete",
            Format::Text | Format::Json => "deleted",
        }
    }

    /// The event word and the name of a line about a name: escaped in
    /// text and ip, the JSON string in JSON.
    fn parse(self, line: &str) -> (String, String) {
        match self {
            Format::Text => {
                let fields = text_fields(line);
                (fields[1].to_owned(), fields[2].to_owned())
            }
            Format::Ip => {
                let (kind, name) = line
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("ip line without a space: {line:?}"));
                assert!(!name.contains(' '), "ip line with two spaces: {line:?}");
                (kind.to_owned(), name.to_owned())
            }
            Format::Json => {
                let record = json(line);
                (str_field(&record, "event"), str_field(&record, "name"))
            }
        }
    }
}

/// The four fields of a text line about a name: time, event, name, dir.
fn text_fields(line: &str) -> Vec<&str> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.len(), 4, "text line without 4 fields: {line:?}");
    assert_timestamp(fields[0], 3);
    fields
}

fn json(line: &str) -> Value {
    let value: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
    assert!(value.is_object(), "not a JSON object: {line:?}");
    value
}

fn str_field(record: &Value, key: &str) -> String {
    record
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string field {key:?} in {record}"))
        .to_owned()
}

/// Decodes lowercase hexadecimal, failing the test on anything else.
fn unhex(hex: &str) -> Vec<u8> {
    assert!(
        hex.len().is_multiple_of(2) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "not lowercase hexadecimal: {hex:?}"
    );
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// Asserts `time` is `YYYY-MM-DDTHH:MM:SS.F...Z` with `digits` fraction
/// digits (RFC 3339 in UTC).
fn assert_timestamp(time: &str, digits: usize) {
    let pattern = format!("dddd-dd-ddTdd:dd:dd.{}Z", "d".repeat(digits));
    let ok = time.len() == pattern.len()
        && time.chars().zip(pattern.chars()).all(|(c, p)| {
            if p == 'd' {
                c.is_ascii_digit()
            } else {
                c == p
            }
        });
    assert!(
        ok,
        "not an RFC 3339 UTC time with {digits} fraction digits: {time:?}"
    );
}

/// The path as a string, asserting that the CLI's escaping leaves it as it
/// is (temporary directories are made of such characters).
fn plain(path: &Path) -> &str {
    let text = path.to_str().expect("temporary path is UTF-8");
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b)),
        "temporary path needs escaping: {text:?}"
    );
    text
}

/// Checks one JSON record about `name` in `dir`: every field is there and
/// exact.
fn assert_json_record(line: &str, event: &str, dir: &Path, name: &[u8], initial: bool) {
    let record = json(line);
    assert_eq!(str_field(&record, "event"), event, "{line}");
    assert_timestamp(&str_field(&record, "time"), 6);
    assert_eq!(record.get("initial"), Some(&Value::Bool(initial)), "{line}");
    assert_eq!(str_field(&record, "dir"), plain(dir), "{line}");
    let path = dir.join(OsStr::from_bytes(name));
    match std::str::from_utf8(name) {
        Ok(text) => {
            assert_eq!(str_field(&record, "name"), text, "{line}");
            assert_eq!(str_field(&record, "path"), path.to_str().unwrap(), "{line}");
            assert!(record.get("name_hex").is_none(), "{line}");
            assert!(record.get("path_hex").is_none(), "{line}");
        }
        Err(_) => {
            assert_eq!(
                str_field(&record, "name"),
                String::from_utf8_lossy(name),
                "{line}"
            );
            assert_eq!(unhex(&str_field(&record, "name_hex")), name, "{line}");
            assert_eq!(
                unhex(&str_field(&record, "path_hex")),
                path.as_os_str().as_bytes(),
                "{line}"
            );
        }
    }
    assert!(record.get("dir_hex").is_none(), "{line}");
    // No identity is read in immediate mode.
    assert_eq!(record.get("id"), Some(&Value::Null), "{line}");
    assert_eq!(record.get("inode"), Some(&Value::Null), "{line}");
}

// ---------------------------------------------------------------------------
// Each format: one creation and one deletion
// ---------------------------------------------------------------------------

#[test]
fn ip_format_prints_add_and_delete() {
    let tmp = temp_dir();
    let mut w = Running::watch(tmp.path(), &Format::Ip.args());
    w.wait_ready(tmp.path(), Format::Ip);

    let path = touch(tmp.path(), "blue");
    assert_eq!(w.expect_line(), "add blue");
    std::fs::remove_file(path).unwrap();
    assert_eq!(w.expect_line(), "delete blue");
}

#[test]
fn text_format_prints_time_event_name_and_dir() {
    let tmp = temp_dir();
    let dir = plain(tmp.path());
    let mut w = Running::watch(tmp.path(), &Format::Text.args());
    w.wait_ready(tmp.path(), Format::Text);

    let path = touch(tmp.path(), "blue");
    let line = w.expect_line();
    assert!(line.contains("created") && line.contains("blue"), "{line}");
    assert_eq!(text_fields(&line)[1..], ["created", "blue", dir], "{line}");

    std::fs::remove_file(path).unwrap();
    let line = w.expect_line();
    assert!(line.contains("deleted") && line.contains("blue"), "{line}");
    assert_eq!(text_fields(&line)[1..], ["deleted", "blue", dir], "{line}");
}

#[test]
fn text_is_the_default_format() {
    let tmp = temp_dir();
    let mut w = Running::watch(tmp.path(), &[]);
    w.wait_ready(tmp.path(), Format::Text);

    touch(tmp.path(), "blue");
    let line = w.expect_line();
    assert_eq!(
        text_fields(&line)[1..],
        ["created", "blue", plain(tmp.path())],
        "{line}"
    );
}

#[test]
fn json_format_prints_every_field() {
    let tmp = temp_dir();
    let mut w = Running::watch(tmp.path(), &Format::Json.args());
    w.wait_ready(tmp.path(), Format::Json);

    let path = touch(tmp.path(), "blue");
    let line = w.expect_line();
    assert_json_record(&line, "created", tmp.path(), b"blue", false);
    // The time leads each record, as documented.
    assert!(line.starts_with(r#"{"time":""#), "{line}");

    std::fs::remove_file(path).unwrap();
    let line = w.expect_line();
    assert_json_record(&line, "deleted", tmp.path(), b"blue", false);
}

// ---------------------------------------------------------------------------
// --initial
// ---------------------------------------------------------------------------

#[test]
fn initial_names_come_first_and_are_marked() {
    for format in FORMATS {
        let tmp = temp_dir();
        for name in ["b", "a"] {
            touch(tmp.path(), name);
        }
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        let mut w = Running::watch(tmp.path(), &[&format.args()[..], &["--initial"]].concat());

        // The initial lines, sorted; the subdirectory is no namespace.
        let dir = plain(tmp.path());
        for name in ["a", "b"] {
            let line = w.expect_line();
            match format {
                Format::Text => {
                    assert_eq!(text_fields(&line)[1..], ["present", name, dir], "{line}");
                }
                Format::Ip => assert_eq!(line, format!("add {name}")),
                Format::Json => {
                    assert_json_record(&line, "created", tmp.path(), name.as_bytes(), true);
                }
            }
        }

        // The watcher was watching before it listed: a change now is
        // reported, and not as initial.
        touch(tmp.path(), "c");
        let line = w.expect_line();
        match format {
            Format::Text => assert_eq!(text_fields(&line)[1..], ["created", "c", dir], "{line}"),
            Format::Ip => assert_eq!(line, "add c"),
            Format::Json => assert_json_record(&line, "created", tmp.path(), b"c", false),
        }
        std::fs::remove_file(tmp.path().join("a")).unwrap();
        let line = w.expect_line();
        assert_eq!(
            format.parse(&line),
            (format.deleted().to_owned(), "a".to_owned()),
            "{format:?}: {line}"
        );
    }
}

// ---------------------------------------------------------------------------
// Case C08: names that could forge output
// ---------------------------------------------------------------------------

/// The names of case C08: a newline and a space, a byte that is not UTF-8,
/// and the longest name there can be (255 bytes, multi-byte characters).
fn c08_names() -> Vec<Vec<u8>> {
    let longest = format!("{}z", "é".repeat(127)).into_bytes();
    assert_eq!(longest.len(), 255);
    vec![b"x\ndelete y".to_vec(), b"n\xff".to_vec(), longest]
}

/// Creates then deletes the C08 names under a watcher in `format`, and
/// returns every line printed before the end marker's.
fn c08_lines(format: Format) -> (tempfile::TempDir, Vec<String>) {
    let tmp = temp_dir();
    let mut w = Running::watch(tmp.path(), &format.args());
    w.wait_ready(tmp.path(), format);

    let names = c08_names();
    for name in &names {
        touch(tmp.path(), OsStr::from_bytes(name));
    }
    for name in &names {
        std::fs::remove_file(tmp.path().join(OsStr::from_bytes(name))).unwrap();
    }
    // Events come in order: once the marker is reported, every line about
    // the names above has been printed.
    touch(tmp.path(), "end");
    let mut lines = Vec::new();
    loop {
        let line = w.expect_line();
        if format.parse(&line) == (format.created().to_owned(), "end".to_owned()) {
            return (tmp, lines);
        }
        assert!(lines.len() < 100, "no end marker among: {lines:#?}");
        lines.push(line);
    }
}

#[test]
fn c08_ip_lines_cannot_be_forged() {
    let (_tmp, lines) = c08_lines(Format::Ip);
    let longest = String::from_utf8(c08_names()[2].clone()).unwrap();
    let expected = [
        r"add x\ndelete\x20y".to_owned(),
        r"add n\xff".to_owned(),
        format!("add {longest}"),
        r"delete x\ndelete\x20y".to_owned(),
        r"delete n\xff".to_owned(),
        format!("delete {longest}"),
    ];
    assert_eq!(lines, expected);
}

#[test]
fn c08_text_lines_cannot_be_forged() {
    let (tmp, lines) = c08_lines(Format::Text);
    let dir = plain(tmp.path());
    let longest = String::from_utf8(c08_names()[2].clone()).unwrap();
    let escaped = [r"x\ndelete\x20y", r"n\xff", longest.as_str()];
    assert_eq!(lines.len(), 6, "one line per event: {lines:#?}");
    for (i, line) in lines.iter().enumerate() {
        let kind = if i < 3 { "created" } else { "deleted" };
        assert_eq!(
            text_fields(line)[1..],
            [kind, escaped[i % 3], dir],
            "{line}"
        );
    }
}

#[test]
fn c08_json_names_are_exact() {
    let (tmp, lines) = c08_lines(Format::Json);
    let names = c08_names();
    assert_eq!(lines.len(), 6, "one line per event: {lines:#?}");
    for (i, line) in lines.iter().enumerate() {
        let kind = if i < 3 { "created" } else { "deleted" };
        assert_json_record(line, kind, tmp.path(), &names[i % 3], false);
    }
    // Spelled out, for the two that matter most.
    let first = json(&lines[0]);
    assert_eq!(str_field(&first, "name"), "x\ndelete y");
    let second = json(&lines[1]);
    assert_eq!(unhex(&str_field(&second, "name_hex")), b"n\xff");
}

// ---------------------------------------------------------------------------
// Case C06: kernel queue overflow while the process is stopped
// ---------------------------------------------------------------------------

/// Waits until `/proc/PID/stat` says the process is stopped.
fn wait_stopped(w: &Running) {
    let stat = format!("/proc/{}/stat", w.child.id());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(&stat).unwrap_or_else(|e| panic!("{stat}: {e}"));
        // The state follows the command name, which is in parentheses.
        let state = text
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("cannot read the state in {stat}: {text:?}"));
        if state == "T" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: not stopped {PATIENCE:?} after SIGSTOP (state {state})",
            w.what
        );
        thread::sleep(POLL);
    }
}

/// The state a stream of JSON records describes, checked as it is applied.
#[derive(Default)]
struct JsonReplay {
    present: BTreeSet<String>,
    overflows: usize,
}

impl JsonReplay {
    fn apply(&mut self, line: &str, dir: &str) {
        let record = json(line);
        let event = str_field(&record, "event");
        if event == "overflow" {
            let keys: BTreeSet<&str> = record
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys, BTreeSet::from(["event", "initial", "time"]), "{line}");
            self.overflows += 1;
            return;
        }
        assert_eq!(str_field(&record, "dir"), dir, "{line}");
        assert!(record.get("name_hex").is_none(), "{line}");
        let name = str_field(&record, "name");
        match event.as_str() {
            "created" => assert!(
                self.present.insert(name.clone()),
                "{name} reported created twice: {line}"
            ),
            "deleted" => assert!(
                self.present.remove(&name),
                "{name} reported deleted but was not present: {line}"
            ),
            _ => panic!("unexpected record: {line}"),
        }
    }
}

fn c06_queue_overflow_with(global: &[&str]) {
    const BEFORE: usize = 40;
    let tmp = temp_dir();
    let dir = plain(tmp.path()).to_owned();
    for i in 0..BEFORE {
        touch(tmp.path(), format!("before-{i:02}"));
    }
    let mut w = Running::watch_with(global, tmp.path(), &["--format", "json", "--initial"]);

    // The initial records say the watcher is ready; they start the replay.
    let mut replay = JsonReplay::default();
    for i in 0..BEFORE {
        let line = w.expect_line();
        assert_json_record(
            &line,
            "created",
            tmp.path(),
            format!("before-{i:02}").as_bytes(),
            true,
        );
        replay.apply(&line, &dir);
    }

    // Far more than the kernel queue's 16,384 events while nobody reads.
    w.signal(Signal::STOP);
    wait_stopped(&w);
    for i in 0..20_000 {
        let path = touch(tmp.path(), format!("f{i}"));
        if i % 7 != 0 {
            std::fs::remove_file(path).unwrap();
        }
    }
    for i in (0..BEFORE).step_by(2) {
        std::fs::remove_file(tmp.path().join(format!("before-{i:02}"))).unwrap();
    }
    w.signal(Signal::CONT);

    // The rescan after the overflow may already find the sentinel, and
    // report it before the overflow record; its deletion, made once its
    // creation was seen, is reported after everything else.
    let sentinel = touch(tmp.path(), "sentinel");
    let mut seen = 0;
    let is = |line: &str, event: &str| {
        let record = json(line);
        record["event"] == event && record["name"] == "sentinel"
    };
    loop {
        let line = w.expect_line();
        replay.apply(&line, &dir);
        seen += 1;
        if is(&line, "created") {
            break;
        }
    }
    std::fs::remove_file(&sentinel).unwrap();
    loop {
        let line = w.expect_line();
        replay.apply(&line, &dir);
        seen += 1;
        if is(&line, "deleted") {
            break;
        }
    }

    assert_eq!(
        replay.overflows, 1,
        "exactly one overflow record among {seen} records"
    );
    let real: BTreeSet<String> = real_names(tmp.path())
        .into_iter()
        .map(|n| n.into_string().unwrap())
        .collect();
    assert_eq!(real.len(), BEFORE / 2 + 20_000 / 7 + 1);
    assert_eq!(replay.present, real);

    w.signal(Signal::TERM);
    let status = w.expect_exit();
    assert!(status.success(), "{status}");
    let stderr = w.stderr();
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("netns-watch: warn") && l.contains("overflow")),
        "no overflow warning on stderr: {stderr:?}"
    );
}

#[test]
fn c06_queue_overflow_cli() {
    c06_queue_overflow_with(&[]);
}

#[test]
fn c06_queue_overflow_cli_verbose() {
    c06_queue_overflow_with(&["-v"]);
}

// ---------------------------------------------------------------------------
// Exit behaviour
// ---------------------------------------------------------------------------

fn ends_cleanly_on(signal: Signal) {
    let tmp = temp_dir();
    let mut w = Running::watch(tmp.path(), &Format::Ip.args());
    w.wait_ready(tmp.path(), Format::Ip);
    w.signal(signal);
    let status = w.expect_exit();
    assert_eq!(status.code(), Some(0), "{signal:?}: {status}");
    assert_eq!(w.rest_of_stdout(), Vec::<String>::new());
    assert_eq!(w.stderr(), "");
}

#[test]
fn sigterm_ends_watch_with_status_0() {
    ends_cleanly_on(Signal::TERM);
}

#[test]
fn sigint_ends_watch_with_status_0() {
    ends_cleanly_on(Signal::INT);
}

#[test]
fn closed_stdout_ends_watch_with_status_0() {
    let tmp = temp_dir();
    let mut w = Running::watch(tmp.path(), &Format::Ip.args());
    w.wait_ready(tmp.path(), Format::Ip);

    w.close_stdout_after_next_line();
    touch(tmp.path(), "last-read");
    assert_eq!(w.expect_line(), "add last-read");
    w.expect_stdout_closed();

    // The next line written meets a closed pipe. Another file now and then,
    // in case a process being started elsewhere briefly held the read end.
    let deadline = Instant::now() + PATIENCE;
    let mut written = 0;
    let status = loop {
        touch(tmp.path(), format!("unread-{written}"));
        written += 1;
        if let Some(status) = w.exit_within(Duration::from_millis(200)) {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running {PATIENCE:?} after its stdout was closed ({written} files made)"
        );
    };
    assert_eq!(status.code(), Some(0), "{status}");
    assert_eq!(w.stderr(), "", "a closed stdout is no error");
}

#[test]
fn a_file_given_as_dir_is_an_error() {
    let tmp = temp_dir();
    let file = touch(tmp.path(), "plain");
    let cases = [
        ["list", ""],
        ["list", "--immediate"],
        ["watch", ""],
        ["watch", "--immediate"],
    ];
    for [command, mode] in cases {
        let mut args = vec![OsStr::new(command), OsStr::new("--dir"), file.as_os_str()];
        if !mode.is_empty() {
            args.push(OsStr::new(mode));
        }
        let command = format!("{command} {mode}");
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{command}: {}", out.status);
        assert_eq!(out.stdout, Vec::<String>::new(), "{command}");
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{command}: one line on stderr: {lines:#?}");
        assert!(
            lines[0].starts_with("netns-watch: error:"),
            "{command}: {}",
            lines[0]
        );
        assert!(
            lines[0].contains(plain(&file)),
            "{command}: the path is named: {}",
            lines[0]
        );
    }
}

#[test]
fn usage_errors_exit_with_status_2() {
    let tmp = temp_dir();
    let dir = tmp.path().as_os_str();
    let cases: [&[&OsStr]; 4] = [
        &[OsStr::new("watch"), OsStr::new("--no-such-flag")],
        &[
            OsStr::new("list"),
            OsStr::new("--dir"),
            dir,
            OsStr::new("--bogus"),
        ],
        &[
            OsStr::new("watch"),
            OsStr::new("--dir"),
            dir,
            OsStr::new("--format"),
            OsStr::new("xml"),
        ],
        &[OsStr::new("frobnicate")],
    ];
    for args in cases {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.status);
        assert_eq!(out.stdout, Vec::<String>::new(), "{args:?}");
        assert!(
            !out.stderr.is_empty(),
            "{args:?}: a usage error is explained"
        );
    }
}

// ---------------------------------------------------------------------------
// list
// ---------------------------------------------------------------------------

/// A directory with awkward names and a subdirectory.
fn list_fixture() -> tempfile::TempDir {
    let tmp = temp_dir();
    let names: [&[u8]; 5] = [b"b", b"a c", b"a\\b", b"n\xff", b"x\ny"];
    for name in names {
        touch(tmp.path(), OsStr::from_bytes(name));
    }
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    tmp
}

/// `netns-watch list --dir DIR ARGS...`, run to its end.
fn list(dir: &Path, args: &[&str]) -> Finished {
    let mut all = vec![OsStr::new("list"), OsStr::new("--dir"), dir.as_os_str()];
    all.extend(args.iter().map(OsStr::new));
    run(&all)
}

#[test]
fn list_prints_sorted_escaped_names() {
    let tmp = list_fixture();
    // Sorted by bytes: ' ' < '\\' < 'b' < 'n' < 'x'.
    let expected = [r"a\x20c", r"a\\b", "b", r"n\xff", r"x\ny"];
    for args in [&["--immediate"][..], &["--immediate", "--names"]] {
        let out = list(tmp.path(), args);
        assert!(
            out.status.success(),
            "{args:?}: {}: {}",
            out.status,
            out.stderr
        );
        assert_eq!(out.stdout, expected, "{args:?}");
        assert_eq!(out.stderr, "", "{args:?}");
    }
}

#[test]
fn list_without_immediate_skips_plain_files() {
    // A plain file is a placeholder, not a namespace, unless --immediate.
    let tmp = list_fixture();
    for args in [&[][..], &["--json"]] {
        let out = list(tmp.path(), args);
        assert!(
            out.status.success(),
            "{args:?}: {}: {}",
            out.status,
            out.stderr
        );
        assert_eq!(out.stdout, Vec::<String>::new(), "{args:?}");
    }
}

#[test]
fn list_json_prints_one_object_per_name() {
    let tmp = list_fixture();
    let out = list(tmp.path(), &["--json", "--immediate"]);
    assert!(out.status.success(), "{}: {}", out.status, out.stderr);
    let dir = plain(tmp.path());
    let mut names = Vec::new();
    for line in &out.stdout {
        let record = json(line);
        assert_eq!(str_field(&record, "dir"), dir, "{line}");
        let name = match record.get("name_hex") {
            Some(hex) => unhex(hex.as_str().expect("name_hex is a string")),
            None => str_field(&record, "name").into_bytes(),
        };
        let path = tmp.path().join(OsStr::from_bytes(&name));
        let path_bytes = match record.get("path_hex") {
            Some(hex) => unhex(hex.as_str().expect("path_hex is a string")),
            None => str_field(&record, "path").into_bytes(),
        };
        assert_eq!(path_bytes, path.as_os_str().as_bytes(), "{line}");
        let keys: BTreeSet<&str> = record
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = BTreeSet::from(["name", "dir", "path", "id", "inode", "aliases", "own"]);
        if record.get("name_hex").is_some() {
            expected.extend(["name_hex", "path_hex"]);
        }
        assert_eq!(keys, expected, "{line}");
        // No identity is read in immediate mode.
        assert_eq!(record["id"], Value::Null, "{line}");
        assert_eq!(record["inode"], Value::Null, "{line}");
        // Nor can aliases or the own namespace be told.
        assert_eq!(record["aliases"], Value::Null, "{line}");
        assert_eq!(record["own"], Value::Null, "{line}");
        names.push(OsString::from_vec(name));
    }
    let expected: Vec<OsString> = real_names(tmp.path()).into_iter().collect();
    assert_eq!(names, expected, "every name, sorted, exactly once");
    assert_eq!(names.len(), 5);
}

#[test]
fn list_of_a_missing_directory_is_empty() {
    let tmp = temp_dir();
    let missing = tmp.path().join("absent");
    for args in [&[][..], &["--immediate"], &["--json"]] {
        let out = list(&missing, args);
        assert!(
            out.status.success(),
            "{args:?}: {}: {}",
            out.status,
            out.stderr
        );
        assert_eq!(out.stdout, Vec::<String>::new(), "{args:?}");
        // One warning, naming the directory, so that a typo does not pass
        // for an empty directory.
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {}", out.stderr);
        assert!(
            lines[0].starts_with("netns-watch: warn: ")
                && lines[0].contains(&*missing.to_string_lossy()),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn watch_ends_when_its_reader_goes_away_even_without_events() {
    let tmp = temp_dir();
    let mut w = Running::watch(tmp.path(), &Format::Ip.args());
    w.wait_ready(tmp.path(), Format::Ip);
    w.close_stdout_after_next_line();
    touch(tmp.path(), "last-read");
    assert_eq!(w.expect_line(), "add last-read");
    w.expect_stdout_closed();
    // Nothing else happens in the directory: the closed pipe alone ends it.
    let status = w
        .exit_within(PATIENCE)
        .expect("still running after its reader went away");
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn sigterm_ends_watch_while_its_reader_is_stalled() {
    use std::process::Stdio;

    let tmp = temp_dir();
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_netns-watch"))
        .args(["watch", "--immediate", "--format", "ip", "--dir"])
        .arg(tmp.path())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Far more output than the pipe and the backlog hold, never read.
    let deadline = Instant::now() + PATIENCE;
    let mut made = 0;
    while made < 40_000 && Instant::now() < deadline {
        let path = touch(tmp.path(), format!("{:0>200}", made));
        std::fs::remove_file(path).unwrap();
        made += 1;
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, Signal::TERM).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("SIGTERM did not end watch while its stdout was full");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(reader);
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn errors_stay_on_one_line() {
    let tmp = temp_dir();
    let file = touch(tmp.path(), "f\nile");
    let out = run(&[OsStr::new("list"), OsStr::new("--dir"), file.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{:?}", out.stderr);
    assert!(
        lines[0].starts_with("netns-watch: error: ") && lines[0].contains("f\\nile"),
        "{}",
        lines[0]
    );
}

#[test]
fn wait_refuses_names_that_cannot_exist() {
    let long = "n".repeat(256);
    for name in ["", ".", "..", "a/b", long.as_str()] {
        let out = run(&[
            OsStr::new("wait"),
            OsStr::new(name),
            OsStr::new("--timeout"),
            OsStr::new("1"),
        ]);
        assert_eq!(out.status.code(), Some(2), "{name:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("cannot name a namespace"),
            "{name:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn completions_and_manual_page_come_from_the_command_line_definition() {
    let bash = run(&[OsStr::new("completions"), OsStr::new("bash")]);
    assert_eq!(bash.status.code(), Some(0));
    let script = bash.stdout.join("\n");
    for word in [
        "netns-watch",
        "watch",
        "wait",
        "--exec-in",
        "--mount-source",
    ] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
    let man = run(&[OsStr::new("manpage")]);
    assert_eq!(man.status.code(), Some(0));
    let page = man.stdout.join("\n");
    assert!(
        page.starts_with(".ie") || page.starts_with(".TH"),
        "not roff: {}",
        &page[..40.min(page.len())]
    );
    assert!(page.contains("netns\\-watch"), "the page names the program");
}
