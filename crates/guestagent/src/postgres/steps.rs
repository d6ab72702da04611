//! The phase a recovery or restore is in, reported as it is entered, so that a failure can name
//! the phase it happened in.

use trove_common::{recovery::RecoveryProgress, status::RecoveryPhase};

use super::error::{Failure, RecoveryError};
use super::request::Reporters;

pub(super) struct Steps<'a> {
    current: RecoveryPhase,
    reporters: Reporters<'a>,
}

impl<'a> Steps<'a> {
    pub(super) fn new(reporters: Reporters<'a>) -> Self {
        Self {
            current: RecoveryPhase::Fetching,
            reporters,
        }
    }

    /// Records and reports the phase entered.
    pub(super) fn enter(&mut self, phase: RecoveryPhase) {
        self.current = phase;
        (self.reporters.phase)(phase);
    }

    pub(super) fn progress(&self, progress: RecoveryProgress) {
        (self.reporters.progress)(progress);
    }

    /// Bytes of the archive verified so far.
    pub(super) fn bytes(&self, done: u64, total: u64) {
        self.reporters.bytes(done, total);
    }

    /// The error to report for `failure` in the current phase.
    pub(super) fn failed(&self, what: &'static str, failure: Failure) -> RecoveryError {
        RecoveryError::new(what, self.current, failure)
    }
}
