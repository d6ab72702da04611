//! Databases, users, grants and root of a running instance: what a tenant asks for (an
//! [`AccountOp`]) and what the guest reports the server holds ([`Accounts`]). The API checks
//! names; the guest quotes them; the conductor checks the size of what a guest reports.

use serde::{Deserialize, Serialize};

use crate::secrets::Sealed;

/// The name of the instance administrator `root enable` creates (Trove's root user).
pub const ROOT_USER: &str = "root";

/// At most this many databases, users, and databases per user in a report: the guest reports
/// the first ones (by name) of a larger catalog, and a report with more is refused, so a
/// tenant's catalog cannot grow the control database without bound.
pub const MAX_REPORTED: usize = 1000;
/// PostgreSQL's NAMEDATALEN - 1: no reported name can be longer.
pub const MAX_NAME_BYTES: usize = 63;

/// What the server holds, as the guest read it: tenant databases, and login users with the
/// databases they may use (Trove's "access"). The guest's own roles, `root` and the template
/// databases are left out, as Trove leaves out its `ignore_users` and `ignore_dbs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Accounts {
    pub databases: Vec<String>,
    pub users: Vec<AccountUser>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccountUser {
    pub name: String,
    pub databases: Vec<String>,
}

impl Accounts {
    /// Whether a report is small enough to store: bounded counts and name lengths.
    pub fn check(&self) -> Result<(), String> {
        let names = self
            .databases
            .iter()
            .chain(self.users.iter().map(|u| &u.name))
            .chain(self.users.iter().flat_map(|u| u.databases.iter()));
        if self.databases.len() > MAX_REPORTED || self.users.len() > MAX_REPORTED {
            return Err(format!(
                "{} databases and {} users is more than the {MAX_REPORTED} a report may hold",
                self.databases.len(),
                self.users.len()
            ));
        }
        if self.users.iter().any(|u| u.databases.len() > MAX_REPORTED) {
            return Err(format!(
                "a user has access to more than {MAX_REPORTED} databases"
            ));
        }
        for n in names {
            if n.is_empty() || n.len() > MAX_NAME_BYTES || n.contains('\0') {
                return Err(format!(
                    "name '{}' is not a PostgreSQL name",
                    n.chars().take(64).collect::<String>().escape_default()
                ));
            }
        }
        Ok(())
    }

    pub fn user(&self, name: &str) -> Option<&AccountUser> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn has_database(&self, name: &str) -> bool {
        self.databases.iter().any(|d| d == name)
    }
}

/// A user to create or whose password changes. The password is sealed for the message's
/// receiver and bound to the instance and this name (`secrets::user_password_context`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAccountUser {
    pub name: String,
    pub password: Sealed,
    #[serde(default)]
    pub databases: Vec<String>,
}

/// One change a tenant asked for. Trove's `create_database`, `delete_database`, `create_user`,
/// `delete_user`, `update_attributes`, `change_passwords`, `grant_access`, `revoke_access`,
/// `enable_root` and `disable_root`, as one typed message so every change takes the same path:
/// stored by the API, forwarded by the taskmanager, applied by the guest, reported back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccountOp {
    CreateDatabases {
        databases: Vec<String>,
    },
    DeleteDatabase {
        name: String,
    },
    CreateUsers {
        users: Vec<NewAccountUser>,
    },
    DeleteUser {
        name: String,
    },
    /// Rename and/or new password; the password is sealed for the user's final name.
    UpdateUser {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<Sealed>,
    },
    ChangePasswords {
        users: Vec<NewAccountUser>,
    },
    GrantAccess {
        user: String,
        databases: Vec<String>,
    },
    RevokeAccess {
        user: String,
        database: String,
    },
    /// The password is sealed for [`ROOT_USER`].
    EnableRoot {
        password: Sealed,
    },
    DisableRoot {},
}

impl AccountOp {
    /// The sealed passwords the op carries, with the user name each is bound to.
    pub fn sealed_mut(&mut self) -> Vec<(String, &mut Sealed)> {
        match self {
            AccountOp::CreateUsers { users } | AccountOp::ChangePasswords { users } => users
                .iter_mut()
                .map(|u| (u.name.clone(), &mut u.password))
                .collect(),
            AccountOp::UpdateUser {
                name,
                new_name,
                password: Some(p),
            } => vec![(new_name.clone().unwrap_or_else(|| name.clone()), p)],
            AccountOp::EnableRoot { password } => vec![(ROOT_USER.to_string(), password)],
            _ => Vec::new(),
        }
    }

    /// A short name for logs and the op's row.
    pub fn kind(&self) -> &'static str {
        match self {
            AccountOp::CreateDatabases { .. } => "create_databases",
            AccountOp::DeleteDatabase { .. } => "delete_database",
            AccountOp::CreateUsers { .. } => "create_users",
            AccountOp::DeleteUser { .. } => "delete_user",
            AccountOp::UpdateUser { .. } => "update_user",
            AccountOp::ChangePasswords { .. } => "change_passwords",
            AccountOp::GrantAccess { .. } => "grant_access",
            AccountOp::RevokeAccess { .. } => "revoke_access",
            AccountOp::EnableRoot { .. } => "enable_root",
            AccountOp::DisableRoot {} => "disable_root",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_bounded() {
        let mut a = Accounts {
            databases: vec!["app".into()],
            users: vec![AccountUser {
                name: "u".into(),
                databases: vec!["app".into()],
            }],
        };
        assert!(a.check().is_ok());
        a.databases.push("x".repeat(64));
        assert!(a.check().is_err());
        a.databases.pop();
        a.users[0].databases = (0..=MAX_REPORTED).map(|i| format!("d{i}")).collect();
        assert!(a.check().is_err());
        let many = Accounts {
            databases: (0..=MAX_REPORTED).map(|i| format!("d{i}")).collect(),
            users: vec![],
        };
        assert!(many.check().is_err());
    }

    #[test]
    fn ops_round_trip_with_their_kind_tag() {
        let op = AccountOp::RevokeAccess {
            user: "u".into(),
            database: "d".into(),
        };
        let v = serde_json::to_value(&op).expect("serializes");
        assert_eq!(v["kind"], "revoke_access");
        let back: AccountOp = serde_json::from_value(v).expect("parses");
        assert_eq!(back, op);
        assert!(
            serde_json::from_value::<AccountOp>(serde_json::json!({"kind": "drop_all"})).is_err()
        );
    }
}
