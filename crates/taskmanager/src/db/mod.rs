//! Queries the taskmanager runs; callers own the transactions.

pub mod account_ops;
pub mod backups;
pub mod configurations;
pub mod faults;
pub mod hosts;
pub mod instances;
pub mod recoveries;
pub mod recovery_phases;
pub mod restore_points;
pub mod retention;
pub mod wal_listings;
