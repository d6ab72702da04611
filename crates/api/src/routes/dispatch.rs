//! The common ending of a handler that starts work: its message goes into the outbox in the
//! handler's transaction, the transaction commits, and the message is published in the
//! background, so a handler never waits on the broker or the taskmanager.

use std::sync::Arc;

use anyhow::anyhow;
use axum::{extract::FromRequestParts, http::request::Parts};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use trove_common::{
    amqp::Bus,
    outbox,
    rpc::{RequestContext, RpcMessage, taskmanager::TaskManagerMethod, topics},
    status::InstanceTask,
};
use uuid::Uuid;

use crate::{
    auth::Caller,
    db::instances,
    error::{ApiError, ApiResult},
    request_id::RequestId,
    state::AppState,
};

/// A handler's way to the taskmanager: the request's RPC context (who asked, which request) and
/// where its messages are published.
pub struct Dispatch {
    context: RequestContext,
    pool: PgPool,
    bus: Arc<Bus>,
}

impl FromRequestParts<AppState> for Dispatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .ok_or_else(|| anyhow!("no caller: the route is outside the token check"))?;
        let rid = parts
            .extensions
            .get::<RequestId>()
            .ok_or_else(|| anyhow!("no request id: the route is outside its middleware"))?;
        Ok(Self {
            context: RequestContext {
                request_id: Some(rid.0.clone()),
                project_id: Some(caller.project_id.clone()),
                user: caller.user.clone(),
                is_admin: caller.is_admin,
                roles: caller.roles.clone(),
                guest_host: None,
            },
            pool: state.pool.clone(),
            bus: state.bus.clone(),
        })
    }
}

impl Dispatch {
    /// Enqueues `method` with the state change `tx` holds, commits both, and publishes the
    /// message once committed.
    pub async fn send(
        self,
        mut tx: Transaction<'_, Postgres>,
        method: &TaskManagerMethod,
    ) -> ApiResult<()> {
        let msg = RpcMessage::new(method, self.context);
        let oid = outbox::enqueue(&mut tx, topics::TASKMANAGER, &msg).await?;
        tx.commit().await?;
        let (pool, bus) = (self.pool, self.bus);
        tokio::spawn(async move { outbox::flush(&pool, &bus, &[oid]).await });
        Ok(())
    }

    /// Like [`Dispatch::send`] for any number of messages (none: only the commit).
    pub async fn send_all(
        self,
        mut tx: Transaction<'_, Postgres>,
        methods: &[TaskManagerMethod],
    ) -> ApiResult<()> {
        let mut ids = Vec::with_capacity(methods.len());
        for method in methods {
            let msg = RpcMessage::new(method, self.context.clone());
            ids.push(outbox::enqueue(&mut tx, topics::TASKMANAGER, &msg).await?);
        }
        tx.commit().await?;
        if !ids.is_empty() {
            let (pool, bus) = (self.pool, self.bus);
            tokio::spawn(async move { outbox::flush(&pool, &bus, &ids).await });
        }
        Ok(())
    }

    /// Sets `task` on the instance until `deadline`, then sends `method`, which carries it out.
    pub async fn start_task(
        self,
        mut tx: Transaction<'_, Postgres>,
        instance_id: Uuid,
        task: InstanceTask,
        deadline: DateTime<Utc>,
        method: &TaskManagerMethod,
    ) -> ApiResult<()> {
        instances::set_task(&mut tx, instance_id, task, Some(deadline)).await?;
        self.send(tx, method).await
    }
}
