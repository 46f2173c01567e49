//! What both backends share about migrations: the list type, checksums and the plan.
//!
//! Each backend runs its own SQL files (`migrations/<backend>/NNNN_name.sql`) inside its own transactions and
//! records them in `schema_migrations`. The plan refuses a database that was migrated by a newer paygate or whose
//! applied migrations were edited afterwards, because either means this binary does not know the schema.

use sha2::{Digest, Sha256};

use crate::StoreError;

pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// What opening a database did to its schema.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this call, in order.
    pub applied: Vec<i64>,
    /// True when the database had no paygate schema before this call: a brand-new database.
    pub was_empty: bool,
}

/// Migration bookkeeping is the only place that reads the clock, and only for a human-readable `applied_at`.
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Returns the migrations still to apply, after checking those already applied.
pub(crate) fn plan<'a>(known: &'a [Migration], applied: &[(i64, String)]) -> Result<Vec<&'a Migration>, StoreError> {
    for (version, stored_checksum) in applied {
        let Some(migration) = known.iter().find(|m| m.version == *version) else {
            return Err(StoreError::Schema(format!(
                "the database has migration {version}, which this paygate does not know; it was migrated by a newer version"
            )));
        };
        if checksum(migration.sql) != *stored_checksum {
            return Err(StoreError::Schema(format!(
                "migration {version} ({}) was changed after it was applied",
                migration.name
            )));
        }
    }
    Ok(known
        .iter()
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KNOWN: [Migration; 2] = [
        Migration {
            version: 1,
            name: "one",
            sql: "CREATE TABLE a (x INTEGER);",
        },
        Migration {
            version: 2,
            name: "two",
            sql: "CREATE TABLE b (x INTEGER);",
        },
    ];

    #[test]
    fn plans() {
        assert_eq!(plan(&KNOWN, &[]).unwrap().len(), 2);
        let one = (1, checksum(KNOWN[0].sql));
        assert_eq!(plan(&KNOWN, std::slice::from_ref(&one)).unwrap()[0].version, 2);
        assert!(plan(&KNOWN, &[(1, "edited".into())]).is_err());
        assert!(plan(&KNOWN, &[one, (3, "x".into())]).is_err());
    }

    /// Every file under `migrations/<backend>/` is listed, in order, with its name and version, and the
    /// embedded text is the file's: a migration added on disk but not to the list would never run.
    #[test]
    fn every_migration_file_is_listed() {
        let backends: [(&str, &[Migration]); 2] = [
            ("sqlite", &crate::sqlite::MIGRATIONS),
            ("postgres", &crate::postgres::MIGRATIONS),
        ];
        for (backend, listed) in backends {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(backend);
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                .collect();
            files.sort();
            let expected: Vec<String> = listed
                .iter()
                .map(|m| format!("{:04}_{}.sql", m.version, m.name))
                .collect();
            assert_eq!(files, expected, "{backend}: files on disk vs the MIGRATIONS list");
            for migration in listed {
                let path = dir.join(format!("{:04}_{}.sql", migration.version, migration.name));
                assert_eq!(
                    std::fs::read_to_string(&path).unwrap(),
                    migration.sql,
                    "{}",
                    path.display()
                );
            }
        }
    }
}
