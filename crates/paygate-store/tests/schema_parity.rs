//! Schema parity: the SQLite and PostgreSQL migrations must describe the same tables.
//!
//! Both backends are migrated from scratch and introspected; types are normalised (SQLite INTEGER and PostgreSQL
//! smallint/integer/bigint are "integer", TEXT and text/varchar "text", BLOB and bytea "bytes"), then compared:
//! tables, ordered columns with type and nullability, primary keys, unique column sets (constraints and unique
//! indexes alike), other indexes, foreign keys and which columns carry CHECK constraints.
//!
//! Needs PostgreSQL: run with `--features postgres-tests` and `PAYGATE_TEST_DATABASE_URL` set to an admin URL.
#![cfg(feature = "postgres-tests")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::Path;

use common::{connect, fresh_database, postgres_admin_url, TestDatabase, DATABASE_URL_ENV};
use paygate_store::DatabaseUrl;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Table {
    columns: Vec<Column>,
    primary_key: Vec<String>,
    /// Column sets (sorted) that must be unique, whether by constraint or by unique index.
    uniques: BTreeSet<Vec<String>>,
    /// Non-unique indexes, as ordered column lists.
    indexes: BTreeSet<Vec<String>>,
    /// column → referenced `table.column`
    foreign_keys: BTreeSet<(String, String)>,
    /// Columns that appear in a CHECK constraint.
    checked: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Column {
    name: String,
    ty: String,
    nullable: bool,
}

type Schema = BTreeMap<String, Table>;

#[tokio::test]
async fn sqlite_and_postgres_schemas_match() {
    assert!(
        postgres_admin_url().is_some(),
        "the schema parity test needs PostgreSQL: set {DATABASE_URL_ENV} (e.g. postgres://postgres@127.0.0.1:5432/postgres)"
    );
    let sqlite_db = TestDatabase::sqlite();
    let pg_db = fresh_database().await;
    eprintln!("schema parity: {} vs {}", sqlite_db.url, pg_db.url);
    let (sqlite_store, _) = sqlite_db.open().await.unwrap();
    let (pg_store, _) = pg_db.open().await.unwrap();
    sqlite_store.close().await;
    pg_store.close().await;

    let sqlite = sqlite_schema(&sqlite_db.sqlite_path().unwrap()).await;
    let DatabaseUrl::Postgres(pg_url) = &pg_db.url else {
        panic!("not a PostgreSQL database: {}", pg_db.url)
    };
    let postgres = postgres_schema(pg_url).await;
    // Introspection that found nothing would compare equal too: check that each side sees what we know is there.
    for (backend, schema) in [("sqlite", &sqlite), ("postgres", &postgres)] {
        let keys = &schema["api_keys"];
        let idempotency = &schema["idempotency_keys"];
        let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let facts = [
            ("schema_migrations", schema.contains_key("schema_migrations")),
            (
                "primary key",
                idempotency.primary_key == strings(&["merchant_id", "mode", "key_kind", "idempotency_key"]),
            ),
            ("unique", keys.uniques.contains(&strings(&["key_hash"]))),
            ("index", idempotency.indexes.contains(&strings(&["created_at"]))),
            (
                "foreign key",
                keys.foreign_keys
                    .contains(&("merchant_id".into(), "merchants.id".into())),
            ),
            (
                "checks",
                keys.checked == BTreeSet::from(["kind".to_owned(), "mode".to_owned()]),
            ),
            (
                "nullable",
                keys.columns
                    .iter()
                    .any(|c| c.name == "revoked_at" && c.nullable && c.ty == "integer"),
            ),
        ];
        for (fact, holds) in facts {
            assert!(holds, "{backend} introspection missed the {fact}: {schema:#?}");
        }
    }

    let differences = compare(&sqlite, &postgres);
    assert!(
        differences.is_empty(),
        "the SQLite and PostgreSQL schemas differ:\n  {}\n\nSQLite: {sqlite:#?}\n\nPostgreSQL: {postgres:#?}",
        differences.join("\n  ")
    );
}

/// The comparer must be able to fail: each hand-made change to a schema is reported, and only it.
#[test]
fn the_comparer_reports_each_kind_of_difference() {
    let column = |name: &str, ty: &str, nullable: bool| Column {
        name: name.into(),
        ty: ty.into(),
        nullable,
    };
    let base: Schema = BTreeMap::from([(
        "things".to_owned(),
        Table {
            columns: vec![
                column("id", "text", false),
                column("note", "text", true),
                column("n", "integer", false),
            ],
            primary_key: vec!["id".into()],
            uniques: BTreeSet::from([vec!["note".to_owned()]]),
            indexes: BTreeSet::from([vec!["n".to_owned()]]),
            foreign_keys: BTreeSet::from([("note".to_owned(), "others.id".to_owned())]),
            checked: BTreeSet::from(["n".to_owned()]),
        },
    )]);
    type Edit = fn(&mut Table);
    let cases: [(&str, Edit, &str); 8] = [
        (
            "nullability",
            |t| t.columns[1].nullable = false,
            "column note: nullable in sqlite, NOT NULL in postgres",
        ),
        (
            "type",
            |t| t.columns[2].ty = "bytes".into(),
            "column n: type integer in sqlite, bytes in postgres",
        ),
        (
            "name",
            |t| t.columns[1].name = "memo".into(),
            "column 2: `note` in sqlite, `memo` in postgres",
        ),
        (
            "missing column",
            |t| _ = t.columns.pop(),
            "column 3: `n` in sqlite, none in postgres",
        ),
        (
            "primary key",
            |t| t.primary_key.push("n".into()),
            "primary key: [\"id\"] in sqlite, [\"id\", \"n\"]",
        ),
        ("unique", |t| t.uniques.clear(), "unique [\"note\"] only in sqlite"),
        (
            "foreign key",
            |t| t.foreign_keys.clear(),
            "foreign key (\"note\", \"others.id\") only in sqlite",
        ),
        (
            "check",
            |t| _ = t.checked.insert("id".into()),
            "check on \"id\" only in postgres",
        ),
    ];
    assert_eq!(compare(&base, &base), Vec::<String>::new());
    for (what, edit, expected) in cases {
        let mut changed = base.clone();
        edit(changed.get_mut("things").unwrap());
        let differences = compare(&base, &changed);
        assert_eq!(differences.len(), 1, "{what}: {differences:#?}");
        assert!(
            differences[0].contains(expected),
            "{what}: {} lacks {expected:?}",
            differences[0]
        );
        assert!(
            differences[0].starts_with("table things:"),
            "{what}: {}",
            differences[0]
        );
    }
    let mut extra = base.clone();
    extra.insert("more".into(), Table::default());
    assert_eq!(compare(&base, &extra), ["table more: only in postgres"]);
}

fn compare(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    for name in sqlite.keys().chain(postgres.keys()).collect::<BTreeSet<_>>() {
        let (a, b) = match (sqlite.get(name), postgres.get(name)) {
            (Some(a), Some(b)) => (a, b),
            (Some(_), None) => {
                out.push(format!("table {name}: only in sqlite"));
                continue;
            }
            (None, _) => {
                out.push(format!("table {name}: only in postgres"));
                continue;
            }
        };
        let mut report = |what: String| out.push(format!("table {name}: {what}"));
        for i in 0..a.columns.len().max(b.columns.len()) {
            match (a.columns.get(i), b.columns.get(i)) {
                (Some(x), Some(y)) if x.name != y.name => report(format!(
                    "column {}: `{}` in sqlite, `{}` in postgres",
                    i + 1,
                    x.name,
                    y.name
                )),
                (Some(x), Some(y)) => {
                    if x.ty != y.ty {
                        report(format!(
                            "column {}: type {} in sqlite, {} in postgres",
                            x.name, x.ty, y.ty
                        ));
                    }
                    if x.nullable != y.nullable {
                        let null = |nullable| if nullable { "nullable" } else { "NOT NULL" };
                        report(format!(
                            "column {}: {} in sqlite, {} in postgres",
                            x.name,
                            null(x.nullable),
                            null(y.nullable)
                        ));
                    }
                }
                (Some(x), None) => report(format!("column {}: `{}` in sqlite, none in postgres", i + 1, x.name)),
                (None, Some(y)) => report(format!("column {}: none in sqlite, `{}` in postgres", i + 1, y.name)),
                (None, None) => {}
            }
        }
        if a.primary_key != b.primary_key {
            report(format!(
                "primary key: {:?} in sqlite, {:?} in postgres",
                a.primary_key, b.primary_key
            ));
        }
        set_differences("unique", &a.uniques, &b.uniques, &mut report);
        set_differences("index", &a.indexes, &b.indexes, &mut report);
        set_differences("foreign key", &a.foreign_keys, &b.foreign_keys, &mut report);
        set_differences("check on", &a.checked, &b.checked, &mut report);
    }
    out
}

fn set_differences<T: Ord + Debug>(what: &str, a: &BTreeSet<T>, b: &BTreeSet<T>, report: &mut impl FnMut(String)) {
    for item in a.difference(b) {
        report(format!("{what} {item:?} only in sqlite"));
    }
    for item in b.difference(a) {
        report(format!("{what} {item:?} only in postgres"));
    }
}

fn normalise_type(declared: &str) -> String {
    match declared.trim().to_ascii_lowercase().as_str() {
        "integer" | "int" | "bigint" | "smallint" => "integer".into(),
        "text" | "character varying" | "varchar" | "character" => "text".into(),
        "blob" | "bytea" => "bytes".into(),
        other => format!("other:{other}"),
    }
}

// SQLite.

async fn sqlite_schema(path: &Path) -> Schema {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || sqlite_schema_blocking(&path).unwrap())
        .await
        .unwrap()
}

fn sqlite_schema_blocking(path: &Path) -> rusqlite::Result<Schema> {
    let conn = rusqlite::Connection::open(path)?;
    let tables: Vec<(String, String)> = conn
        .prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut schema = Schema::new();
    for (name, sql) in tables {
        let mut table = Table::default();
        let mut primary_key = Vec::new();
        let mut stmt = conn.prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid")?;
        let mut rows = stmt.query([&name])?;
        while let Some(row) = rows.next()? {
            let column: String = row.get(0)?;
            let declared: String = row.get(1)?;
            let pk: i64 = row.get(3)?;
            if pk > 0 {
                primary_key.push((pk, column.clone()));
            }
            table.columns.push(Column {
                name: column,
                ty: normalise_type(&declared),
                nullable: row.get::<_, i64>(2)? == 0,
            });
        }
        primary_key.sort();
        table.primary_key = primary_key.into_iter().map(|(_, column)| column).collect();

        let mut stmt = conn.prepare("SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list(?1)")?;
        let mut rows = stmt.query([&name])?;
        while let Some(row) = rows.next()? {
            let to: Option<String> = row.get(2)?; // NULL: the parent's primary key
            let parent: String = row.get(1)?;
            table
                .foreign_keys
                .insert((row.get(0)?, format!("{parent}.{}", to.unwrap_or_else(|| "<pk>".into()))));
        }

        let indexes: Vec<(String, bool, String)> = conn
            .prepare("SELECT name, \"unique\", origin FROM pragma_index_list(?1)")?
            .query_map([&name], |row| {
                Ok((row.get(0)?, row.get::<_, i64>(1)? == 1, row.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        for (index, unique, origin) in indexes {
            if origin == "pk" {
                continue;
            }
            let mut columns: Vec<String> = conn
                .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")?
                .query_map([&index], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            if unique {
                columns.sort();
                table.uniques.insert(columns);
            } else {
                table.indexes.insert(columns);
            }
        }
        let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        table.checked = checked_columns(&sql, &names);
        schema.insert(name, table);
    }
    Ok(schema)
}

/// SQLite has no catalogue of CHECK constraints, so they are read from the `CREATE TABLE` text: every column a
/// CHECK expression names, and the column a column-level CHECK is attached to.
fn checked_columns(create_table: &str, columns: &[&str]) -> BTreeSet<String> {
    let body = match (create_table.find('('), create_table.rfind(')')) {
        (Some(start), Some(end)) if start < end => &create_table[start + 1..end],
        _ => return BTreeSet::new(),
    };
    let mut definitions = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in body.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                definitions.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    definitions.push(&body[start..]);
    let mut checked = BTreeSet::new();
    for definition in definitions {
        let upper = definition.to_ascii_uppercase();
        // The keyword, not a word containing it (`checksum`).
        let is_ident = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let keyword = upper.match_indices("CHECK").map(|(i, _)| i).find(|&i| {
            !is_ident(upper[..i].chars().next_back()) && !is_ident(upper[i + "CHECK".len()..].chars().next())
        });
        let Some(at) = keyword else { continue };
        let words = |text: &str| -> Vec<String> {
            // Drop string literals, then split into identifiers.
            let unquoted: String = text.split('\'').step_by(2).collect::<Vec<_>>().join(" ");
            unquoted
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let first = words(definition).into_iter().next().unwrap_or_default();
        let table_constraint =
            ["CONSTRAINT", "CHECK", "PRIMARY", "UNIQUE", "FOREIGN"].contains(&first.to_ascii_uppercase().as_str());
        if !table_constraint && columns.contains(&first.as_str()) {
            checked.insert(first);
        }
        for word in words(&definition[at..]) {
            if columns.contains(&word.as_str()) {
                checked.insert(word);
            }
        }
    }
    checked
}

// PostgreSQL.

async fn postgres_schema(url: &str) -> Schema {
    let client = connect(url).await.unwrap();
    let mut schema = Schema::new();
    let tables = client
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            &[],
        )
        .await
        .unwrap();
    for row in tables {
        schema.insert(row.get(0), Table::default());
    }
    fn table(schema: &mut Schema, name: String) -> &mut Table {
        schema.entry(name).or_default()
    }

    let columns = client
        .query(
            "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text = 'YES'
             FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
            &[],
        )
        .await
        .unwrap();
    for row in columns {
        let ty: String = row.get(2);
        table(&mut schema, row.get(0)).columns.push(Column {
            name: row.get(1),
            ty: normalise_type(&ty),
            nullable: row.get(3),
        });
    }

    let primary_keys = client
        .query(
            "SELECT kcu.table_name::text, kcu.column_name::text
             FROM information_schema.table_constraints tc
             JOIN information_schema.key_column_usage kcu
               ON kcu.constraint_schema = tc.constraint_schema AND kcu.constraint_name = tc.constraint_name
             WHERE tc.table_schema = 'public' AND tc.constraint_type = 'PRIMARY KEY'
             ORDER BY kcu.table_name, kcu.ordinal_position",
            &[],
        )
        .await
        .unwrap();
    for row in primary_keys {
        table(&mut schema, row.get(0)).primary_key.push(row.get(1));
    }

    let foreign_keys = client
        .query(
            "SELECT kcu.table_name::text, kcu.column_name::text, rk.table_name::text, rk.column_name::text
             FROM information_schema.referential_constraints rc
             JOIN information_schema.key_column_usage kcu
               ON kcu.constraint_schema = rc.constraint_schema AND kcu.constraint_name = rc.constraint_name
             JOIN information_schema.key_column_usage rk
               ON rk.constraint_schema = rc.unique_constraint_schema AND rk.constraint_name = rc.unique_constraint_name
              AND rk.ordinal_position = kcu.position_in_unique_constraint
             WHERE rc.constraint_schema = 'public'",
            &[],
        )
        .await
        .unwrap();
    for row in foreign_keys {
        let target = format!("{}.{}", row.get::<_, String>(2), row.get::<_, String>(3));
        table(&mut schema, row.get(0)).foreign_keys.insert((row.get(1), target));
    }

    // Unique constraints are backed by unique indexes, so pg_index covers both.
    let indexes = client
        .query(
            "SELECT t.relname::text, x.indisunique, array_agg(a.attname::text ORDER BY k.ord)
             FROM pg_index x
             JOIN pg_class t ON t.oid = x.indrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
             WHERE n.nspname = 'public' AND NOT x.indisprimary
             GROUP BY t.relname, x.indexrelid, x.indisunique",
            &[],
        )
        .await
        .unwrap();
    for row in indexes {
        let mut columns: Vec<String> = row.get(2);
        let entry = table(&mut schema, row.get(0));
        if row.get(1) {
            columns.sort();
            entry.uniques.insert(columns);
        } else {
            entry.indexes.insert(columns);
        }
    }

    let checks = client
        .query(
            "SELECT t.relname::text, a.attname::text
             FROM pg_constraint c
             JOIN pg_class t ON t.oid = c.conrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY (c.conkey)
             WHERE n.nspname = 'public' AND c.contype = 'c'",
            &[],
        )
        .await
        .unwrap();
    for row in checks {
        table(&mut schema, row.get(0)).checked.insert(row.get(1));
    }
    schema
}
