//! Durable state for Portcullis: approvals and audit lines, and the request and token counters
//! of [`limits`].
//!
//! One [`Store`] API over two backends, both reached through sqlx (no compile-time query
//! macros, so building needs no database):
//!
//! - **SQLite**: a file, the embedded default, zero setup. WAL journal, `synchronous = FULL`,
//!   5 s busy timeout, a pool of 4. Several processes may open the same file; SQLite lets one
//!   of them write at a time and the others wait (up to the busy timeout).
//! - **PostgreSQL**: shared by several replicas; pool size from the config, optionally in its
//!   own schema (created if missing, selected per connection through `search_path`).
//!
//! Every statement but the locking and the schema is one SQL text for both (`sql.rs`);
//! `sqlite.rs` and `postgres.rs` hold what differs. Start reading at [`Store`].
//!
//! # Migrations
//!
//! [`Store::connect`] applies the versioned, checksummed migrations in [`migrations`] (each in
//! its own transaction, serialised across processes) and refuses a database migrated by a newer
//! binary or whose applied migrations changed. The module doc says how to add one.
//!
//! # Guarantees
//!
//! - **Durable on return.** `create_approval`, `resolve_approval`, `expire_due` and
//!   `append_audit` return after their commit (SQLite fsyncs the WAL on commit with
//!   `synchronous = FULL`; PostgreSQL with its default `synchronous_commit = on`).
//! - **One winner.** State changes that race (two approvers, an approver and the expiry
//!   sweep) are single conditional `UPDATE … WHERE status = 'pending'` statements, so exactly
//!   one wins on either backend and the loser gets [`Error::AlreadyResolved`].
//! - **Atomic audit batches.** `append_audit` writes a batch in one transaction; a duplicate
//!   (instance, kind, seq) fails it whole.
//! - **Gap-free audit paging.** Audit appends are serialised (SQLite's write lock, a PostgreSQL
//!   `EXCLUSIVE` table lock), so ids become visible in ascending order and a reader paging with
//!   `audit_lines(last_seen_id, n)` never skips a line committed later with a smaller id.
//!
//! The store holds no policy: it records what the gateway decided and what approvers did. It
//! depends on no other Portcullis crate; `proxy` and `cli` depend on it.
//!
//! TLS to PostgreSQL uses rustls (ring, webpki roots), the same rustls the rest of the
//! workspace links; `sslmode` comes from the URL (sqlx defaults to `prefer`).

#![warn(missing_docs)]

mod error;
pub mod limits;
pub mod migrations;
mod model;
mod postgres;
mod row;
mod sql;
mod sqlite;
mod store;

pub use error::{Error, Result};
pub use limits::{
    Admission, Ask, Budget, BudgetUsage, LimitError, LimitKind, Limiter, Refusal, Reservation,
};
pub use model::{
    Approval, ApprovalFilter, ApprovalStatus, AuditLine, AuditLineKind, NewApproval, Resolution,
    StoreConfig,
};
pub use store::Store;
