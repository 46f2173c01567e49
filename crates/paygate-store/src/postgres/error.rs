//! How PostgreSQL and pool errors become [`StoreError`]s, and how a connection target is named without its password.

use std::error::Error as _;

use deadpool_postgres::PoolError;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;

use crate::StoreError;

/// Maps a driver error. Messages carry the SQLSTATE and the server's message, never the `DETAIL` (which holds row
/// values) nor query parameters.
pub(crate) fn pg_error(error: tokio_postgres::Error) -> StoreError {
    let Some(db) = error.as_db_error() else {
        // No server answer: the connection broke, timed out or never came up.
        return if error.is_closed() || io_caused(&error) {
            StoreError::Unavailable(describe_error(&error))
        } else {
            StoreError::Backend(describe_error(&error))
        };
    };
    let code = db.code();
    let conflict = match code {
        c if *c == SqlState::UNIQUE_VIOLATION => Some("duplicate key"),
        c if *c == SqlState::FOREIGN_KEY_VIOLATION => Some("foreign key violated"),
        c if *c == SqlState::CHECK_VIOLATION => Some("check constraint violated"),
        // SQLite reports NOT NULL with its other constraint violations; keep the backends alike.
        c if *c == SqlState::NOT_NULL_VIOLATION => Some("not-null constraint violated"),
        _ => None,
    };
    if let Some(what) = conflict {
        return StoreError::Conflict(what);
    }
    let message = format!("{} (SQLSTATE {})", db.message(), code.code());
    let unavailable = code.code().starts_with("08") // connection exception
        || code.code().starts_with("28") // invalid authorization
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::INVALID_CATALOG_NAME,
            SqlState::QUERY_CANCELED, // statement_timeout: the database is too slow to answer in time
        ]
        .contains(code);
    if unavailable {
        StoreError::Unavailable(message)
    } else {
        StoreError::Backend(message)
    }
}

/// Maps an error from checking a connection out of the pool (which may have to open one).
pub(super) fn pool_error(error: PoolError, target: &str) -> StoreError {
    match error {
        PoolError::Timeout(kind) => {
            StoreError::Unavailable(format!("timed out waiting for a connection to {target} ({kind:?})"))
        }
        PoolError::Backend(error) => match pg_error(error) {
            StoreError::Unavailable(reason) | StoreError::Backend(reason) => {
                StoreError::Unavailable(format!("cannot connect to {target}: {reason}"))
            }
            other => other,
        },
        PoolError::Closed => StoreError::Overloaded("the PostgreSQL store is closed"),
        PoolError::NoRuntimeSpecified => StoreError::Backend("the connection pool has no runtime".into()),
        PoolError::PostCreateHook(hook) => StoreError::Unavailable(format!("cannot set up a connection: {hook}")),
    }
}

/// A `tokio_postgres::Config` parse error. The parser's own messages can quote characters of the input (a
/// password, say), so only those naming an option are passed on.
pub(super) fn config_error(error: &tokio_postgres::Error) -> StoreError {
    let reason = error.source().map(ToString::to_string).unwrap_or_default();
    let safe = reason.starts_with("unknown option") || reason.starts_with("invalid value for option");
    StoreError::Unavailable(if safe {
        format!("invalid PostgreSQL connection string: {reason}")
    } else {
        "invalid PostgreSQL connection string".to_owned()
    })
}

/// `postgres://user@host:port/dbname`, built from the parsed configuration so no password can appear.
pub(super) fn describe_target(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let host = match host {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(index).or_else(|| config.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let user = config.get_user().map(|user| format!("{user}@")).unwrap_or_default();
    format!(
        "postgres://{user}{}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or_default()
    )
}

fn io_caused(error: &tokio_postgres::Error) -> bool {
    let mut source = error.source();
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The error and its causes, for errors that did not come from the server (those never quote parameters).
fn describe_error(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn target_never_shows_the_password() {
        let cases = [
            (
                "postgres://paygate:hunter2@db:5433/pay",
                "postgres://paygate@db:5433/pay",
            ),
            (
                "postgresql://u:p%40ss@h1,h2/x?sslmode=disable",
                "postgres://u@h1:5432,h2:5432/x",
            ),
            ("host=db user=u password=hunter2 dbname=pay", "postgres://u@db/pay"),
            ("host=a,b port=1,2 user=u password=x dbname=d", "postgres://u@a:1,b:2/d"),
        ];
        for (input, expected) in cases {
            let config = tokio_postgres::Config::from_str(input).unwrap();
            assert_eq!(describe_target(&config), expected, "{input}");
        }
    }

    #[test]
    fn parse_errors_do_not_quote_the_input() {
        for input in [
            "host=db password='hunter2",
            "postgres://u:hunter2@h/db?nope=1",
            "postgres://u:hunter2@h:x/db",
        ] {
            let error = tokio_postgres::Config::from_str(input).unwrap_err();
            let StoreError::Unavailable(message) = config_error(&error) else {
                panic!("{input}")
            };
            assert!(!message.contains("hunter2"), "{message}");
        }
    }
}
