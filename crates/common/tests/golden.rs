//! Golden fixtures pin the wire format of every RPC message: the oslo envelope and each method's
//! args. A change that alters what goes on the bus fails here and needs a deliberate fixture
//! update (`UPDATE_GOLDEN=1 cargo test -p trove-common --test golden`).

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use serde_json::Value;
use trove_common::{
    access::Access,
    accounts::{AccountOp, AccountUser, Accounts, NewAccountUser},
    recovery::{RecoveryOutcome, RecoveryProgress, RecoveryTarget, StopPoint, WalTimeline},
    rpc::{
        Method, RequestContext, RpcMessage,
        conductor::{ConductorMethod, GuestErrorCode, HeartbeatPayload},
        guest::{BackupLocation, GuestMethod, TakeBackupInfo},
        taskmanager::{DatabaseSpec, FlavorRef, NewBackupInfo, TaskManagerMethod, UserSpec},
    },
    secrets::{PublicKey, Sealed},
    status::{BackupState, RecoveryPhase, RecoveryState},
};
use uuid::Uuid;

/// A sealed password's wire form; the bytes are arbitrary (sealing is randomised), the shape is
/// what the fixtures pin.
fn sealed() -> Sealed {
    Sealed::from_base64(
        "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8",
    )
    .expect("valid shape")
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn context() -> RequestContext {
    RequestContext {
        request_id: Some("req-00000000-0000-0000-0000-000000000001".into()),
        project_id: Some("tenant-a".into()),
        user: Some("alice".into()),
        is_admin: false,
        roles: vec!["member".into()],
        guest_host: None,
    }
}

fn encode<M: Method>(m: &M, ctx: RequestContext) -> Value {
    let mut msg = RpcMessage::new(m, ctx);
    msg.unique_id = "00000000000000000000000000000abc".into();
    let outer: Value = serde_json::from_slice(&msg.encode()).expect("envelope is JSON");
    assert_eq!(outer["oslo.version"], "2.0");
    let inner: Value = serde_json::from_str(
        outer["oslo.message"]
            .as_str()
            .expect("inner is a JSON string"),
    )
    .expect("inner is JSON");
    // Round trip: what we send, we can read back as the same method.
    let back = RpcMessage::decode(&msg.encode()).expect("decodes");
    assert_eq!(back.parse::<M>().expect("parses").to_parts(), m.to_parts());
    inner
}

fn check(name: &str, inner: Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let text = serde_json::to_string_pretty(&inner).expect("serializes") + "\n";
        std::fs::write(&path, text).expect("writes fixture");
        return;
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("missing fixture {}: {e}", path.display()));
    let want: Value = serde_json::from_str(&text).expect("fixture is JSON");
    assert_eq!(inner, want, "wire format of {name} changed");
}

fn at() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 17, 0, 0)
        .single()
        .expect("valid time")
}

#[test]
fn taskmanager_messages_match_their_fixtures() {
    let cases: Vec<(&str, TaskManagerMethod)> = vec![
        (
            "taskmanager.create_instance",
            TaskManagerMethod::CreateInstance {
                instance_id: id(1),
                name: "pg1".into(),
                flavor: FlavorRef {
                    id: "1".into(),
                    ram: 512,
                },
                datastore_manager: "postgresql".into(),
                ds_version: "15".into(),
                volume_size: Some(1),
                backup_id: Some(id(2)),
                databases: vec![DatabaseSpec {
                    name: "appdb".into(),
                }],
                users: vec![UserSpec {
                    name: "app".into(),
                    password: sealed(),
                    databases: vec![DatabaseSpec {
                        name: "appdb".into(),
                    }],
                }],
                restore_target: Some(RecoveryTarget::new(StopPoint::Time(at()), 2, id(3))),
            },
        ),
        (
            "taskmanager.delete_instance",
            TaskManagerMethod::DeleteInstance { instance_id: id(1) },
        ),
        (
            "taskmanager.restart",
            TaskManagerMethod::Restart { instance_id: id(1) },
        ),
        (
            "taskmanager.create_backup",
            TaskManagerMethod::CreateBackup {
                backup_info: NewBackupInfo {
                    id: id(2),
                    name: "b1".into(),
                    instance_id: id(1),
                    backup_type: "full".into(),
                    datastore: "postgresql".into(),
                    datastore_version: "15".into(),
                },
                instance_id: id(1),
            },
        ),
        (
            "taskmanager.delete_backup",
            TaskManagerMethod::DeleteBackup { backup_id: id(2) },
        ),
        (
            "taskmanager.do_instance_recovery",
            TaskManagerMethod::DoInstanceRecovery {
                instance_id: id(1),
                backup_id: id(2),
                recovery_id: id(4),
            },
        ),
        (
            "taskmanager.settle_preview",
            TaskManagerMethod::SettlePreview {
                instance_id: id(1),
                recovery_id: id(4),
            },
        ),
        (
            "taskmanager.update_access",
            TaskManagerMethod::UpdateAccess {
                instance_id: id(1),
                access: access(),
            },
        ),
        (
            "taskmanager.update_configuration",
            TaskManagerMethod::UpdateConfiguration {
                instance_id: id(1),
                revision: 3,
            },
        ),
        (
            "taskmanager.resize_flavor",
            TaskManagerMethod::ResizeFlavor {
                instance_id: id(1),
                new_flavor: FlavorRef {
                    id: "2".into(),
                    ram: 2048,
                },
            },
        ),
        (
            "taskmanager.resize_volume",
            TaskManagerMethod::ResizeVolume {
                instance_id: id(1),
                new_size: 4,
            },
        ),
        (
            "taskmanager.apply_accounts",
            TaskManagerMethod::ApplyAccounts {
                instance_id: id(1),
                op_id: id(9),
            },
        ),
    ];
    for (name, m) in cases {
        check(name, encode(&m, context()));
    }
}

fn access() -> Access {
    Access {
        is_public: false,
        allowed_cidrs: vec![
            "10.0.0.0/8".parse().expect("cidr"),
            "2001:db8::/32".parse().expect("cidr"),
        ],
    }
}

#[test]
fn guest_messages_match_their_fixtures() {
    let location = BackupLocation {
        id: id(2),
        location: "00000000-0000-0000-0000-000000000002/base.tar.zst".into(),
        backup_type: "full".into(),
        checksum: "ab".repeat(32),
    };
    let cases: Vec<(&str, GuestMethod)> = vec![
        (
            "guest.prepare",
            GuestMethod::Prepare {
                instance_id: id(1),
                memory_mb: 512,
                databases: vec![DatabaseSpec {
                    name: "appdb".into(),
                }],
                users: vec![UserSpec {
                    name: "app".into(),
                    password: sealed(),
                    databases: vec![DatabaseSpec {
                        name: "appdb".into(),
                    }],
                }],
                backup_info: Some(location.clone()),
                ds_version: "15".into(),
                restore_target: None,
                access: None,
                overrides: Default::default(),
            },
        ),
        (
            "guest.prepare_with_access",
            GuestMethod::Prepare {
                instance_id: id(1),
                memory_mb: 512,
                databases: vec![],
                users: vec![],
                backup_info: None,
                ds_version: "15".into(),
                restore_target: None,
                access: Some(access()),
                overrides: Default::default(),
            },
        ),
        (
            "guest.update_access",
            GuestMethod::UpdateAccess { access: access() },
        ),
        (
            "guest.update_overrides",
            GuestMethod::UpdateOverrides {
                overrides: [
                    ("max_connections".to_owned(), serde_json::json!(150)),
                    ("work_mem".to_owned(), serde_json::json!("8MB")),
                ]
                .into_iter()
                .collect(),
                revision: 3,
            },
        ),
        (
            "guest.resize_flavor",
            GuestMethod::ResizeFlavor { memory_mb: 2048 },
        ),
        (
            "guest.apply_accounts",
            GuestMethod::ApplyAccounts {
                op_id: id(9),
                op: AccountOp::CreateUsers {
                    users: vec![NewAccountUser {
                        name: "bob".into(),
                        password: sealed(),
                        databases: vec!["sales".into()],
                    }],
                },
            },
        ),
        (
            "guest.create_backup",
            GuestMethod::CreateBackup {
                backup_info: TakeBackupInfo {
                    id: id(2),
                    name: "b1".into(),
                    backup_type: "full".into(),
                },
            },
        ),
        ("guest.restart", GuestMethod::Restart {}),
        ("guest.delete_instance", GuestMethod::DeleteInstance {}),
        (
            "guest.do_recovery",
            GuestMethod::DoRecovery {
                recovery_id: id(4),
                backup_info: location.clone(),
                target: None,
                preview: false,
            },
        ),
        (
            "guest.do_recovery_to_time",
            GuestMethod::DoRecovery {
                recovery_id: id(4),
                backup_info: location.clone(),
                target: Some(RecoveryTarget::new(StopPoint::Time(at()), 1, id(1))),
                preview: false,
            },
        ),
        (
            "guest.do_recovery_preview",
            GuestMethod::DoRecovery {
                recovery_id: id(4),
                backup_info: location,
                target: Some(RecoveryTarget::new(StopPoint::Time(at()), 1, id(1))),
                preview: true,
            },
        ),
        (
            "guest.confirm_preview",
            GuestMethod::ConfirmPreview { recovery_id: id(4) },
        ),
        (
            "guest.cancel_preview",
            GuestMethod::CancelPreview { recovery_id: id(4) },
        ),
        (
            "guest.move_preview",
            GuestMethod::MovePreview {
                recovery_id: id(4),
                move_seq: 1,
                target: RecoveryTarget::new(StopPoint::Lsn(0x600_0200), 1, id(1)),
            },
        ),
    ];
    for (name, m) in cases {
        check(name, encode(&m, context()));
    }
}

#[test]
fn conductor_messages_match_their_fixtures() {
    let guest = RequestContext {
        guest_host: Some("host-1".into()),
        ..Default::default()
    };
    let cases: Vec<(&str, ConductorMethod)> = vec![
        (
            "conductor.heartbeat",
            ConductorMethod::Heartbeat {
                instance_id: id(1),
                payload: HeartbeatPayload {
                    service_status: "healthy".into(),
                    address: Some("127.0.0.1".into()),
                    port: Some(5433),
                    error: None,
                    completes: None,
                    accounts: None,
                    volume_used_bytes: None,
                    rewind: None,
                },
                sent: 1764090000.123456,
            },
        ),
        (
            "conductor.update_backup",
            ConductorMethod::UpdateBackup {
                instance_id: id(1),
                backup_id: id(2),
                sent: 1764090000.5,
                state: BackupState::Completed,
                size: Some(0.004),
                checksum: Some("ab".repeat(32)),
                location: Some("00000000-0000-0000-0000-000000000002/base.tar.zst".into()),
                backup_type: Some("full".into()),
                success: Some(true),
                start_lsn: Some("0/2000028".into()),
                stop_lsn: Some("0/2000100".into()),
                stop_time: Some(at()),
                timeline: Some(1),
                error: None,
            },
        ),
        (
            "conductor.update_recovery",
            ConductorMethod::UpdateRecovery {
                instance_id: id(1),
                recovery_id: id(4),
                sent: 1764090001.0,
                phase: RecoveryPhase::Verifying,
                state: RecoveryState::Failed,
                progress: None,
                error: Some("checksum mismatch".into()),
                error_code: Some(GuestErrorCode::ChecksumMismatch),
                outcome: None,
                preview: None,
                move_seq: None,
            },
        ),
        (
            "conductor.update_recovery_running",
            ConductorMethod::UpdateRecovery {
                instance_id: id(1),
                recovery_id: id(4),
                sent: 1764090001.0,
                phase: RecoveryPhase::Replaying,
                state: RecoveryState::Running,
                progress: Some(RecoveryProgress {
                    bytes_done: Some(1024),
                    bytes_total: Some(1024),
                    replayed_lsn: Some("0/5000100".into()),
                    target_lsn: None,
                    store_end_lsn: Some("0/7000100".into()),
                }),
                error: None,
                error_code: None,
                outcome: None,
                preview: None,
                move_seq: None,
            },
        ),
        (
            "conductor.update_recovery_completed",
            ConductorMethod::UpdateRecovery {
                instance_id: id(1),
                recovery_id: id(4),
                sent: 1764090001.5,
                phase: RecoveryPhase::Done,
                state: RecoveryState::Completed,
                progress: None,
                error: None,
                error_code: None,
                outcome: Some(RecoveryOutcome {
                    new_timeline: Some(3),
                    last_replayed_commit: Some(at()),
                    stop_lsn: Some("0/6000200".into()),
                    duration_ms: Some(4250),
                    downtime_ms: None,
                    source: None,
                    rewind_skipped: None,
                }),
                preview: None,
                move_seq: None,
            },
        ),
        (
            "conductor.update_recovery_preview",
            ConductorMethod::UpdateRecovery {
                instance_id: id(1),
                recovery_id: id(4),
                sent: 1764090001.5,
                phase: RecoveryPhase::Preview,
                state: RecoveryState::Preview,
                progress: None,
                error: None,
                error_code: None,
                outcome: None,
                preview: Some(trove_common::rpc::conductor::PreviewReady {
                    port: 54321,
                    stop_lsn: None,
                    last_commit: None,
                }),
                move_seq: None,
            },
        ),
        (
            "conductor.update_recovery_preview_moved",
            ConductorMethod::UpdateRecovery {
                instance_id: id(1),
                recovery_id: id(4),
                sent: 1764090001.5,
                phase: RecoveryPhase::Preview,
                state: RecoveryState::Preview,
                progress: None,
                error: None,
                error_code: None,
                outcome: None,
                preview: Some(trove_common::rpc::conductor::PreviewReady {
                    port: 54321,
                    stop_lsn: Some("0/6000200".into()),
                    last_commit: Some(at()),
                }),
                move_seq: Some(1),
            },
        ),
        (
            "conductor.host_heartbeat",
            ConductorMethod::HostHeartbeat {
                host: "host-1".into(),
                address: "127.0.0.1".into(),
                capacity: None,
                sent: 1764090002.0,
                // The X25519 base point: a valid key, fixed for the fixture.
                public_key: Some(
                    "CQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
                        .parse::<PublicKey>()
                        .expect("valid key"),
                ),
            },
        ),
        (
            "conductor.update_wal",
            ConductorMethod::UpdateWal {
                instance_id: id(1),
                sent: 1764090003.0,
                current_timeline: 2,
                timelines: vec![WalTimeline {
                    timeline: 2,
                    parent: Some(1),
                    switch_lsn: Some("0/5000000".into()),
                    first_segment: Some("000000020000000000000005".into()),
                    last_segment: Some("000000020000000000000007".into()),
                    gaps: vec![],
                    latest_commit: Some(at()),
                    latest_lsn: Some("0/7000100".into()),
                }],
            },
        ),
        (
            "conductor.instance_deleted",
            ConductorMethod::InstanceDeleted {
                instance_id: id(1),
                sent: 1764090004.0,
            },
        ),
        (
            "conductor.update_access",
            ConductorMethod::UpdateAccess {
                instance_id: id(1),
                sent: 1764090005.0,
                access: access(),
                error: None,
            },
        ),
        (
            "conductor.update_access_failed",
            ConductorMethod::UpdateAccess {
                instance_id: id(1),
                sent: 1764090005.0,
                access: access(),
                error: Some("reloading the server configuration failed".into()),
            },
        ),
        (
            "conductor.overrides_applied",
            ConductorMethod::OverridesApplied {
                instance_id: id(1),
                sent: 1764090006.0,
                revision: 3,
                restart_required: true,
                error: None,
            },
        ),
        (
            "conductor.accounts_applied",
            ConductorMethod::AccountsApplied {
                instance_id: id(1),
                op_id: id(9),
                sent: 1764090007.0,
                error: None,
                accounts: Some(Accounts {
                    databases: vec!["appdb".into(), "sales".into()],
                    users: vec![AccountUser {
                        name: "bob".into(),
                        databases: vec!["sales".into()],
                    }],
                }),
            },
        ),
    ];
    for (name, m) in cases {
        check(name, encode(&m, guest.clone()));
    }
}

#[test]
fn a_trove_style_message_with_unknown_context_keys_decodes() {
    // As Trove sends it (docs/architecture.md, "Message bus" → "Wire format"), plus a method of ours.
    let inner = serde_json::json!({
        "method": "delete_instance", "args": {"instance_id": "9c363d4c-8418-484d-b77c-43b85fac3c69"},
        "version": "1.0", "_unique_id": "14b8990b5ea34a5caf53f448d0d29225",
        "_context_user": "user1", "_context_project_id": "tenant1", "_context_is_admin": false,
        "_context_auth_token": "gAAAAB-token", "_context_request_id": "req-1", "_context_roles": [],
        "_context_service_catalog": null,
    });
    let body = serde_json::json!({"oslo.version": "2.0", "oslo.message": inner.to_string()});
    let msg = RpcMessage::decode(body.to_string().as_bytes()).expect("decodes");
    assert_eq!(msg.context.project_id.as_deref(), Some("tenant1"));
    assert_eq!(msg.context.request_id.as_deref(), Some("req-1"));
    assert_eq!(
        msg.parse::<TaskManagerMethod>().expect("parses"),
        TaskManagerMethod::DeleteInstance {
            instance_id: Uuid::parse_str("9c363d4c-8418-484d-b77c-43b85fac3c69").expect("uuid")
        }
    );
}

#[test]
fn garbage_is_rejected_not_panicked_on() {
    for body in [
        &b"not json"[..],
        br#"{"oslo.version": "2.0"}"#,
        br#"{"oslo.message": "{\"args\": {}}"}"#,
        br#"{"oslo.message": "[1]"}"#,
    ] {
        assert!(RpcMessage::decode(body).is_err());
    }
    let ok = serde_json::json!({"oslo.message": serde_json::json!({"method": "delete_instance", "args": {"instance_id": 7}}).to_string()});
    let msg = RpcMessage::decode(ok.to_string().as_bytes()).expect("envelope decodes");
    assert!(msg.parse::<TaskManagerMethod>().is_err());
    let unknown = serde_json::json!({"oslo.message": serde_json::json!({"method": "drop_everything", "args": {}}).to_string()});
    let msg = RpcMessage::decode(unknown.to_string().as_bytes()).expect("envelope decodes");
    assert!(msg.parse::<TaskManagerMethod>().is_err());
}

#[test]
fn a_host_heartbeat_of_an_older_guest_with_a_capacity_still_parses() {
    // Older guests announced their own capacity; the field is read and then ignored.
    let inner = serde_json::json!({
        "method": "host_heartbeat", "version": "1.0", "_unique_id": "1",
        "args": {"host": "host-1", "address": "127.0.0.1", "capacity": 20, "sent": 1764090002.0},
    });
    let body = serde_json::json!({"oslo.version": "2.0", "oslo.message": inner.to_string()});
    let msg = RpcMessage::decode(body.to_string().as_bytes()).expect("decodes");
    assert!(matches!(
        msg.parse::<ConductorMethod>().expect("parses"),
        ConductorMethod::HostHeartbeat {
            capacity: Some(20),
            ..
        }
    ));
}

#[test]
fn a_password_in_clear_does_not_parse_and_is_not_echoed() {
    // What a sender predating sealed secrets (or a forger) would put on the bus.
    for (method, args) in [
        (
            "prepare",
            serde_json::json!({"instance_id": id(1), "memory_mb": 512, "ds_version": "15",
                "backup_info": null, "users": [{"name": "app", "password": "hunter2-clear"}]}),
        ),
        (
            "create_instance",
            serde_json::json!({"instance_id": id(1), "name": "pg1",
                "flavor": {"id": "1", "ram": 512}, "datastore_manager": "postgresql",
                "ds_version": "15", "volume_size": 1, "backup_id": null,
                "users": [{"name": "app", "password": "hunter2-clear"}]}),
        ),
    ] {
        let inner = serde_json::json!({"method": method, "args": args, "version": "1.0"});
        let body = serde_json::json!({"oslo.version": "2.0", "oslo.message": inner.to_string()});
        let msg = RpcMessage::decode(body.to_string().as_bytes()).expect("envelope decodes");
        let err = if method == "prepare" {
            msg.parse::<GuestMethod>().map(|_| ()).expect_err("refused")
        } else {
            msg.parse::<TaskManagerMethod>()
                .map(|_| ())
                .expect_err("refused")
        }
        .to_string();
        assert!(err.contains("clear text is refused"), "{method}: {err}");
        assert!(!err.contains("hunter2"), "{method}: {err}");
    }
}
