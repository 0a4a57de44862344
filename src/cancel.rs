//! A flag that asks long computations to stop early.
//!
//! The command line sets it on Ctrl-C; loops in the numeric core poll it between steps and
//! return a cancellation error. Cloning shares the flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A shared request to stop. Cheap to clone and to poll.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    requested: Arc<AtomicBool>,
}

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Asks every holder of the token to stop.
    pub fn cancel(&self) {
        self.requested.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }
}
