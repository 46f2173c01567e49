//! Database URLs: the scheme picks the backend.

use std::fmt;
use std::path::PathBuf;

#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string, passed to the driver as given.
    Postgres(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseUrlError {
    #[error("unsupported database URL scheme; use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedScheme,
    #[error("the sqlite URL names no file")]
    EmptyPath,
}

impl DatabaseUrl {
    /// Accepts `sqlite://relative/path.db`, `sqlite:///absolute/path.db`, `sqlite:path.db`,
    /// `postgres://…` and `postgresql://…`.
    pub fn parse(text: &str) -> Result<DatabaseUrl, DatabaseUrlError> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(text.to_owned()));
        }
        let path = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
            .ok_or(DatabaseUrlError::UnsupportedScheme)?;
        // Query parameters are not supported: pragmas are fixed by paygate, not by the URL.
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(DatabaseUrlError::EmptyPath);
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
    }

    pub fn sqlite_file(path: impl Into<PathBuf>) -> DatabaseUrl {
        DatabaseUrl::Sqlite(path.into())
    }
}

/// Never prints a PostgreSQL password.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(index) => rest.split_at(index),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:[REDACTED]@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let cases: &[(&str, Result<DatabaseUrl, DatabaseUrlError>)] = &[
            (
                "sqlite://data/paygate.db",
                Ok(DatabaseUrl::Sqlite("data/paygate.db".into())),
            ),
            (
                "sqlite:///var/lib/paygate.db",
                Ok(DatabaseUrl::Sqlite("/var/lib/paygate.db".into())),
            ),
            (
                "sqlite:paygate.db?mode=rwc",
                Ok(DatabaseUrl::Sqlite("paygate.db".into())),
            ),
            ("sqlite://", Err(DatabaseUrlError::EmptyPath)),
            (
                "postgres://u@h/db",
                Ok(DatabaseUrl::Postgres("postgres://u@h/db".into())),
            ),
            (
                "postgresql://u@h/db",
                Ok(DatabaseUrl::Postgres("postgresql://u@h/db".into())),
            ),
            ("mysql://u@h/db", Err(DatabaseUrlError::UnsupportedScheme)),
            ("data/paygate.db", Err(DatabaseUrlError::UnsupportedScheme)),
        ];
        for (input, expected) in cases {
            assert_eq!(&DatabaseUrl::parse(input), expected, "{input}");
        }
    }

    #[test]
    fn display_hides_password() {
        let url = DatabaseUrl::parse("postgres://paygate:hunter2@db:5432/paygate").unwrap();
        assert_eq!(url.to_string(), "postgres://paygate:[REDACTED]@db:5432/paygate");
        assert_eq!(format!("{url:?}"), "postgres://paygate:[REDACTED]@db:5432/paygate");
    }
}
