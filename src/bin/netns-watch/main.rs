//! `netns-watch`: list, watch and wait for Linux named network namespaces.

mod cli;
mod filter;
mod hooks;
mod logging;
mod output;
mod stdout;

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Parser;
use netns_watch::{Config, Event, Identity, NamespaceWatcher, Readiness};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::cli::{Cli, Command, Dirs, Format, HookArgs, Mode, Runtime};
use crate::filter::NameFilter;
use crate::hooks::{HookSpec, Hooks, Place};
use crate::output::{Listed, Record};

/// A failure that ends the program, printed as one line on stderr.
type Failure = Box<dyn std::error::Error>;

/// Exit status of `wait` when the timeout expires first (as timeout(1)).
const EXIT_TIMEOUT: u8 = 124;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose);

    let result = match cli.command {
        Command::List {
            dirs,
            json,
            names,
            immediate,
        } => list(&dirs, json, names, immediate),
        Command::Watch {
            dirs,
            mode,
            filter,
            hooks,
            format,
            initial,
            directory_events,
        } => (|| {
            let config = config(&dirs, &mode)?.emit_directory_events(directory_events);
            let filter = NameFilter::new(&filter.matches, &filter.ignores)?;
            let hooks = hook_spec(hooks)?;
            block_on(watch(config, format, initial, filter, hooks))
        })(),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "netns-watch", &mut io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpage => clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
            .render(&mut io::stdout())
            .map(|()| ExitCode::SUCCESS)
            .map_err(Failure::from),
        Command::Wait {
            names,
            dirs,
            mode,
            timeout,
        } => config(&dirs, &mode).and_then(|config| block_on(wait(config, names, timeout))),
    };
    match result {
        Ok(code) => code,
        // A reader that went away (`| head`) is a normal way to stop.
        Err(err) if is_broken_pipe(err.as_ref()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("netns-watch: error: {}", output::one_line(&err.to_string()));
            ExitCode::FAILURE
        }
    }
}

fn block_on(
    job: impl std::future::Future<Output = Result<ExitCode, Failure>>,
) -> Result<ExitCode, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(job);
    // A write to a stuck reader may still be pending on a blocking thread:
    // do not wait for it.
    runtime.shutdown_background();
    result
}

fn is_broken_pipe(err: &(dyn std::error::Error + 'static)) -> bool {
    err.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// The directories given with --dir and --runtime, each once, in order;
/// /var/run/netns when none is given.
fn directories(dirs: &Dirs) -> Result<Vec<PathBuf>, Failure> {
    let mut all: Vec<PathBuf> = dirs.dirs.clone();
    for runtime in &dirs.runtimes {
        all.push(match runtime {
            Runtime::Iproute2 | Runtime::Containerd | Runtime::CriO => PathBuf::from(netns_watch::IPROUTE2_DIR),
            Runtime::Docker => PathBuf::from("/var/run/docker/netns"),
            Runtime::Podman => PathBuf::from("/run/netns"),
            Runtime::PodmanRootless => match std::env::var_os("XDG_RUNTIME_DIR") {
                Some(base) => PathBuf::from(base).join("netns"),
                None => return Err("--runtime podman-rootless: XDG_RUNTIME_DIR is not set (run as the user who runs podman)".into()),
            },
        });
    }
    if all.is_empty() {
        all.push(PathBuf::from(netns_watch::IPROUTE2_DIR));
    }
    // One directory given twice, or under two spellings, is watched once
    // (the first spelling is kept).
    let mut seen = BTreeSet::new();
    all.retain(|dir| {
        let same = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        let first = seen.insert(same);
        if !first {
            tracing::warn!(
                "{} is already watched under another spelling; watching it once",
                dir.display()
            );
        }
        first
    });
    Ok(all)
}

fn config(dirs: &Dirs, mode: &Mode) -> Result<Config, Failure> {
    let mut config = Config::with_dirs(directories(dirs)?);
    if mode.immediate {
        config = config.readiness(Readiness::Immediate);
    }
    if let Some(source) = mode.mount_source {
        config = config.mount_source(source.into());
    }
    Ok(config)
}

fn hook_spec(args: HookArgs) -> Result<Option<HookSpec>, Failure> {
    let (place, inline) = match (args.exec, args.exec_in) {
        (Some(cmd), None) => (Place::Here, cmd),
        (None, Some(cmd)) => (Place::InNamespace, cmd),
        (None, None) if args.command.is_empty() => return Ok(None),
        (None, None) => {
            return Err("a command after `--` needs --exec or --exec-in before it".into())
        }
        (Some(_), Some(_)) => return Err("give --exec or --exec-in, not both".into()),
    };
    let mut words = if inline.is_empty() {
        args.command
    } else {
        inline
    };
    // `--exec -- CMD` reaches here with the `--` still in front.
    if words.first().is_some_and(|w| w == "--") {
        words.remove(0);
    }
    if words.is_empty() {
        return Err("--exec and --exec-in need a command (CMD [ARG]..., or after `--`)".into());
    }
    let program = words.remove(0);
    Ok(Some(HookSpec {
        place,
        program,
        args: words,
        jobs: usize::from(args.jobs),
        timeout: args.hook_timeout,
    }))
}

fn list(dirs: &Dirs, json: bool, names_only: bool, immediate: bool) -> Result<ExitCode, Failure> {
    let readiness = if immediate {
        Readiness::Immediate
    } else {
        Readiness::Mounted
    };
    let config = Config::with_dirs(directories(dirs)?).readiness(readiness);
    for dir in config.dirs() {
        if std::fs::symlink_metadata(dir).is_err_and(|e| e.kind() == io::ErrorKind::NotFound) {
            tracing::warn!(
                "{}: no such directory; nothing listed from it",
                dir.display()
            );
        }
    }
    let found = NamespaceWatcher::list_with_config(&config)?;
    let own = Identity::of_current_thread()
        .map_err(|err| tracing::warn!("cannot read this process's own namespace: {err}"))
        .ok();
    let mut out = io::stdout().lock();
    for ns in &found {
        let known = ns.identity.is_some() && !immediate;
        let aliases = known.then(|| {
            found
                .iter()
                .filter(|other| other.identity == ns.identity && *other != ns)
                .collect()
        });
        let own = known.then(|| {
            own.is_some_and(|own| {
                ns.identity
                    .is_some_and(|i| (i.inode, i.dev) == (own.inode, own.dev))
            })
        });
        let entry = Listed { ns, aliases, own };
        output::write_entry(&mut out, json, names_only, &entry)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT and SIGTERM, which end `watch` and `wait`.
struct Stop {
    interrupt: Signal,
    terminate: Signal,
}

impl Stop {
    fn new() -> io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

async fn watch(
    config: Config,
    format: Format,
    initial: bool,
    filter: NameFilter,
    hooks: Option<HookSpec>,
) -> Result<ExitCode, Failure> {
    let mut stop = Stop::new()?;
    let (present, mut watcher) = NamespaceWatcher::list_and_watch_with_config(config).await?;
    let mut hooks = hooks.map(Hooks::new);
    let mut out = stdout::Stdout::new();
    let mut queue: VecDeque<(Event, bool)> = VecDeque::new();
    if initial {
        queue.extend(present.into_iter().map(|ns| (Event::Created(ns), true)));
    }

    let result: Result<ExitCode, Failure> = 'run: loop {
        // Deliver what is queued; a signal still ends the program while a
        // slow reader holds up a write.
        while let Some((event, initial)) = queue.pop_front() {
            if !filter.admits(&event) {
                continue;
            }
            let record = Record {
                time: SystemTime::now(),
                event: &event,
                initial,
            };
            if let Some(line) = output::render(format, &record) {
                tokio::select! {
                    _ = stop.recv() => break 'run Ok(ExitCode::SUCCESS),
                    written = out.write_line(line) => {
                        if let Err(err) = written {
                            break 'run Err(err.into());
                        }
                    }
                }
            }
            if let Some(hooks) = &mut hooks {
                hooks.submit(&event, initial);
            }
        }

        let hooks_busy = hooks.as_ref().is_some_and(|h| !h.is_idle());
        tokio::select! {
            _ = stop.recv() => break Ok(ExitCode::SUCCESS),
            // The reader went away (`watch | head -1`): nobody listens.
            _ = out.closed() => break Ok(ExitCode::SUCCESS),
            _ = async {
                if let Some(hooks) = hooks.as_mut() {
                    hooks.next_done().await;
                }
            }, if hooks_busy => {}
            next = watcher.recv() => match next {
                Ok(Some(event)) => queue.push_back((event, false)),
                Ok(None) => break Ok(ExitCode::SUCCESS),
                Err(err @ netns_watch::Error::Inotify { .. }) => break Err(err.into()),
                // The watcher recovers from the rest; make sure it is seen.
                Err(err) => tracing::warn!("{err}"),
            },
        }
    };
    // Stop taking events; let running hooks end (up to their timeout).
    drop(watcher);
    if let Some(hooks) = hooks {
        hooks.shutdown().await;
    }
    result
}

async fn wait(
    config: Config,
    names: Vec<OsString>,
    timeout: Option<Duration>,
) -> Result<ExitCode, Failure> {
    let mut stop = Stop::new()?;
    let wanted: BTreeSet<OsString> = names.into_iter().collect();
    let (list, mut watcher) = NamespaceWatcher::list_and_watch_with_config(config).await?;
    // A name counts while it is a namespace in any watched directory.
    let mut present: BTreeSet<(PathBuf, OsString)> = list
        .into_iter()
        .filter(|ns| wanted.contains(&ns.name))
        .map(|ns| (ns.dir, ns.name))
        .collect();
    let missing = |present: &BTreeSet<(PathBuf, OsString)>| -> Vec<OsString> {
        wanted
            .iter()
            .filter(|name| !present.iter().any(|(_, n)| n == *name))
            .cloned()
            .collect()
    };

    let deadline = tokio::time::sleep(timeout.unwrap_or(Duration::MAX));
    tokio::pin!(deadline);
    loop {
        let waiting = missing(&present);
        if waiting.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        tracing::debug!("waiting for {}", describe(&waiting));
        tokio::select! {
            _ = stop.recv() => return Err(format!("interrupted while waiting for {}", describe(&waiting)).into()),
            _ = &mut deadline, if timeout.is_some() => {
                let secs = timeout.unwrap_or_default().as_secs_f64();
                eprintln!("netns-watch: timed out after {secs}s waiting for {}", describe(&waiting));
                return Ok(ExitCode::from(EXIT_TIMEOUT));
            }
            next = watcher.recv() => match next {
                Ok(Some(Event::Created(ns))) if wanted.contains(&ns.name) => {
                    present.insert((ns.dir, ns.name));
                }
                Ok(Some(Event::Deleted(ns))) => {
                    present.remove(&(ns.dir, ns.name));
                }
                Ok(Some(_)) => {}
                Ok(None) => return Err("the watcher ended".into()),
                Err(err @ netns_watch::Error::Inotify { .. }) => return Err(err.into()),
                // The watcher recovers from the rest; make sure it is seen.
                Err(err) => tracing::warn!("{err}"),
            },
        }
    }
}

/// `a, b and c`, each name escaped.
fn describe(names: &[OsString]) -> String {
    let escaped: Vec<String> = names.iter().map(|n| output::escape(n)).collect();
    match escaped.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => escaped.concat(),
    }
}
