//! Defense in depth behind validation: a value PostgreSQL refuses to store is the client's 400,
//! never a 500, and any other database failure stays an opaque 500. On the real control database.

use anyhow::Result;
use trove_api::{db::instances, error::ApiError};
use trove_common::testkit::Sandbox;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_the_database_cannot_store_are_bad_requests() -> Result<()> {
    let sandbox = Sandbox::create("trove_api").await?;
    let mut conn = sandbox.pool.acquire().await?;

    // A NUL in text (22021), through the very query a rename runs.
    let nul = instances::rename(&mut conn, Uuid::new_v4(), "a\u{0}b").await;
    let e = ApiError::from(nul.expect_err("PostgreSQL refuses a NUL in text"));
    assert!(
        matches!(&e, ApiError::BadRequest(m) if !m.contains('\u{0}')),
        "{e:?}"
    );

    // Text that is not a uuid (22P02) and a number out of range (22003).
    for sql in ["SELECT $1::uuid", "SELECT $1::text::smallint"] {
        let r = sqlx::query(sql)
            .bind("99999999999")
            .execute(&mut *conn)
            .await;
        let e = ApiError::from(r.expect_err("PostgreSQL refuses the value"));
        assert!(matches!(e, ApiError::BadRequest(_)), "{sql}: {e:?}");
    }

    // Anything else, e.g. a query naming a table that does not exist, is the server's fault.
    let r = sqlx::query("SELECT * FROM no_such_table")
        .execute(&mut *conn)
        .await;
    let e = ApiError::from(r.expect_err("no such table"));
    assert!(matches!(e, ApiError::Internal(_)), "{e:?}");
    Ok(())
}
