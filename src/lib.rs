//! Exact, lossless notifications of Linux named network namespaces
//! appearing and disappearing.
//!
//! Tools such as `ip netns add`, containerd, Podman and Docker name a network
//! namespace by bind-mounting it onto a file in a directory such as
//! `/run/netns`. A [`NamespaceWatcher`] watches such directories and reports
//! every name that appears or goes away as an [`Event`]: never lost (a
//! kernel queue overflow is recovered by a rescan), never reported twice,
//! and in order for each name.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use netns_watch::{Config, Event, NamespaceWatcher};
//!
//! # async fn run() -> netns_watch::Result<()> {
//! let config = Config::with_dirs(["/run/netns", "/run/docker/netns"]);
//! let (present, watcher) = NamespaceWatcher::list_and_watch_with_config(config).await?;
//! for ns in present {
//!     println!("present: {}", ns.path().display());
//! }
//! let mut events = watcher.into_stream();
//! while let Some(event) = events.next().await {
//!     if let Event::Created(ns) = event? {
//!         println!("new: {}", ns.path().display());
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Layers
//!
//! - `inotify` (source): kernel events on the watched directories and
//!   their ancestors, read in batches.
//! - `reconciler` (pure): the state of every directory; turns facts and
//!   rescans into the events that are true transitions.
//! - `watcher`: ties the two together behind [`NamespaceWatcher`].

mod chain;
mod config;
mod error;
mod event;
#[doc(hidden)]
pub mod fuzzing;
mod inotify;
mod mounts;
mod probe;
mod reconciler;
mod retry;
mod scan;
#[cfg(feature = "serde")]
mod serde_impl;
mod watcher;

pub use config::{Config, Readiness, IPROUTE2_DIR};
pub use error::{Error, Result};
pub use event::{Event, Namespace};
pub use mounts::MountSource;
pub use probe::Identity;
pub use watcher::NamespaceWatcher;

/// The examples in README.md, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
