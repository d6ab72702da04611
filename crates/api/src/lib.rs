//! trove-api: the Trove v1.0 REST API. Handlers persist, enqueue and answer; they never wait on
//! another daemon.

pub mod account_ops;
pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod instance_status;
pub mod limits;
pub mod path_params;
pub mod quota;
pub mod recovery_eta;
pub mod recovery_request;
pub mod recovery_window;
pub mod request_id;
pub mod retention;
pub mod routes;
pub mod state;
pub mod validate;
pub mod views;

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::{Router, extract::DefaultBodyLimit, middleware};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use trove_common::{amqp::Bus, db as control_db, schema};

use crate::{auth::Tokens, config::ApiConfig, error::ApiError, state::AppState};

/// The whole HTTP surface, callable without a socket; built from [`routes::public`] and
/// [`routes::tenant`], the table the OpenAPI document is checked against.
pub fn router(state: AppState) -> Router {
    // The last layer added runs first: the token check, then the path segments.
    let tenant_routes = routes::tenant()
        .into_router()
        .route_layer(middleware::from_fn(path_params::check))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .merge(routes::public().into_router())
        .merge(tenant_routes)
        .fallback(|| async { ApiError::NotFound("The resource could not be found.".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::BadMethod("The method is not allowed for the requested URL.".into())
        })
        .layer(DefaultBodyLimit::max(limits::BODY_BYTES))
        .layer(middleware::from_fn(request_id::assign))
        .with_state(state)
}

/// Runs the API on `listener` until `shutdown` is cancelled.
pub async fn run(
    config: ApiConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    config.validate()?;
    let tokens = Tokens::load(&config.token_file)?;
    // One round trip per read: no ping before each use of a pooled connection.
    let pool = control_db::connect_unpinged(&config.database).await?;
    schema::ensure_current(&pool).await?;
    let bus = Bus::connect(&config.amqp).await?;
    let state = AppState {
        pool: pool.clone(),
        bus,
        tokens: Arc::new(tokens),
        config: Arc::new(config),
    };
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "trove-api listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("serving HTTP")?;
    pool.close().await;
    Ok(())
}
