//! The bounded re-check of new placeholders, for when no mount source is
//! available ([`MountSource::Poll`](crate::MountSource::Poll)).
//!
//! `ip netns add` mounts the namespace about a millisecond after creating
//! the file; slower tools take longer. A placeholder is checked again after
//! 1, 2, 4, ... ms, doubling up to [`ATTEMPTS`] times (about 8 s in all),
//! and then left alone. Nothing wakes the process when nothing waits.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::reconciler::DirIndex;

/// How many times one placeholder is checked again.
pub(crate) const ATTEMPTS: u32 = 13;

/// One scheduled re-check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Due {
    pub(crate) dir: DirIndex,
    pub(crate) name: OsString,
    pub(crate) attempt: u32,
}

/// Re-checks waiting for their time.
#[derive(Debug, Default)]
pub(crate) struct Retries {
    queue: BTreeMap<(Instant, u64), Due>,
    seq: u64,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Retries {
    /// Schedules check number `attempt` (from 0) of `name`, unless the
    /// attempts are used up.
    pub(crate) fn schedule(&mut self, dir: DirIndex, name: OsString, attempt: u32) {
        if attempt >= ATTEMPTS {
            tracing::debug!(name = ?name, "still a placeholder after every re-check; leaving it");
            return;
        }
        let at = Instant::now() + Duration::from_millis(1 << attempt);
        self.seq += 1;
        self.queue
            .insert((at, self.seq), Due { dir, name, attempt });
    }

    /// Returns the checks whose time has come, arming the timer for the
    /// next one.
    pub(crate) fn poll_due(&mut self, cx: &mut Context<'_>) -> Vec<Due> {
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        match self.queue.keys().next() {
            Some(&(at, _)) => {
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                timer.as_mut().reset(at);
                if timer.as_mut().poll(cx).is_ready() && due.is_empty() {
                    // The deadline passed between the two reads of the
                    // clock: wake again at once.
                    cx.waker().wake_by_ref();
                }
            }
            None => self.timer = None,
        }
        due
    }
}
