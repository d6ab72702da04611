//! Databases, users, grants and root on a running server: what it holds ([`Cluster::read_accounts`])
//! and one tenant change ([`Cluster::apply_account_op`]). Every name is quoted here, every password
//! travels as a SCRAM verifier, and statements that carry one stay out of the server log.
//!
//! Access to a database is Trove's "grant access": `ALL` on the database and on its schema
//! `public`. Databases made through the API are closed to `PUBLIC`, so a user without access
//! cannot even connect. `root` is the instance administrator, not a PostgreSQL superuser: the
//! servers of one host share an OS user, and a superuser can run programs as it
//! (`COPY … PROGRAM`), which would reach other tenants' data (docs/api.md, "Root").

use std::collections::HashMap;

use anyhow::Context as _;
use sqlx::{Connection as _, PgConnection};
use trove_common::{
    accounts::{AccountOp, AccountUser, Accounts, MAX_REPORTED, ROOT_USER},
    secrets::Password,
};

use super::{
    cluster::{Cluster, KEEP_STATEMENTS_OUT_OF_THE_LOG, SUPERUSER, catalog_has, run_sql},
    scram,
    sql::{quote_ident, quote_literal},
};

/// Roles the administrator gets: read and write every table, watch and cancel sessions.
/// Deliberately not `pg_execute_server_program`, `pg_read_server_files` or
/// `pg_write_server_files`, nor CREATEROLE (which in PostgreSQL 15 can grant those).
const ROOT_ROLES: &str = "pg_read_all_data, pg_write_all_data, pg_monitor, pg_signal_backend";

/// Why a change was not applied.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The server refused it; its message is the tenant's to read (`role "x" already exists`).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AccountError {
    fn from(e: sqlx::Error) -> Self {
        match e.as_database_error() {
            Some(db) => AccountError::Refused(db.message().to_string()),
            None => AccountError::Internal(e.into()),
        }
    }
}

type AccountResult<T> = Result<T, AccountError>;

impl Cluster {
    /// The tenant databases and login users, with the databases each may use (CREATE on the
    /// database, which `GRANT ALL` and ownership give). The agent's own superuser, `root`, and
    /// the `postgres` and template databases are left out, as Trove's `ignore_users`/`ignore_dbs`.
    pub async fn read_accounts(&self) -> anyhow::Result<Accounts> {
        let mut conn = self.connect().await?;
        let limit = MAX_REPORTED as i64;
        let databases: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database \
             WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY datname LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&mut conn)
        .await
        .context("listing databases")?;
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT r.rolname, d.datname FROM pg_roles r \
             LEFT JOIN pg_database d ON NOT d.datistemplate AND d.datname <> 'postgres' \
                  AND has_database_privilege(r.oid, d.oid, 'CREATE') \
             WHERE r.rolcanlogin AND NOT r.rolsuper AND r.rolname <> ALL($1) \
                  AND r.rolname !~ '^pg_' \
             ORDER BY r.rolname, d.datname",
        )
        .bind([SUPERUSER, ROOT_USER])
        .fetch_all(&mut conn)
        .await
        .context("listing users")?;
        let _ = conn.close().await;
        let mut users: Vec<AccountUser> = Vec::new();
        for (user, db) in rows {
            if users.last().map(|u| &u.name) != Some(&user) {
                if users.len() == MAX_REPORTED {
                    break;
                }
                users.push(AccountUser {
                    name: user,
                    databases: Vec::new(),
                });
            }
            if let (Some(db), Some(u)) = (db, users.last_mut())
                && u.databases.len() < MAX_REPORTED
            {
                u.databases.push(db);
            }
        }
        Ok(Accounts { databases, users })
    }

    /// Applies `op`; `passwords` holds each password it carries, opened, by user name.
    pub async fn apply_account_op(
        &self,
        op: &AccountOp,
        passwords: &HashMap<String, Password>,
    ) -> AccountResult<()> {
        let mut conn = self.connect().await?;
        // quote_literal relies on this; a tenant could change the default with ALTER SYSTEM.
        run_sql(&mut conn, "SET standard_conforming_strings = on").await?;
        run_sql(&mut conn, KEEP_STATEMENTS_OUT_OF_THE_LOG).await?;
        let password = |user: &str| {
            passwords
                .get(user)
                .map(|p| scram::verifier(p.expose()))
                .ok_or_else(|| anyhow::anyhow!("no password for {user:?} in the op"))
        };
        match op {
            AccountOp::CreateDatabases { databases } => {
                for name in databases {
                    let db = quote_ident(name)?;
                    run_sql(&mut conn, &format!("CREATE DATABASE {db}")).await?;
                    run_sql(
                        &mut conn,
                        &format!("REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC"),
                    )
                    .await?;
                }
            }
            AccountOp::DeleteDatabase { name } => {
                // FORCE ends the sessions on it: the tenant asked for it to go.
                let db = quote_ident(name)?;
                run_sql(&mut conn, &format!("DROP DATABASE {db} WITH (FORCE)")).await?;
            }
            AccountOp::CreateUsers { users } => {
                for u in users {
                    let role = quote_ident(&u.name)?;
                    let secret = quote_literal(&password(&u.name)?)?;
                    run_sql(
                        &mut conn,
                        &format!("CREATE ROLE {role} WITH LOGIN PASSWORD {secret}"),
                    )
                    .await?;
                    for d in &u.databases {
                        self.grant(&mut conn, &u.name, d).await?;
                    }
                }
            }
            AccountOp::DeleteUser { name } => self.drop_user(&mut conn, name).await?,
            AccountOp::UpdateUser {
                name,
                new_name,
                password: sealed,
            } => {
                let mut current = name.clone();
                if let Some(n) = new_name {
                    run_sql(
                        &mut conn,
                        &format!(
                            "ALTER ROLE {} RENAME TO {}",
                            quote_ident(name)?,
                            quote_ident(n)?
                        ),
                    )
                    .await?;
                    current = n.clone();
                }
                if sealed.is_some() {
                    set_password(&mut conn, &current, &password(&current)?).await?;
                }
            }
            AccountOp::ChangePasswords { users } => {
                for u in users {
                    set_password(&mut conn, &u.name, &password(&u.name)?).await?;
                }
            }
            AccountOp::GrantAccess { user, databases } => {
                for d in databases {
                    self.grant(&mut conn, user, d).await?;
                }
            }
            AccountOp::RevokeAccess { user, database } => {
                self.revoke(&mut conn, user, database).await?
            }
            AccountOp::EnableRoot { .. } => {
                let role = quote_ident(ROOT_USER)?;
                let secret = quote_literal(&password(ROOT_USER)?)?;
                let verb = if catalog_has(&mut conn, "pg_roles", "rolname", ROOT_USER).await? {
                    "ALTER"
                } else {
                    "CREATE"
                };
                run_sql(
                    &mut conn,
                    &format!(
                        "{verb} ROLE {role} WITH LOGIN CREATEDB NOSUPERUSER NOCREATEROLE \
                         NOREPLICATION NOBYPASSRLS PASSWORD {secret}; \
                         GRANT {ROOT_ROLES} TO {role}"
                    ),
                )
                .await?;
                for d in self.tenant_databases(&mut conn).await? {
                    self.grant(&mut conn, ROOT_USER, &d).await?;
                }
            }
            AccountOp::DisableRoot {} => {
                if catalog_has(&mut conn, "pg_roles", "rolname", ROOT_USER).await? {
                    let role = quote_ident(ROOT_USER)?;
                    run_sql(
                        &mut conn,
                        &format!("ALTER ROLE {role} WITH NOLOGIN PASSWORD NULL"),
                    )
                    .await?;
                    end_sessions(&mut conn, ROOT_USER, None).await?;
                }
            }
        }
        let _ = conn.close().await;
        Ok(())
    }

    async fn tenant_databases(&self, conn: &mut PgConnection) -> AccountResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'",
        )
        .fetch_all(conn)
        .await?)
    }

    /// `ALL` on `database` and on its schema `public` (which lives inside the database, so it
    /// takes a connection to it).
    async fn grant(
        &self,
        conn: &mut PgConnection,
        user: &str,
        database: &str,
    ) -> AccountResult<()> {
        let (role, db) = (quote_ident(user)?, quote_ident(database)?);
        run_sql(conn, &format!("GRANT ALL ON DATABASE {db} TO {role}")).await?;
        let mut db_conn = self.connect_to(database).await?;
        run_sql(
            &mut db_conn,
            &format!("GRANT ALL ON SCHEMA public TO {role}"),
        )
        .await?;
        let _ = db_conn.close().await;
        Ok(())
    }

    /// Takes back what [`Self::grant`] gave, and ownership of the database (an owner keeps every
    /// privilege whatever is revoked), then ends the user's sessions on it.
    async fn revoke(
        &self,
        conn: &mut PgConnection,
        user: &str,
        database: &str,
    ) -> AccountResult<()> {
        let (role, db) = (quote_ident(user)?, quote_ident(database)?);
        let owns: bool = sqlx::query_scalar(
            "SELECT pg_get_userbyid(datdba) = $1 FROM pg_database WHERE datname = $2",
        )
        .bind(user)
        .bind(database)
        .fetch_optional(&mut *conn)
        .await?
        .unwrap_or(false);
        if owns {
            let admin = quote_ident(SUPERUSER)?;
            run_sql(conn, &format!("ALTER DATABASE {db} OWNER TO {admin}")).await?;
        }
        run_sql(conn, &format!("REVOKE ALL ON DATABASE {db} FROM {role}")).await?;
        let mut db_conn = self.connect_to(database).await?;
        run_sql(
            &mut db_conn,
            &format!("REVOKE ALL ON SCHEMA public FROM {role}"),
        )
        .await?;
        let _ = db_conn.close().await;
        end_sessions(conn, user, Some(database)).await
    }

    /// Drops `user` after handing what it owns in every database to the agent's superuser, so
    /// the tenant's tables outlive the user who made them.
    async fn drop_user(&self, conn: &mut PgConnection, user: &str) -> AccountResult<()> {
        let role = quote_ident(user)?;
        if !catalog_has(conn, "pg_roles", "rolname", user).await? {
            return Err(AccountError::Refused(format!(
                "role \"{user}\" does not exist"
            )));
        }
        end_sessions(conn, user, None).await?;
        let admin = quote_ident(SUPERUSER)?;
        let all: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate",
        )
        .fetch_all(&mut *conn)
        .await?;
        for database in all {
            let mut db_conn = self.connect_to(&database).await?;
            run_sql(
                &mut db_conn,
                &format!("REASSIGN OWNED BY {role} TO {admin}; DROP OWNED BY {role}"),
            )
            .await?;
            let _ = db_conn.close().await;
        }
        run_sql(conn, &format!("DROP ROLE {role}")).await?;
        Ok(())
    }
}

/// Gives `user` the password whose SCRAM verifier is `verifier`.
async fn set_password(conn: &mut PgConnection, user: &str, verifier: &str) -> AccountResult<()> {
    let (role, secret) = (quote_ident(user)?, quote_literal(verifier)?);
    run_sql(conn, &format!("ALTER ROLE {role} WITH PASSWORD {secret}")).await?;
    Ok(())
}

/// Ends `user`'s sessions (on `database` only, when given): access taken away takes effect now.
async fn end_sessions(
    conn: &mut PgConnection,
    user: &str,
    database: Option<&str>,
) -> AccountResult<()> {
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE usename = $1 AND ($2::text IS NULL OR datname = $2) AND pid <> pg_backend_pid()",
    )
    .bind(user)
    .bind(database)
    .execute(conn)
    .await?;
    Ok(())
}
