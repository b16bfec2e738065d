//! Helpers both SQL backends share: time conversion, error mapping, row
//! access and the text form of revocation kinds.
//!
//! Nothing here knows a dialect; each backend keeps its own SQL so that a
//! reader sees every statement of a method in one place.

use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::{RevocationKind, StoreError};

/// A time or cursor as the databases store it (signed 64-bit). Values past
/// `i64::MAX` (hundreds of billions of years) saturate, which keeps every
/// comparison meaning "far future".
pub(crate) fn to_db(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored time or cursor; a negative one is a corrupted row.
pub(crate) fn from_db(value: i64, column: &'static str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} is negative")))
}

/// A stored optional time.
pub(crate) fn from_db_opt(
    value: Option<i64>,
    column: &'static str,
) -> Result<Option<u64>, StoreError> {
    value.map(|v| from_db(v, column)).transpose()
}

/// One column of a row; a value of the wrong type is a corrupted row.
pub(crate) fn get<'r, R, T>(row: &'r R, column: &'static str) -> Result<T, StoreError>
where
    R: Row,
    T: Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    row.try_get(column)
        .map_err(|err| StoreError::Corrupt(format!("column {column}: {err}")))
}

/// Maps a database error: undecodable data is [`StoreError::Corrupt`], a
/// refused configuration [`StoreError::Config`], anything else
/// [`StoreError::Unavailable`] (the caller answers 503).
pub(crate) fn unavailable(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(err.to_string()),
        sqlx::Error::Configuration(detail) => StoreError::Config(detail.to_string()),
        sqlx::Error::Database(ref db) if db.code().is_some_and(|code| is_corruption(&code)) => {
            StoreError::Corrupt(err.to_string())
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Whether a database error code says the stored data itself is damaged:
/// SQLite `SQLITE_CORRUPT` and `SQLITE_NOTADB` (with their extended codes),
/// Postgres `XX001` (data corrupted) and `XX002` (index corrupted).
fn is_corruption(code: &str) -> bool {
    match code.parse::<i32>() {
        Ok(sqlite) => matches!(sqlite & 0xff, 11 | 26),
        Err(_) => matches!(code, "XX001" | "XX002"),
    }
}

/// Maps a database error of a write that may hit a unique constraint: the
/// violation is `Conflict(what)`, the rest as [`unavailable`].
pub(crate) fn conflict(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |err| match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => unavailable(err),
    }
}

/// Maps a failed migration. A database migrated by a newer or different
/// Tollgate is a configuration problem, not an outage.
pub(crate) fn migrate_error(err: sqlx::migrate::MigrateError) -> StoreError {
    use sqlx::migrate::MigrateError;
    match err {
        MigrateError::Execute(err) => unavailable(err),
        MigrateError::ExecuteMigration(err, version) => {
            StoreError::Unavailable(format!("applying migration {version}: {err}"))
        }
        other => StoreError::Config(format!(
            "the database schema does not match this Tollgate: {other}"
        )),
    }
}

/// Whether a failed migration may succeed when tried again: another process
/// opening the same new database at the same moment applied it first.
pub(crate) fn is_retryable(err: &sqlx::migrate::MigrateError) -> bool {
    use sqlx::migrate::MigrateError;
    matches!(
        err,
        MigrateError::Execute(_) | MigrateError::ExecuteMigration(..)
    )
}

/// The stored name of a revocation kind (the wire name).
pub(crate) fn kind_name(kind: RevocationKind) -> &'static str {
    match kind {
        RevocationKind::Token => "token",
        RevocationKind::Session => "session",
        RevocationKind::User => "user",
        RevocationKind::Keys => "keys",
        RevocationKind::Plan => "plan",
    }
}

/// A stored revocation kind.
pub(crate) fn parse_kind(name: &str) -> Result<RevocationKind, StoreError> {
    match name {
        "token" => Ok(RevocationKind::Token),
        "session" => Ok(RevocationKind::Session),
        "user" => Ok(RevocationKind::User),
        "keys" => Ok(RevocationKind::Keys),
        "plan" => Ok(RevocationKind::Plan),
        _ => Err(StoreError::Corrupt(format!(
            "unknown revocation kind {name:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_saturate() {
        assert_eq!(from_db(to_db(1_700_000_000), "t").unwrap(), 1_700_000_000);
        assert_eq!(to_db(u64::MAX), i64::MAX);
        assert!(matches!(from_db(-1, "t"), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn corruption_codes_are_recognised() {
        for code in ["11", "26", "267", "779", "XX001", "XX002"] {
            assert!(is_corruption(code), "{code}");
        }
        for code in ["5", "2067", "23505", "40P01", ""] {
            assert!(!is_corruption(code), "{code}");
        }
    }

    #[test]
    fn kinds_round_trip_and_unknown_ones_are_corrupt() {
        for kind in [
            RevocationKind::Token,
            RevocationKind::Session,
            RevocationKind::User,
            RevocationKind::Keys,
            RevocationKind::Plan,
        ] {
            assert_eq!(parse_kind(kind_name(kind)).unwrap(), kind);
        }
        assert!(matches!(parse_kind("Token"), Err(StoreError::Corrupt(_))));
    }
}
