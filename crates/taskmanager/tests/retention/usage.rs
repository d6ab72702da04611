//! `trove-manage store-usage`: per instance, what its backups and its WAL take in the store.

use anyhow::Result;
use bytes::Bytes;
use trove_common::store::{Usage, layout};
use trove_taskmanager::manage::store_usage::store_usage;

use crate::world::{CHUNK, World};

#[tokio::test]
async fn store_usage_sums_each_instances_backups_and_wal_from_the_listing() -> Result<()> {
    let w = World::start().await?;
    let a = w.instance(100, 1).await?;
    let b = w.instance(100, 1).await?;
    let mut manifests = 0;
    for age in [10, 20] {
        let id = w.backup(a, age, Some("0/2000028"), "0/2000028").await?;
        let manifest = w.store().get(&layout::backup_manifest(id)).await?;
        manifests += manifest.map_or(0, |m| m.len() as u64);
    }
    for segno in 1..=3 {
        w.segment(a, 1, segno).await?;
    }
    w.history(b, 2).await?;
    w.store()
        .put("backups/not-a-backup/x", Bytes::from_static(b"12345"))
        .await?;

    let all = store_usage(&w.h.pool, w.store(), None).await?;

    let of = |id| {
        all.instances
            .iter()
            .find(|i| i.instance_id == id)
            .cloned()
            .expect("every instance is listed")
    };
    // A backup is its archive (8 bytes here) and its manifest.
    assert_eq!(
        of(a).backups,
        Usage {
            objects: 4,
            bytes: 2 * 8 + manifests
        }
    );
    let chunk = CHUNK.len() as u64;
    assert_eq!(
        of(a).wal,
        Usage {
            objects: 6,
            bytes: 3 * chunk
        }
    );
    assert_eq!(of(b).backups, Usage::default());
    assert_eq!(of(b).wal.objects, 1);
    assert_eq!(of(a).state, "live");
    assert_eq!(
        all.unowned,
        Usage {
            objects: 1,
            bytes: 5
        }
    );

    let one = store_usage(&w.h.pool, w.store(), Some(a)).await?;
    assert_eq!(one.instances.len(), 1);
    assert_eq!(one.instances[0], of(a));
    Ok(())
}
