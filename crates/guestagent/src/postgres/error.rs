//! Typed failures of a recovery or restore: each step says what kind of failure it raised, where
//! it happened, and the entry point adds the phase. The `error_code` the control plane shows comes
//! from here, never from the error's text.

use trove_common::{rpc::conductor::GuestErrorCode, status::RecoveryPhase};

/// A failed step: what kind of failure, and the cause chain. Plain `anyhow` errors convert to
/// [`GuestErrorCode::Internal`], so a step that knows better must say so with [`FailAs::fail_as`].
#[derive(Debug, thiserror::Error)]
#[error("{source:#}")]
pub struct Failure {
    pub code: GuestErrorCode,
    pub source: anyhow::Error,
}

impl Failure {
    pub fn new(code: GuestErrorCode, source: anyhow::Error) -> Self {
        Self { code, source }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(source: anyhow::Error) -> Self {
        Self::new(GuestErrorCode::Internal, source)
    }
}

/// Classifies a step's error where it happens.
pub trait FailAs<T> {
    fn fail_as(self, code: GuestErrorCode) -> Result<T, Failure>;
}

impl<T> FailAs<T> for anyhow::Result<T> {
    fn fail_as(self, code: GuestErrorCode) -> Result<T, Failure> {
        self.map_err(|source| Failure::new(code, source))
    }
}

/// A recovery or restore that failed: in which phase, what kind of failure, and why. For an
/// in-place recovery the instance runs its previous data again (the message says if rolling back
/// failed too).
#[derive(Debug, thiserror::Error)]
#[error("{what} failed during phase {phase}: {source:#}")]
pub struct RecoveryError {
    /// `in-place recovery` or `restore of a new instance`.
    pub what: &'static str,
    pub phase: RecoveryPhase,
    pub code: GuestErrorCode,
    pub source: anyhow::Error,
}

impl RecoveryError {
    pub fn new(what: &'static str, phase: RecoveryPhase, failure: Failure) -> Self {
        Self {
            what,
            phase,
            code: failure.code,
            source: failure.source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_comes_from_the_type_not_the_text() {
        // Text that an old text classifier would have read as a start failure stays internal.
        let plain: Failure = anyhow::anyhow!("could not start: health check not found").into();
        assert_eq!(plain.code, GuestErrorCode::Internal);
        for code in GuestErrorCode::ALL {
            let r: anyhow::Result<()> = Err(anyhow::anyhow!("boom"));
            let failure = r.fail_as(*code).expect_err("an error stays an error");
            let err = RecoveryError::new("in-place recovery", RecoveryPhase::Replaying, failure);
            assert_eq!(err.code, *code);
            assert_eq!(
                err.to_string(),
                "in-place recovery failed during phase replaying: boom"
            );
        }
    }
}
