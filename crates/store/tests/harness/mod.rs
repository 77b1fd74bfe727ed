//! A fresh database per test: a SQLite file in a temporary directory, or a PostgreSQL schema
//! that is dropped afterwards.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_store::{Result, Store, StoreConfig};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Executor};

const POSTGRES_URL_VAR: &str = "PORTCULLIS_TEST_POSTGRES_URL";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// What a behaviour gets: a migrated store on a database of its own, and the means to open
/// it again or poke at it with raw SQL.
#[derive(Clone)]
pub(crate) struct TestDb {
    /// The store under test.
    pub(crate) store: Store,
    config: StoreConfig,
    sandbox: Sandbox,
}

#[derive(Clone)]
enum Sandbox {
    Sqlite { dir: Arc<tempfile::TempDir> },
    Postgres { url: String, schema: String },
}

impl TestDb {
    pub(crate) async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = StoreConfig::Sqlite {
            path: dir.path().join("portcullis.db"),
        };
        let store = Store::connect(&config).await.expect("open sqlite store");
        TestDb {
            store,
            config,
            sandbox: Sandbox::Sqlite { dir: Arc::new(dir) },
        }
    }

    /// Fails (never skips) when the server cannot be reached.
    pub(crate) async fn postgres() -> TestDb {
        let url = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
        let schema = unique_schema();
        let config = StoreConfig::Postgres {
            url: url.clone(),
            max_connections: 4,
            schema: Some(schema.clone()),
        };
        let store = Store::connect(&config).await.unwrap_or_else(|err| {
            panic!(
                "cannot use PostgreSQL at {url}: {err}. These tests need a running server: \
                 start one, or point {POSTGRES_URL_VAR} at one"
            )
        });
        TestDb {
            store,
            config,
            sandbox: Sandbox::Postgres { url, schema },
        }
    }

    /// `"sqlite"` or `"postgres"`, as [`Store::backend`] should say.
    pub(crate) fn backend(&self) -> &'static str {
        match self.sandbox {
            Sandbox::Sqlite { .. } => "sqlite",
            Sandbox::Postgres { .. } => "postgres",
        }
    }

    /// A second, independent store on the same database (its own pool, as another process
    /// would have).
    pub(crate) async fn connect_again(&self) -> Result<Store> {
        Store::connect(&self.config).await
    }

    /// A config for another, empty database in the same sandbox (cleaned up with it).
    pub(crate) fn sibling_config(&self) -> StoreConfig {
        match (&self.sandbox, &self.config) {
            (Sandbox::Sqlite { dir }, _) => StoreConfig::Sqlite {
                path: dir.path().join("sibling.db"),
            },
            (
                Sandbox::Postgres { url, schema },
                StoreConfig::Postgres {
                    max_connections, ..
                },
            ) => StoreConfig::Postgres {
                url: url.clone(),
                max_connections: *max_connections,
                schema: Some(sibling_schema(schema)),
            },
            (Sandbox::Postgres { .. }, StoreConfig::Sqlite { .. }) => {
                unreachable!("a postgres sandbox has a postgres config")
            }
        }
    }

    /// Runs `sql` on a connection of its own, bypassing the store.
    pub(crate) async fn execute_raw(&self, sql: &str) {
        match &self.sandbox {
            Sandbox::Sqlite { .. } => {
                let mut conn = SqliteConnection::connect_with(&self.sqlite_options())
                    .await
                    .expect("raw sqlite connection");
                conn.execute(sql).await.expect(sql);
                conn.close().await.expect("close raw sqlite connection");
            }
            Sandbox::Postgres { url, schema } => {
                let mut conn = postgres_connection(url, Some(schema)).await;
                conn.execute(sql).await.expect(sql);
                conn.close().await.expect("close raw postgres connection");
            }
        }
    }

    /// Rows in `table`, read bypassing the store.
    pub(crate) async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match &self.sandbox {
            Sandbox::Sqlite { .. } => {
                let mut conn = SqliteConnection::connect_with(&self.sqlite_options())
                    .await
                    .expect("raw sqlite connection");
                sqlx::query_scalar(&sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect(&sql)
            }
            Sandbox::Postgres { url, schema } => {
                let mut conn = postgres_connection(url, Some(schema)).await;
                sqlx::query_scalar(&sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect(&sql)
            }
        }
    }

    fn sqlite_options(&self) -> SqliteConnectOptions {
        let StoreConfig::Sqlite { path } = &self.config else {
            unreachable!("a sqlite sandbox has a sqlite config")
        };
        sqlite_options(path.clone())
    }

    /// Closes the store and drops the PostgreSQL schemas; best effort, errors are ignored.
    async fn cleanup(self) {
        self.store.close().await;
        if let Sandbox::Postgres { url, schema } = &self.sandbox {
            let Ok(options) = url.parse::<PgConnectOptions>() else {
                return;
            };
            let Ok(mut conn) = PgConnection::connect_with(&options).await else {
                return;
            };
            for name in [schema.clone(), sibling_schema(schema)] {
                let drop = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
                let _ = conn.execute(drop.as_str()).await;
            }
            let _ = conn.close().await;
        }
    }
}

/// Runs one behaviour, cleans up whether or not it panicked, then re-raises its panic.
pub(crate) async fn run<B, F>(db: TestDb, behaviour: B)
where
    B: FnOnce(TestDb) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(behaviour(db.clone())).await;
    db.cleanup().await;
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

fn sqlite_options(path: PathBuf) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(5))
}

async fn postgres_connection(url: &str, schema: Option<&str>) -> PgConnection {
    let mut options: PgConnectOptions = url.parse().expect("postgres url");
    if let Some(schema) = schema {
        options = options.options([("search_path", schema)]);
    }
    PgConnection::connect_with(&options)
        .await
        .expect("raw postgres connection")
}

/// `t_<pid>_<counter>_<nanos>`: unique across parallel tests and concurrent test processes.
fn unique_schema() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(
        "t_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

fn sibling_schema(schema: &str) -> String {
    format!("{schema}_b")
}
