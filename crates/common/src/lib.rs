//! Contracts shared by the trove-rs daemons: statuses, RPC messages, the AMQP wrapper, config and telemetry.

pub mod access;
pub mod accounts;
pub mod amqp;
pub mod config;
pub mod db;
pub mod fault;
pub mod outbox;
pub mod overrides;
pub mod recovery;
pub mod restore_point;
pub mod retention;
pub mod rewind;
pub mod rpc;
pub mod schema;
pub mod secrets;
pub mod shutdown;
pub mod status;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod text_enum;
pub mod timefmt;
pub mod wal_activity;
