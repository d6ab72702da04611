//! What every handler can reach: the pool, the bus, the tokens and the config.

use std::sync::Arc;

use sqlx::PgPool;
use trove_common::amqp::Bus;

use crate::{auth::Tokens, config::ApiConfig};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub bus: Arc<Bus>,
    pub tokens: Arc<Tokens>,
    pub config: Arc<ApiConfig>,
}
