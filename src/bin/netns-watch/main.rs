//! `netns-watch`: list and watch Linux named network namespaces.

mod cli;
mod logging;
mod output;

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::SystemTime;

use clap::Parser;
use netns_watch::{Config, NamespaceWatcher};
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::{Cli, Command, Dirs, Format};
use crate::output::Record;

/// A failure that ends the program, printed as one line on stderr.
type Failure = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose);

    let result = match cli.command {
        Command::List { dirs, json } => list(&dirs, json),
        Command::Watch {
            dirs,
            format,
            initial,
            directory_events,
        } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Failure::from)
            .and_then(|rt| rt.block_on(watch(&dirs, format, initial, directory_events))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`| head`) is a normal way to stop.
        Err(err) if is_broken_pipe(err.as_ref()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("netns-watch: error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(err: &(dyn std::error::Error + 'static)) -> bool {
    err.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn config(dirs: &Dirs) -> Config {
    Config::with_dirs(dirs.dirs.iter().cloned())
}

fn list(dirs: &Dirs, json: bool) -> Result<(), Failure> {
    let found = NamespaceWatcher::list_with_config(&config(dirs))?;
    let mut out = io::stdout().lock();
    for ns in &found {
        output::write_entry(&mut out, json, ns)?;
    }
    out.flush()?;
    Ok(())
}

async fn watch(
    dirs: &Dirs,
    format: Format,
    initial: bool,
    directory_events: bool,
) -> Result<(), Failure> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;

    let config = config(dirs).emit_directory_events(directory_events);
    let (present, mut watcher) = NamespaceWatcher::list_and_watch_with_config(config).await?;
    if !watcher.is_watching() {
        tracing::info!("waiting for a watched directory to appear");
    }
    let out = io::stdout();
    if initial {
        for ns in present {
            let event = netns_watch::Event::Created(ns);
            emit(&out, format, &event, true)?;
        }
    }

    loop {
        tokio::select! {
            _ = interrupt.recv() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
            next = watcher.recv() => match next {
                Ok(Some(event)) => emit(&out, format, &event, false)?,
                Ok(None) => return Ok(()),
                Err(err @ netns_watch::Error::Inotify { .. }) => return Err(err.into()),
                // The watcher recovers from the rest; make sure it is seen.
                Err(err) => tracing::warn!("{err}"),
            },
        }
    }
}

/// Writes one event, whole and flushed, under the stdout lock.
fn emit(
    out: &io::Stdout,
    format: Format,
    event: &netns_watch::Event,
    initial: bool,
) -> io::Result<()> {
    let record = Record {
        time: SystemTime::now(),
        event,
        initial,
    };
    output::write_record(&mut out.lock(), format, &record).map(drop)
}
