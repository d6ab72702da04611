//! `{"resize": {"flavorRef": …}}` and `{"resize": {"volume": {"size": N}}}`: Trove's RESIZING
//! task. A flavor resize gives the server the new flavor's memory settings and restarts it; the
//! instance shows the new flavor once the guest reports it running. A volume resize grows the
//! recorded size (it must grow).

use serde_json::Value;
use trove_common::{
    rpc::taskmanager::{FlavorRef, TaskManagerMethod},
    status::InstanceTask,
};
use uuid::Uuid;

use crate::{
    db::{catalog, instances},
    error::{ApiError, ApiResult},
    quota,
    routes::{availability::ensure_available, deadline_in, dispatch::Dispatch},
    state::AppState,
    validate::{self, bad},
};

/// What a resize asks for.
enum Resize {
    Flavor(String),
    Volume(i32),
}

fn parse(v: Option<&Value>) -> ApiResult<Resize> {
    let obj = v.and_then(Value::as_object).ok_or_else(|| {
        bad("Validation error: resize must be an object with 'flavorRef' or 'volume'")
    })?;
    match (obj.get("flavorRef"), obj.get("volume")) {
        (Some(f), None) if obj.len() == 1 => Ok(Resize::Flavor(validate::flavor_ref(Some(f))?)),
        (None, Some(vol)) if obj.len() == 1 => {
            let size = validate::volume_size(Some(vol))?
                .ok_or_else(|| bad("Validation error: resize['volume'] must be an object"))?;
            Ok(Resize::Volume(size))
        }
        _ => Err(bad(
            "Validation error: resize needs exactly one of 'flavorRef' or 'volume'",
        )),
    }
}

pub(super) async fn resize_instance(
    state: &AppState,
    dispatch: Dispatch,
    tenant: &str,
    id: Uuid,
    body: Option<&Value>,
) -> ApiResult<()> {
    let wanted = parse(body)?;
    let mut tx = state.pool.begin().await?;
    let inst = instances::lock(&mut tx, id, Some(tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    ensure_available(&mut tx, &inst).await?;
    let method = match wanted {
        Resize::Flavor(key) => {
            let flavor = catalog::flavor(&mut tx, &key).await?.ok_or_else(|| {
                bad(format!(
                    "Flavor '{}' cannot be found.",
                    validate::printable(&key)
                ))
            })?;
            if flavor.id == inst.flavor_id {
                return Err(bad(format!(
                    "The new flavor {} is the instance's current flavor.",
                    flavor.id
                )));
            }
            // A bigger flavor counts against the project's RAM quota by what it adds.
            let old_ram = catalog::flavor(&mut tx, &inst.flavor_id)
                .await?
                .map_or(0, |f| i64::from(f.ram));
            let more_ram = i64::from(flavor.ram) - old_ram;
            if more_ram > 0 {
                let delta = quota::Amounts {
                    ram: more_ram,
                    ..quota::Amounts::default()
                };
                quota::check(&mut tx, tenant, &state.config.quotas, &delta).await?;
            }
            instances::set_resize_flavor(&mut tx, id, &flavor.id).await?;
            TaskManagerMethod::ResizeFlavor {
                instance_id: id,
                new_flavor: FlavorRef {
                    id: flavor.id,
                    ram: flavor.ram.into(),
                },
            }
        }
        Resize::Volume(size) => {
            let current = inst
                .volume_size
                .ok_or_else(|| bad(format!("Instance {id} has no volume size to grow.")))?;
            if size <= current {
                return Err(bad(format!(
                    "The new volume size {size} must be larger than the current size of {current} GB."
                )));
            }
            // Under the project's quota lock, held until the commit.
            quota::check_volume_growth(
                &mut tx,
                tenant,
                &state.config.quotas,
                i64::from(size - current),
            )
            .await?;
            TaskManagerMethod::ResizeVolume {
                instance_id: id,
                new_size: size,
            }
        }
    };
    let deadline = deadline_in(state.config.task_timeout_secs);
    dispatch
        .start_task(tx, id, InstanceTask::Resizing, deadline, &method)
        .await?;
    tracing::info!(instance.id = %id, "resize accepted");
    Ok(())
}
