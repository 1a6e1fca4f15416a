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
    let url = sqlite_url(path)?;
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

/// An absolute `sqlite://` URL for `path`: a relative one would be read as a host name (and
/// lower-cased), and `%`, `?` and `#` in names must not turn into URL syntax.
fn sqlite_url(path: &std::path::Path) -> Result<String, PlatformError> {
    let abs = std::path::absolute(path).map_err(|e| PlatformError::Storage {
        path: path.display().to_string(),
        source: e,
    })?;
    let text = abs.to_str().ok_or_else(|| {
        PlatformError::invalid("data", format!("{} is not valid UTF-8", abs.display()))
    })?;
    let mut url = String::from("sqlite://");
    for c in text.chars() {
        match c {
            '%' => url.push_str("%25"),
            '?' => url.push_str("%3F"),
            '#' => url.push_str("%23"),
            _ => url.push(c),
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn odd_folder_names_open_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("Data 100% #1 ?데이터");
        std::fs::create_dir_all(&odd).unwrap();
        let path = odd.join("atelier.db");
        let store = atelier_platform::store::sqlite::SqliteStore::open(&path)
            .await
            .unwrap();
        let pool = open_sqlite(store.pool(), &path).await.unwrap();
        sqlx::query("INSERT INTO diary_users (id, email, password_hash, display_name, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind("u")
            .bind("e")
            .bind("h")
            .bind("n")
            .bind(0_i64)
            .execute(&pool)
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM diary_users")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(n, 1, "both pools use the one file");
        assert!(sqlite_url(std::path::Path::new("rel/Dir/x.db"))
            .unwrap()
            .starts_with("sqlite:///"));
    }
}
