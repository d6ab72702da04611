//! Captures every daemon's tracing output of a test, at TRACE for trove's crates and DEBUG for
//! the libraries under them, into one file, so a test can search what the daemons would log.
//!
//! The subscriber is global to the process: nextest runs each test in a process of its own, so
//! the file holds exactly the test's stack. Under a runner that shares processes the capture
//! refuses to start rather than silently capture nothing.

use std::{fs::File, path::Path, sync::Mutex};

use anyhow::{Context, Result, anyhow};
use tracing_subscriber::EnvFilter;

const FILTER: &str = "debug,trove_api=trace,trove_taskmanager=trace,trove_guestagent=trace,\
                      trove_common=trace,trove_e2e=trace";

/// Sends all tracing output of this process to `path` from now on.
pub fn capture(path: &Path) -> Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(FILTER))
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .try_init()
        .map_err(|e| {
            anyhow!(
                "log capture needs a process of its own (run the suite with cargo nextest): {e}"
            )
        })
}
