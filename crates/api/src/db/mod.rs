//! Queries the API runs against the control database; callers own the transactions.

pub mod backups;
pub mod catalog;
pub mod configurations;
pub mod instance_detail;
pub mod instances;
pub mod quotas;
pub mod recoveries;
pub mod recovery_history;
pub mod restore_points;
pub mod retention;
pub mod rewind;
pub mod wal;
