//! The command line, as clap reads it.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser;
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
    ///
    /// With --exec or --exec-in, also run a command for each event. The
    /// event reaches the command in its environment (NETNS_EVENT,
    /// NETNS_NAME, NETNS_DIR, NETNS_PATH, NETNS_ID, NETNS_INODE,
    /// NETNS_INITIAL), never inside a command line, so no name can inject
    /// anything. Hook output goes to stderr.
    Watch {
        #[command(flatten)]
        dirs: Dirs,

        #[command(flatten)]
        mode: Mode,

        #[command(flatten)]
        filter: Filter,

        #[command(flatten)]
        hooks: HookArgs,

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

    /// Print shell completions for SHELL.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the manual page (roff).
    Manpage,

    /// Wait until every NAME is a usable namespace (at once if already).
    ///
    /// Exits 0 when all are, 124 when the timeout expires first. Names are
    /// matched exactly.
    Wait {
        /// Names of namespaces to wait for.
        #[arg(
            required = true,
            value_name = "NAME",
            value_parser = clap::builder::OsStringValueParser::new().try_map(namespace_name)
        )]
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
    /// Directory of namespace files; repeat to watch several (default:
    /// /var/run/netns, unless --runtime is given).
    #[arg(long = "dir", value_name = "DIR")]
    pub(crate) dirs: Vec<PathBuf>,

    /// Also watch where RUNTIME keeps its namespaces; repeatable.
    #[arg(long = "runtime", value_name = "RUNTIME", value_enum)]
    pub(crate) runtimes: Vec<Runtime>,
}

/// Container runtimes and tools, by where they name network namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Runtime {
    /// `ip netns`: /var/run/netns.
    Iproute2,
    /// Docker: /var/run/docker/netns.
    Docker,
    /// containerd and other CNI users (through the CNI netns helpers):
    /// /var/run/netns.
    Containerd,
    /// CRI-O: /var/run/netns.
    CriO,
    /// Podman run as root (netavark): /run/netns.
    Podman,
    /// Podman without root: $XDG_RUNTIME_DIR/netns.
    PodmanRootless,
}

/// Which names to report.
#[derive(Debug, clap::Args)]
pub(crate) struct Filter {
    /// Report only names matching GLOB (the whole name: `blue*` matches
    /// `blue2`, `blue` does not); repeatable.
    #[arg(long = "match", value_name = "GLOB")]
    pub(crate) matches: Vec<String>,

    /// Do not report names matching GLOB; repeatable, wins over --match.
    #[arg(long = "ignore", value_name = "GLOB")]
    pub(crate) ignores: Vec<String>,
}

/// A command to run for each event.
#[derive(Debug, clap::Args)]
pub(crate) struct HookArgs {
    /// Run CMD [ARG]... for each event (it takes the rest of the command
    /// line, or give the command after `--`).
    #[arg(long, value_name = "CMD", num_args = 0.., allow_hyphen_values = true, conflicts_with = "exec_in")]
    pub(crate) exec: Option<Vec<std::ffi::OsString>>,

    /// Run CMD [ARG]... inside each created namespace (its network
    /// namespace entered, as with `ip netns exec`; the namespace the event
    /// named, or not at all if the name was re-bound meanwhile).
    #[arg(long, value_name = "CMD", num_args = 0.., allow_hyphen_values = true)]
    pub(crate) exec_in: Option<Vec<std::ffi::OsString>>,

    /// The command of --exec or --exec-in, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub(crate) command: Vec<std::ffi::OsString>,

    /// Hooks running at once, for different namespaces (those for one
    /// namespace always run one after the other, in event order).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) jobs: u16,

    /// Kill a hook (and its process group) still running after SECS.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub(crate) hook_timeout: Option<Duration>,
}

/// When a name counts, and how mounts are followed.
#[derive(Debug, clap::Args)]
pub(crate) struct Mode {
    /// Report a name as soon as its file appears, as `ip netns monitor`
    /// does (before the namespace is mounted, and for placeholders too).
    #[arg(long)]
    pub(crate) immediate: bool,

    /// How to follow mounts (default: the best that works here).
    #[arg(long, value_name = "SOURCE", value_enum, conflicts_with = "immediate")]
    pub(crate) mount_source: Option<SourceArg>,
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

/// The mount sources, as the command line names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SourceArg {
    /// fanotify mount events (Linux 6.15+, CAP_SYS_ADMIN).
    Fanotify,
    /// Changes of /proc/thread-self/mountinfo (works unprivileged).
    Mountinfo,
    /// Re-checks of new entries only (sees no unmount nor re-bind).
    Poll,
}

impl From<SourceArg> for MountSource {
    fn from(arg: SourceArg) -> Self {
        match arg {
            SourceArg::Fanotify => MountSource::Fanotify,
            SourceArg::Mountinfo => MountSource::Mountinfo,
            SourceArg::Poll => MountSource::Poll,
        }
    }
}

/// Accepts only what can be a file name: not empty, not `.` or `..`, no
/// `/`, at most 255 bytes.
fn namespace_name(name: std::ffi::OsString) -> Result<std::ffi::OsString, String> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = name.as_bytes();
    if bytes.is_empty()
        || bytes == b"."
        || bytes == b".."
        || bytes.contains(&b'/')
        || bytes.len() > 255
    {
        return Err(format!(
            "{name:?} cannot name a namespace (a name is 1 to 255 bytes, without '/', and not . or ..)"
        ));
    }
    Ok(name)
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{text:?} is not a usable number of seconds"))
}
