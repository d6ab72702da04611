//! End-to-end tests: the three daemons on the real broker, control database and managed servers.

mod access;
mod api_basics;
mod api_surface;
mod configurations;
mod exposure;
mod faults;
mod hostile_input;
mod lifecycle;
mod openapi;
mod pitr;
mod pitr_refusals;
mod recover;
mod refusals;
mod resize;
mod restore;
mod retention;
mod retention_live;
mod sealed_secrets;
mod two_hosts;
