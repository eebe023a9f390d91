//! Standard output for `watch`: written on a thread of its own, so that a
//! slow reader never stalls the event loop (signals are still handled, the
//! kernel queue is still drained), and watched for its reader going away
//! (so `watch | head -1` ends at once).

use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc;

/// Lines waiting for the writer: enough to ride out a burst; when a reader
/// stalls for longer, the event loop waits here (and the kernel queue may
/// overflow, which the watcher recovers from by a rescan).
const BACKLOG: usize = 16 * 1024;

pub(crate) struct Stdout {
    lines: mpsc::Sender<String>,
    failure: Arc<Mutex<Option<io::Error>>>,
    /// A copy of the descriptor, registered for error readiness only when
    /// stdout is a pipe or a socket: the kernel reports an error on the
    /// writing end once the reading end is closed (pipe(7)).
    watch: Option<AsyncFd<OwnedFd>>,
}

impl Stdout {
    pub(crate) fn new() -> Self {
        let (lines, mut queued) = mpsc::channel::<String>(BACKLOG);
        let failure = Arc::new(Mutex::new(None));
        let failed = Arc::clone(&failure);
        std::thread::spawn(move || {
            let mut out = io::BufWriter::new(io::stdout().lock());
            while let Some(line) = queued.blocking_recv() {
                // Write what is queued, then flush once: every line is out
                // as soon as no other is waiting behind it.
                let mut result = write_line(&mut out, &line);
                while let (Ok(()), Ok(more)) = (&result, queued.try_recv()) {
                    result = write_line(&mut out, &more);
                }
                if let Err(err) = result.and_then(|()| out.flush()) {
                    *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(err);
                    return;
                }
            }
        });
        Self {
            lines,
            failure,
            watch: reader_watch(),
        }
    }

    /// Queues `line` (a newline is added), waiting while the backlog is full.
    ///
    /// # Errors
    ///
    /// The error that stopped the writer (such as a broken pipe).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a cancelled call queued nothing.
    pub(crate) async fn write_line(&mut self, line: String) -> io::Result<()> {
        if self.lines.send(line).await.is_ok() {
            return Ok(());
        }
        let failure = self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        Err(failure.unwrap_or_else(|| io::Error::other("stdout writer stopped")))
    }

    /// Completes when the reader of stdout has gone away; never, when that
    /// cannot be known (a terminal or a file).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub(crate) async fn closed(&self) {
        let Some(fd) = &self.watch else {
            return std::future::pending().await;
        };
        loop {
            match fd.ready(Interest::ERROR).await {
                Ok(mut guard) if !guard.ready().is_error() => guard.clear_ready(),
                Ok(_) => return,
                Err(_) => return std::future::pending().await,
            }
        }
    }
}

fn write_line(out: &mut impl Write, line: &str) -> io::Result<()> {
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")
}

fn reader_watch() -> Option<AsyncFd<OwnedFd>> {
    let stdout = io::stdout();
    let stat = rustix::fs::fstat(stdout.as_fd()).ok()?;
    let kind = rustix::fs::FileType::from_raw_mode(stat.st_mode);
    if !matches!(
        kind,
        rustix::fs::FileType::Fifo | rustix::fs::FileType::Socket
    ) {
        return None;
    }
    let copy = stdout.as_fd().try_clone_to_owned().ok()?;
    // SAFETY: the copy is an `OwnedFd` moved into the `AsyncFd`, which owns
    // it and closes it only when dropped.
    unsafe { AsyncFd::register_with_interest(copy, Interest::ERROR) }.ok()
}
