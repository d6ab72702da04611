//! Contracts shared by the trove-rs daemons: statuses, RPC messages, the AMQP wrapper, config and telemetry.

pub mod amqp;
pub mod config;
pub mod db;
pub mod outbox;
pub mod rpc;
pub mod schema;
pub mod shutdown;
pub mod status;
pub mod telemetry;
pub mod timefmt;
