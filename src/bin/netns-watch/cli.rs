//! The command line, as clap reads it.

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

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
    /// Print the namespaces present now, one per line.
    List {
        #[command(flatten)]
        dirs: Dirs,

        /// Print JSON Lines (one object per namespace) instead of names.
        #[arg(long)]
        json: bool,
    },

    /// Report namespaces as they appear and disappear, until interrupted.
    Watch {
        #[command(flatten)]
        dirs: Dirs,

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
}

/// The directories to look at.
#[derive(Debug, clap::Args)]
pub(crate) struct Dirs {
    /// Directory of namespace files; repeat to watch several.
    #[arg(long = "dir", value_name = "DIR", default_value = netns_watch::IPROUTE2_DIR)]
    pub(crate) dirs: Vec<PathBuf>,
}

/// Output formats of `watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// For people: a timestamp, the event, the name and its directory.
    Text,
    /// Exactly the lines of `ip netns monitor`: `add NAME` and `delete NAME`.
    Ip,
    /// JSON Lines: one object per event.
    Json,
}
