//! Log set-up shared by the daemons: `RUST_LOG`-style filter, plain text to stderr.

use tracing_subscriber::EnvFilter;

/// Silences the one log line of lapin that prints a whole message.
const NO_MESSAGE_BODIES: &str = "lapin::returned_messages=off";

/// Installs the global subscriber; `default_filter` applies when `RUST_LOG` is unset.
pub fn init(default_filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_filter))
        // lapin logs a returned message whole, body included, at WARN; a body may carry sealed
        // secrets and tenant names, so it never reaches a log, whatever RUST_LOG asks for.
        .add_directive(NO_MESSAGE_BODIES.parse().expect("a valid directive"));
    // A second init (tests start several daemons in one process) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_message_body_directive_parses() {
        assert!(
            super::NO_MESSAGE_BODIES
                .parse::<tracing_subscriber::filter::Directive>()
                .is_ok()
        );
    }
}
