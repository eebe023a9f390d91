//! The command line, as clap reads it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use netns_watch::MountSource;

/// Tells exactly and promptly when Linux network namespaces appear and
/// disappear.
#[derive(Debug, Parser)]
#[command(name = "netns-watch", version, propagate_version = true)]
pub(crate) struct Cli {
    /// Log more to stderr (-v: info, -vv: debug, -vvv: trace). RUST_LOG
    /// overrides this.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the namespaces present now, one per line, with their identity.
    List {
        #[command(flatten)]
        dirs: Dirs,

        /// Print JSON Lines (one object per namespace).
        #[arg(long)]
        json: bool,

        /// Print only the names, one per line (like `ip netns list`).
        #[arg(long, conflicts_with = "json")]
        names: bool,

        /// List every file, mounted or not, and read no identity.
        #[arg(long)]
        immediate: bool,
    },

    /// Report namespaces as they appear and disappear, until interrupted.
    Watch {
        #[command(flatten)]
        dirs: Dirs,

        #[command(flatten)]
        mode: Mode,

        /// How to print events.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,

        /// First report the namespaces already present, marked as initial.
        #[arg(long)]
        initial: bool,

        /// Also report the watched directories appearing and disappearing.
        #[arg(long)]
        directory_events: bool,
    },

    /// Wait until every NAME is a usable namespace (at once if already).
    ///
    /// Exits 0 when all are, 124 when the timeout expires first. Names are
    /// matched exactly.
    Wait {
        /// Names of namespaces to wait for.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<std::ffi::OsString>,

        #[command(flatten)]
        dirs: Dirs,

        #[command(flatten)]
        mode: Mode,

        /// Give up after this many seconds (fractions allowed).
        #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
        timeout: Option<Duration>,
    },
}

/// The directories to look at.
#[derive(Debug, clap::Args)]
pub(crate) struct Dirs {
    /// Directory of namespace files; repeat to watch several.
    #[arg(long = "dir", value_name = "DIR", default_value = netns_watch::IPROUTE2_DIR)]
    pub(crate) dirs: Vec<PathBuf>,
}

/// When a name counts, and how mounts are followed.
#[derive(Debug, clap::Args)]
pub(crate) struct Mode {
    /// Report a name as soon as its file appears, as `ip netns monitor`
    /// does (before the namespace is mounted, and for placeholders too).
    #[arg(long)]
    pub(crate) immediate: bool,

    /// How to follow mounts (default: the best that works here).
    #[arg(long, value_name = "SOURCE", value_parser = parse_source, conflicts_with = "immediate")]
    pub(crate) mount_source: Option<MountSource>,
}

/// Output formats of `watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// For people: a timestamp, the event, the name, its directory and id.
    Text,
    /// Exactly the lines of `ip netns monitor`: `add NAME` and `delete NAME`.
    Ip,
    /// JSON Lines: one object per event.
    Json,
}

fn parse_source(text: &str) -> Result<MountSource, String> {
    text.parse()
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{text:?} is not a usable number of seconds"))
}
