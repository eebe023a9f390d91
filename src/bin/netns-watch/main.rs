//! `netns-watch`: list, watch and wait for Linux named network namespaces.

mod cli;
mod logging;
mod output;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Parser;
use netns_watch::{Config, Event, Identity, NamespaceWatcher, Readiness};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::cli::{Cli, Command, Dirs, Format, Mode};
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
            format,
            initial,
            directory_events,
        } => {
            let config = config(&dirs, &mode).emit_directory_events(directory_events);
            block_on(watch(config, format, initial))
        }
        Command::Wait {
            names,
            dirs,
            mode,
            timeout,
        } => block_on(wait(config(&dirs, &mode), names, timeout)),
    };
    match result {
        Ok(code) => code,
        // A reader that went away (`| head`) is a normal way to stop.
        Err(err) if is_broken_pipe(err.as_ref()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("netns-watch: error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn block_on(
    job: impl std::future::Future<Output = Result<ExitCode, Failure>>,
) -> Result<ExitCode, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(job)
}

fn is_broken_pipe(err: &(dyn std::error::Error + 'static)) -> bool {
    err.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn config(dirs: &Dirs, mode: &Mode) -> Config {
    let mut config = Config::with_dirs(dirs.dirs.iter().cloned());
    if mode.immediate {
        config = config.readiness(Readiness::Immediate);
    }
    if let Some(source) = mode.mount_source {
        config = config.mount_source(source);
    }
    config
}

fn list(dirs: &Dirs, json: bool, names_only: bool, immediate: bool) -> Result<ExitCode, Failure> {
    let readiness = if immediate {
        Readiness::Immediate
    } else {
        Readiness::Mounted
    };
    let config = Config::with_dirs(dirs.dirs.iter().cloned()).readiness(readiness);
    let found = NamespaceWatcher::list_with_config(&config)?;
    let own = Identity::of_current_thread()
        .map_err(|err| tracing::warn!("cannot read this process's own namespace: {err}"))
        .ok();
    let mut out = io::stdout().lock();
    for ns in &found {
        let aliases = found
            .iter()
            .filter(|other| ns.identity.is_some() && other.identity == ns.identity && *other != ns)
            .collect();
        let entry = Listed {
            ns,
            aliases,
            own: own.is_some()
                && ns.identity.map(|i| (i.inode, i.dev)) == own.map(|i| (i.inode, i.dev)),
        };
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

async fn watch(config: Config, format: Format, initial: bool) -> Result<ExitCode, Failure> {
    let mut stop = Stop::new()?;
    let (present, mut watcher) = NamespaceWatcher::list_and_watch_with_config(config).await?;
    if !watcher.is_watching() {
        tracing::info!("waiting for a watched directory to appear");
    }
    let out = io::stdout();
    if initial {
        for ns in present {
            emit(&out, format, &Event::Created(ns), true)?;
        }
    }

    loop {
        tokio::select! {
            _ = stop.recv() => return Ok(ExitCode::SUCCESS),
            next = watcher.recv() => match next {
                Ok(Some(event)) => emit(&out, format, &event, false)?,
                Ok(None) => return Ok(ExitCode::SUCCESS),
                Err(err @ netns_watch::Error::Inotify { .. }) => return Err(err.into()),
                // The watcher recovers from the rest; make sure it is seen.
                Err(err) => tracing::warn!("{err}"),
            },
        }
    }
}

/// Writes one event, whole and flushed, under the stdout lock.
fn emit(out: &io::Stdout, format: Format, event: &Event, initial: bool) -> io::Result<()> {
    let record = Record {
        time: SystemTime::now(),
        event,
        initial,
    };
    output::write_record(&mut out.lock(), format, &record).map(drop)
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
            next = watcher.recv() => match next? {
                Some(Event::Created(ns)) if wanted.contains(&ns.name) => {
                    present.insert((ns.dir, ns.name));
                }
                Some(Event::Deleted(ns)) => {
                    present.remove(&(ns.dir, ns.name));
                }
                Some(_) => {}
                None => return Err("the watcher ended".into()),
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
