//! The recovery settings a restored data directory starts with (`recovery.signal` plus
//! `trove-recovery.conf`): replay to the end of the backup, or on to a point in time. The settings
//! live in their own file so that promotion can drop them; left behind, a later `recovery.signal`
//! would reuse them.

use std::path::Path;

use anyhow::Result;
use trove_common::recovery::{StopPoint, format_lsn};

use super::cluster::Cluster;
use super::config::{self, RECOVERY_CONF, conf_string};
use super::os_user::write_owned;
use super::request::Replay;
use super::restore_command::{shell_quote, write_script};

/// Recovery settings for "replay the backup's own WAL, then become a primary on a new timeline".
/// - `restore_command = 'false'`: PostgreSQL 15 refuses targeted recovery without one; the WAL we
///   need is already in the backup's `pg_wal`, and `false` reports every other file as absent.
/// - `recovery_target = 'immediate'`: stop as soon as the copy is consistent (end of backup).
/// - `recovery_target_action = 'promote'`: the default, `pause`, leaves a read-only server.
/// - `recovery_target_timeline = 'current'`: the backup's own timeline. The default, `latest`,
///   would try to follow the newest history file in `pg_wal`, which after an in-place recovery
///   carried the live instance's history over may be a branch the backup is not part of.
const RECOVERY_SETTINGS: &str = "\
# Written by the Trove guest agent for one recovery; removed once the server is promoted.
restore_command = 'false'
recovery_target = 'immediate'
recovery_target_action = 'promote'
recovery_target_timeline = 'current'
";

/// Makes a freshly restored data directory recover to the end of the backup on its next start:
/// writes `recovery.signal` and `trove-recovery.conf`. The settings live in their own file so that
/// [`finish_recovery`] can drop them; left behind, a later `recovery.signal` would reuse them.
pub(super) async fn write_backup_end_settings(cluster: &Cluster) -> Result<()> {
    write_backup_end(cluster, RECOVERY_SETTINGS).await
}

/// As [`write_backup_end_settings`], but for a preview: the copy pauses once consistent, read-only,
/// instead of promoting, until the preview is confirmed.
pub(super) async fn write_backup_end_pause_settings(cluster: &Cluster) -> Result<()> {
    write_backup_end(cluster, &backup_end_pause_settings()).await
}

fn backup_end_pause_settings() -> String {
    RECOVERY_SETTINGS.replace(
        "recovery_target_action = 'promote'",
        "recovery_target_action = 'pause'",
    )
}

async fn write_backup_end(cluster: &Cluster, settings: &str) -> Result<()> {
    let data_dir = &cluster.spec().data_dir;
    let owner = cluster.runner().owner();
    config::ensure_includes(data_dir, owner).await?;
    write_owned(
        &data_dir.join(RECOVERY_CONF),
        settings.as_bytes(),
        0o600,
        owner,
    )
    .await?;
    write_owned(&data_dir.join("recovery.signal"), b"", 0o600, owner).await?;
    Ok(())
}

/// The `recovery_target_*` lines for `stop`; none for "latest". Every kind pauses at its target so
/// the stop point can be checked before promotion (P8). The values are numbers the guest formats
/// itself (a time, `X/Y`, a 32-bit xid), never text from a request.
fn target_settings(stop: StopPoint) -> String {
    let (target, inclusive) = match stop {
        StopPoint::Latest => return String::new(),
        StopPoint::Time(time) => (
            format!(
                "recovery_target_time = '{}'",
                time.format("%Y-%m-%d %H:%M:%S%.6f+00")
            ),
            true,
        ),
        StopPoint::Lsn(lsn) => (format!("recovery_target_lsn = '{}'", format_lsn(lsn)), true),
        StopPoint::Xid { xid, inclusive } => (format!("recovery_target_xid = '{xid}'"), inclusive),
        // The name is narrow (letters, digits, `_.-`), and quoted all the same.
        StopPoint::RestorePoint { name, .. } => (
            format!("recovery_target_name = {}", conf_string(name.as_str())),
            true,
        ),
    };
    format!(
        "{target}\nrecovery_target_inclusive = {}\nrecovery_target_action = 'pause'\n",
        if inclusive { "on" } else { "off" }
    )
}

/// `recovery.signal` plus `trove-recovery.conf` for this target (docs/postgres-recovery.md §3.3):
/// - the target time is written in UTC with an explicit offset, so the server's `timezone` cannot
///   shift it (P4), and the log prints times in UTC for `replay::verify_stop_line`;
/// - `pause` at the target, so the stop point can be checked before promotion (P8);
/// - the timeline is explicit, so a recovery follows the lineage the caller chose (§3.4).
pub(super) async fn write_target_settings(
    restored: &Cluster,
    replay: &Replay<'_>,
    fetch_root: &Path,
) -> Result<()> {
    let data_dir = &restored.spec().data_dir;
    let owner = restored.runner().owner();
    config::ensure_includes(data_dir, owner).await?;
    let script = write_script(restored.runner(), data_dir, fetch_root).await?;
    let command = format!("{} \"%f\" \"%p\"", shell_quote(&script.to_string_lossy()));
    let mut settings = format!(
        "# Written by the Trove guest agent for one point-in-time recovery; removed at promotion.\n\
         restore_command = {command}\n\
         recovery_target_timeline = '{tli}'\n\
         timezone = 'UTC'\n\
         log_timezone = 'UTC'\n",
        command = conf_string(&command),
        tli = replay.timeline,
    );
    settings.push_str(&target_settings(replay.stop));
    write_owned(
        &data_dir.join(RECOVERY_CONF),
        settings.as_bytes(),
        0o600,
        owner,
    )
    .await?;
    write_owned(&data_dir.join("recovery.signal"), b"", 0o600, owner).await
}

/// The settings of a preview paused at `stop` on `timeline`, with `restore_command = 'false'`: the
/// fetch script and its directory go once the target is reached, but promotion still asks the
/// command for newer timeline histories, and `false` answers "none" (PostgreSQL 15 re-reads
/// `restore_command` on reload, also while paused).
pub(super) async fn write_paused_settings(
    restored: &Cluster,
    stop: StopPoint,
    timeline: u32,
) -> Result<()> {
    let data_dir = &restored.spec().data_dir;
    let owner = restored.runner().owner();
    write_owned(
        &data_dir.join(RECOVERY_CONF),
        paused_settings(stop, timeline).as_bytes(),
        0o600,
        owner,
    )
    .await
}

/// `recovery.signal` plus the settings of a replay on to `stop` along `timeline` from WAL already
/// in `pg_wal` (a rewind from the delayed copy): `restore_command = 'false'`, so PostgreSQL reads
/// `pg_wal` alone, and a pause at the target as for every target. Any standby settings the copy
/// ran with are replaced, and its `standby.signal` goes: this is a targeted recovery now.
pub(super) async fn write_local_target_settings(
    restored: &Cluster,
    stop: StopPoint,
    timeline: u32,
) -> Result<()> {
    let data_dir = &restored.spec().data_dir;
    let owner = restored.runner().owner();
    config::ensure_includes(data_dir, owner).await?;
    write_owned(
        &data_dir.join(RECOVERY_CONF),
        paused_settings(stop, timeline).as_bytes(),
        0o600,
        owner,
    )
    .await?;
    super::os_user::remove_file_if_exists(&data_dir.join("standby.signal")).await?;
    write_owned(&data_dir.join("recovery.signal"), b"", 0o600, owner).await
}

fn paused_settings(stop: StopPoint, timeline: u32) -> String {
    let mut settings = format!(
        "# Written by the Trove guest agent for a preview paused at its target; removed at promotion.\n\
         restore_command = 'false'\n\
         recovery_target_timeline = '{timeline}'\n\
         timezone = 'UTC'\n\
         log_timezone = 'UTC'\n"
    );
    settings.push_str(&target_settings(stop));
    settings
}

/// Whether `restored`'s recovery settings already name `stop` (as [`write_target_settings`] or
/// [`write_paused_settings`] wrote them): a move that an agent restart interrupted after the
/// server was given its new target.
pub(super) async fn names_target(restored: &Cluster, stop: StopPoint) -> bool {
    let path = restored.spec().data_dir.join(RECOVERY_CONF);
    match tokio::fs::read_to_string(&path).await {
        Ok(text) => settings_name(&text, stop),
        Err(_) => false,
    }
}

fn settings_name(text: &str, stop: StopPoint) -> bool {
    let target = target_settings(stop);
    !target.is_empty() && text.contains(&target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_pauses_where_a_recovery_would_promote() {
        let pause = backup_end_pause_settings();
        assert!(pause.contains("recovery_target_action = 'pause'\n"));
        assert!(!pause.contains("'promote'"));
        assert!(pause.contains("recovery_target = 'immediate'\n"));
        let paused = paused_settings(StopPoint::Lsn(0x300_0028), 2);
        assert!(paused.contains("restore_command = 'false'\n"));
        assert!(paused.contains("recovery_target_timeline = '2'\n"));
        assert!(paused.ends_with(
            "recovery_target_lsn = '0/3000028'\nrecovery_target_inclusive = on\nrecovery_target_action = 'pause'\n"
        ));
    }

    #[test]
    fn settings_name_the_target_they_pause_at() {
        let paused = paused_settings(StopPoint::Lsn(0x300_0028), 2);
        assert!(settings_name(&paused, StopPoint::Lsn(0x300_0028)));
        assert!(!settings_name(&paused, StopPoint::Lsn(0x300_0029)));
        assert!(!settings_name(&paused, StopPoint::Latest));
        assert!(!settings_name(
            &backup_end_pause_settings(),
            StopPoint::Lsn(0x300_0028)
        ));
    }

    #[test]
    fn each_target_kind_pauses_at_its_own_setting() {
        assert_eq!(target_settings(StopPoint::Latest), "");
        assert_eq!(
            target_settings(StopPoint::Lsn(0x1_0300_0028)),
            "recovery_target_lsn = '1/3000028'\nrecovery_target_inclusive = on\nrecovery_target_action = 'pause'\n"
        );
        assert_eq!(
            target_settings(StopPoint::Xid {
                xid: 735,
                inclusive: false
            }),
            "recovery_target_xid = '735'\nrecovery_target_inclusive = off\nrecovery_target_action = 'pause'\n"
        );
        let name = trove_common::restore_point::RestorePointName::parse("pre-v2").expect("name");
        assert!(
            target_settings(StopPoint::RestorePoint { name, lsn: 1 })
                .starts_with("recovery_target_name = 'pre-v2'\n")
        );
    }
}
