//! What differs between the SQL backends, in one place per difference: the
//! [`Dialect`] trait the one store ([`crate::SqlStore`]) is written against.
//!
//! Everything else (every statement, every transaction, the rotation, the
//! feed) is written once in `store.rs`. The statements use `$N`
//! placeholders, which both backends read (sqlx binds SQLite's `$N` by
//! number), `RETURNING` and `INSERT … ON CONFLICT … DO UPDATE`, which both
//! have, and plain SQL for the rest (`CAST(… AS TEXT)`, `NOT flag`, no
//! `LEAST`/`MIN`: capping an expiry is done in Rust). What is left differs
//! for real and lives here:
//!
//! | difference | SQLite | Postgres |
//! |---|---|---|
//! | starting a write ([`Dialect::BEGIN_WRITE`]) | `BEGIN IMMEDIATE`: the one write lock up front | `BEGIN`, then row locks |
//! | row locks ([`Dialect::ROW_LOCKS`]) | none (the write lock serialises writers) | `FOR [NO KEY] UPDATE`, in one order |
//! | feed cursors ([`Dialect::APPEND_EVENT`], [`Dialect::LOCK_FEED`], [`Dialect::LAST_CURSOR`]) | `AUTOINCREMENT` | a counter row held until commit |
//! | list columns (roles, scopes: [`Arg::List`], [`Columns::list`]) | JSON text | `TEXT[]` |
//! | many rows in one statement (usage: [`Dialect::INSERT_USAGE`], [`Dialect::ADD_USAGE_HOURS`], [`Dialect::KNOWN_USERS`]) | `json_each` | `jsonb_array_elements`, `= ANY` |
//! | connection settings and durability | WAL + `synchronous=FULL`, checked | `synchronous_commit = on`, READ COMMITTED |
//!
//! The last row is each backend's `open`/`connect`; the others are the
//! items of [`Dialect`].
//!
//! Why a trait of our own over typed arguments rather than code generic over
//! sqlx's `Database` or sqlx's `Any` driver: generic sqlx code needs a
//! higher-ranked `Executor`/`Encode`/`Decode` bound for every type on every
//! function, which buries the logic; `Any` has no arrays (the Postgres
//! lists), no per-backend connection setup, and copies every row into its
//! own form. Here each backend binds nine kinds of [`Arg`] and reads six
//! kinds of column, on its own concrete sqlx types, with no allocation
//! beyond what sqlx does anyway.

use std::future::Future;
use std::pin::Pin;

use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use crate::StoreError;
use crate::sql::get;

/// A value bound to a statement's `$N`. Times and cursors are [`Arg::Int`]
/// (see [`crate::sql::to_db`]).
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// Text.
    Text(&'a str),
    /// Text or NULL.
    MaybeText(Option<&'a str>),
    /// A 64-bit integer.
    Int(i64),
    /// An integer or NULL.
    MaybeInt(Option<i64>),
    /// A boolean (SQLite: 0 or 1).
    Flag(bool),
    /// A boolean or NULL.
    MaybeFlag(Option<bool>),
    /// Bytes.
    Bytes(&'a [u8]),
    /// A list of strings (roles, scopes).
    List(&'a [String]),
    /// A list or NULL.
    MaybeList(Option<&'a [String]>),
}

/// Reading one column of a row. A value of the wrong type is
/// [`StoreError::Corrupt`]. Every backend row has it: lists through
/// [`ListColumn`], the rest through sqlx's own decoding.
pub trait Columns {
    /// A text column.
    fn text(&self, column: &'static str) -> Result<String, StoreError>;
    /// A text column that may be NULL.
    fn maybe_text(&self, column: &'static str) -> Result<Option<String>, StoreError>;
    /// An integer column.
    fn int(&self, column: &'static str) -> Result<i64, StoreError>;
    /// An integer column that may be NULL.
    fn maybe_int(&self, column: &'static str) -> Result<Option<i64>, StoreError>;
    /// A boolean column.
    fn flag(&self, column: &'static str) -> Result<bool, StoreError>;
    /// A bytes column.
    fn bytes(&self, column: &'static str) -> Result<Vec<u8>, StoreError>;
    /// A list column (roles, scopes).
    fn list(&self, column: &'static str) -> Result<Vec<String>, StoreError>;
}

/// How a backend's row reads a list column (the one column that differs).
pub trait ListColumn {
    /// A list column (roles, scopes).
    fn list(&self, column: &'static str) -> Result<Vec<String>, StoreError>;
}

impl<R> Columns for R
where
    R: Row + ListColumn,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    fn text(&self, column: &'static str) -> Result<String, StoreError> {
        get(self, column)
    }
    fn maybe_text(&self, column: &'static str) -> Result<Option<String>, StoreError> {
        get(self, column)
    }
    fn int(&self, column: &'static str) -> Result<i64, StoreError> {
        get(self, column)
    }
    fn maybe_int(&self, column: &'static str) -> Result<Option<i64>, StoreError> {
        get(self, column)
    }
    fn flag(&self, column: &'static str) -> Result<bool, StoreError> {
        get(self, column)
    }
    fn bytes(&self, column: &'static str) -> Result<Vec<u8>, StoreError> {
        get(self, column)
    }
    fn list(&self, column: &'static str) -> Result<Vec<String>, StoreError> {
        ListColumn::list(self, column)
    }
}

/// `sql` with `args` bound to `$1`, `$2`, … in database `DB`: every kind
/// of [`Arg`] through sqlx's own encoding, but lists (`None`: NULL), which
/// `list` binds as the backend stores them.
pub fn bind_with<DB>(
    sql: &'static str,
    args: &[Arg<'_>],
    list: impl Fn(Bound<DB>, Option<&[String]>) -> Result<Bound<DB>, sqlx::Error>,
) -> Result<Bound<DB>, sqlx::Error>
where
    DB: Database,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> &'a [u8]: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
    for<'a> Option<bool>: Encode<'a, DB> + Type<DB>,
{
    let mut query = sqlx::query(sql);
    for arg in args {
        query = match *arg {
            Arg::Text(value) => query.bind(value),
            Arg::MaybeText(value) => query.bind(value),
            Arg::Int(value) => query.bind(value),
            Arg::MaybeInt(value) => query.bind(value),
            Arg::Flag(value) => query.bind(value),
            Arg::MaybeFlag(value) => query.bind(value),
            Arg::Bytes(value) => query.bind(value),
            Arg::List(items) => list(query, Some(items))?,
            Arg::MaybeList(items) => list(query, items)?,
        };
    }
    Ok(query)
}

/// A boxed `Send` future, as sqlx's executors return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A bound statement of database `Self`.
pub type Bound<DB> = Query<'static, DB, <DB as Database>::Arguments>;

/// Running a bound statement on a connection (a transaction's or a pooled
/// one). Every sqlx database has it through sqlx's `Executor`: this is the
/// one place that higher-ranked bound is written, so the store's code does
/// not carry it.
pub trait Run: Database {
    /// The first row, if any.
    fn fetch_optional(
        conn: &mut Self::Connection,
        query: Bound<Self>,
    ) -> BoxFuture<'_, Result<Option<Self::Row>, sqlx::Error>>;
    /// Every row.
    fn fetch_all(
        conn: &mut Self::Connection,
        query: Bound<Self>,
    ) -> BoxFuture<'_, Result<Vec<Self::Row>, sqlx::Error>>;
    /// What the statement did.
    fn execute(
        conn: &mut Self::Connection,
        query: Bound<Self>,
    ) -> BoxFuture<'_, Result<Self::QueryResult, sqlx::Error>>;
}

impl<DB> Run for DB
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    fn fetch_optional(
        conn: &mut DB::Connection,
        query: Bound<DB>,
    ) -> BoxFuture<'_, Result<Option<DB::Row>, sqlx::Error>> {
        conn.fetch_optional(query)
    }

    fn fetch_all(
        conn: &mut DB::Connection,
        query: Bound<DB>,
    ) -> BoxFuture<'_, Result<Vec<DB::Row>, sqlx::Error>> {
        conn.fetch_all(query)
    }

    fn execute(
        conn: &mut DB::Connection,
        query: Bound<DB>,
    ) -> BoxFuture<'_, Result<DB::QueryResult, sqlx::Error>> {
        conn.execute(query)
    }
}

/// A SQL backend as the one store sees it (see the module docs). The value
/// holds what a backend keeps besides its pool (the SQLite file's path,
/// the Postgres schema).
pub trait Dialect: Clone + Send + Sync + 'static {
    /// The sqlx database.
    type Db: Database<Row: Columns> + Run;

    /// Starts a write transaction.
    const BEGIN_WRITE: &'static str;
    /// Whether writers must lock rows (`FOR UPDATE`) to keep their order;
    /// when false, [`Dialect::BEGIN_WRITE`] already serialises them.
    const ROW_LOCKS: bool;
    /// Appends one feed event inside the caller's transaction: binds kind,
    /// value, at, expires_at (`$1`..`$4`) and returns the revocation
    /// columns. May lock the feed until commit, so callers append after
    /// every other write of the transaction.
    const APPEND_EVENT: &'static str;
    /// Makes "is this jti revoked already? if not, append" atomic against a
    /// concurrent revocation of the same jti, when the write lock does not.
    const LOCK_FEED: Option<&'static str>;
    /// One row, column `last_cursor`: the highest cursor ever handed out.
    const LAST_CURSOR: &'static str;
    /// Stores usage events whose key is new: binds a JSON array of
    /// `[service, instance, seq, user, tool, plan, at]` arrays (`$1`) and
    /// the time received (`$2`); returns `user_id, tool, plan, at` of each
    /// event stored (a key stored already, or twice in the array, is
    /// skipped).
    const INSERT_USAGE: &'static str;
    /// Adds to the hourly usage counts: binds a JSON array of
    /// `[user, hour, tool, plan, calls]` arrays (`$1`), each key once.
    const ADD_USAGE_HOURS: &'static str;
    /// The ids (column `id`) of the users among a list ([`Arg::List`], `$1`).
    const KNOWN_USERS: &'static str;

    /// `sql` with `args` bound to `$1`, `$2`, …
    fn bind(sql: &'static str, args: &[Arg<'_>]) -> Result<Bound<Self::Db>, sqlx::Error>;

    /// How many rows a statement changed.
    fn rows_affected(result: &<Self::Db as Database>::QueryResult) -> u64;
}
