//! The workflows' own tables (photo tickets, the diary site, storyboards) in the platform's
//! database, SQLite or PostgreSQL, through one pool type. Their SQL is written once, with
//! `$N` placeholders, which both backends read; schemas are kept in step by migrations per
//! backend (versions from 1000 up, beside the platform's) and a test compares their shape.

use atelier_platform::PlatformError;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, PgPool, SqlitePool};

/// The pool the workflow stores query.
pub type DbPool = AnyPool;
/// A row of it.
pub type DbRow = AnyRow;

/// Opens the workflows' tables beside the job store in the SQLite file at `path` (whose pool
/// runs the migrations).
pub async fn open_sqlite(
    pool: &SqlitePool,
    path: &std::path::Path,
) -> Result<DbPool, PlatformError> {
    let mut m = sqlx::migrate!("./migrations/sqlite");
    m.set_ignore_missing(true);
    m.run(pool).await?;
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", path.display());
    Ok(AnyPoolOptions::new()
        .max_connections(8)
        .connect(&url)
        .await?)
}

/// Opens the workflows' tables in the PostgreSQL database at `url` (the job store's; a
/// `search_path` given in the URL's `options` is honoured), migrated through `pool`.
pub async fn open_postgres(pool: &PgPool, url: &str) -> Result<DbPool, PlatformError> {
    let mut m = sqlx::migrate!("./migrations/postgres");
    m.set_ignore_missing(true);
    m.run(pool).await?;
    sqlx::any::install_default_drivers();
    Ok(AnyPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await?)
}
