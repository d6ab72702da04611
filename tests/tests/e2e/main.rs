//! End-to-end tests: the three daemons on the real broker, control database and managed servers.

mod access;
mod accounts;
mod all_projects;
mod api_basics;
mod api_surface;
mod cli;
mod cli_operator;
mod configurations;
mod exposure;
mod faults;
mod hostile_input;
mod lifecycle;
mod openapi;
mod operator;
mod pitr;
mod pitr_refusals;
mod quotas;
mod recover;
mod refusals;
mod resize;
mod restore;
mod retention;
mod retention_live;
mod sealed_secrets;
mod targets;
mod two_hosts;
