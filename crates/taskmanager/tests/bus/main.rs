//! The bus as a hostile guest host sees it, on the real RabbitMQ and PostgreSQL: what two hosts'
//! own broker credentials (issued by `host-add`) let them do, what the conductor accepts from
//! them, and how failing messages and future timestamps are kept from stalling it.

mod accounts;
mod identity;
mod listings;
mod poison;
mod support;
