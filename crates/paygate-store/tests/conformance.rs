//! The store's black-box conformance suite. It runs against the backend `PAYGATE_TEST_DATABASE_URL` selects (see
//! `common`), so SQLite and PostgreSQL are held to the same expectations. Tests named `sqlite_*` check SQLite
//! specifics and always run on SQLite.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use paygate_domain::api_key::{KeyHash, KeyKind, Mode};
use paygate_domain::id::ApiKeyId;
use paygate_domain::time::UnixMillis;
use paygate_store::{Backend, DatabaseUrl, MigrationReport, OpenMode, Store, StoreError, StoreOptions};

const T0: i64 = 1_700_000_000_000;

/// Every migration this paygate knows, in order.
const MIGRATIONS: [i64; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

fn is_conflict<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict(_)))
}

// Opening and migrations.

#[tokio::test]
async fn fresh_database_is_migrated_once() {
    let ts = fresh_store().await;
    assert_eq!(ts.backend(), selected_backend());
    assert_eq!(
        ts.report,
        MigrationReport {
            applied: MIGRATIONS.to_vec(),
            was_empty: true
        }
    );
    let (again, report) = ts.db.open().await.unwrap();
    assert_eq!(
        report,
        MigrationReport {
            applied: vec![],
            was_empty: false
        }
    );
    again.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_starting_together_migrate_once() {
    let db = Arc::new(fresh_database().await);
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let db = Arc::clone(&db);
            tokio::spawn(async move { db.open().await.map(|(_, report)| report) })
        })
        .collect();
    let mut reports = Vec::new();
    for open in opens {
        reports.push(open.await.unwrap().unwrap());
    }
    let fresh = MigrationReport {
        applied: MIGRATIONS.to_vec(),
        was_empty: true,
    };
    let later = MigrationReport {
        applied: vec![],
        was_empty: false,
    };
    assert_eq!(reports.iter().filter(|r| **r == fresh).count(), 1, "{reports:?}");
    assert_eq!(reports.iter().filter(|r| **r == later).count(), 5, "{reports:?}");
}

#[tokio::test]
async fn tampered_migration_records_are_refused() {
    let cases = [
        (
            "UPDATE schema_migrations SET checksum = 'x'",
            "was changed after it was applied",
        ),
        (
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (9999, 'future', 'x', 0)",
            "migrated by a newer version",
        ),
    ];
    for (tamper, expected) in cases {
        let ts = fresh_store().await;
        ts.db.execute(tamper).await;
        match ts.db.open().await {
            Err(StoreError::Schema(message)) => assert!(message.contains(expected), "{tamper}: {message}"),
            Err(other) => panic!("{tamper}: expected a schema error, got {other:?}"),
            Ok(_) => panic!("{tamper}: the tampered database was opened"),
        }
    }
}

#[tokio::test]
async fn opening_a_missing_database_fails_cleanly() {
    match selected_backend() {
        Backend::Sqlite => {
            eprintln!("store test backend: sqlite");
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("nested").join("missing.db");
            let options = StoreOptions {
                open_mode: OpenMode::ExistingOnly,
                ..test_options()
            };
            let result = paygate_store::open(&DatabaseUrl::sqlite_file(&path), &options).await;
            assert!(matches!(result, Err(StoreError::Missing(_))), "{:?}", result.err());
            assert!(
                !path.exists() && !path.parent().unwrap().exists(),
                "ExistingOnly created something"
            );
        }
        Backend::Postgres => {
            eprintln!("store test backend: postgres");
            let admin = postgres_admin_url().unwrap();
            // A database nobody created, and a port nobody listens on; both URLs carry a password to look for.
            let base = with_database(&admin, "paygate_test_does_not_exist");
            let (scheme, rest) = base.split_once("://").unwrap();
            let (user, host_and_path) = match rest.rsplit_once('@') {
                Some((userinfo, host)) => (userinfo.split(':').next().unwrap_or("postgres"), host),
                None => ("postgres", rest),
            };
            let missing = format!("{scheme}://{user}:s3cr3t-pw@{host_and_path}");
            let unreachable = "postgres://postgres:s3cr3t-pw@127.0.0.1:1/postgres".to_owned();
            for url in [missing, unreachable] {
                let result = paygate_store::open(&DatabaseUrl::Postgres(url.clone()), &test_options()).await;
                match result {
                    Err(StoreError::Unavailable(message)) => {
                        assert!(!message.contains("s3cr3t-pw"), "the password leaked: {message}");
                        eprintln!("  {message}");
                    }
                    other => panic!("{url}: expected Unavailable, got {:?}", other.map(|(_, r)| r)),
                }
            }
        }
    }
}

/// The database holds customers' names and emails: a new one is owner-only, with its WAL and shared-memory files,
/// and so are the directories created for it (SQLite alone made all three files 0644 under the usual umask).
#[cfg(unix)]
#[tokio::test]
async fn sqlite_creates_private_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new").join("data").join("paygate.db");
    let (store, report) = paygate_store::open(&DatabaseUrl::sqlite_file(&path), &test_options())
        .await
        .unwrap();
    assert!(report.was_empty);
    let mode = |path: &std::path::Path| {
        let metadata = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        metadata.permissions().mode() & 0o777
    };
    let with_suffix = |suffix: &str| {
        let mut name = path.clone().into_os_string();
        name.push(suffix);
        std::path::PathBuf::from(name)
    };
    for file in [path.clone(), with_suffix("-wal"), with_suffix("-shm")] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    for created in [dir.path().join("new"), dir.path().join("new").join("data")] {
        assert_eq!(mode(&created), 0o700, "{}", created.display());
    }
    store.close().await;
}

#[tokio::test]
async fn sqlite_uses_wal() {
    let db = TestDatabase::sqlite();
    eprintln!("store test backend: sqlite ({})", db.url);
    let (store, _) = db.open().await.unwrap();
    // journal_mode is a property of the file; synchronous and foreign_keys are per connection (the latter is
    // exercised by `claims_for_unknown_merchants_are_conflicts`).
    let conn = rusqlite::Connection::open(db.sqlite_path().unwrap()).unwrap();
    let journal: String = conn.pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
    assert_eq!(journal.to_lowercase(), "wal");
    store.close().await;
}

#[tokio::test]
async fn ping_backend_and_pool_stats() {
    let ts = fresh_store().await;
    ts.ping().await.unwrap();
    let stats = ts.pool_stats();
    assert!(stats.connections >= 1, "{stats:?}");
    assert!(stats.idle <= stats.connections, "{stats:?}");
    ts.close().await;
    ts.close().await; // idempotent
                      // A closed store refuses work on both backends instead of queueing it.
    assert!(
        matches!(ts.ping().await, Err(StoreError::Overloaded(_))),
        "{:?}",
        ts.ping().await
    );
}

// Merchants and keys.

#[tokio::test]
async fn merchant_with_keys_round_trips() {
    let ts = fresh_store().await;
    let (merchant, keys) = seeded_merchant(&*ts, T0).await;
    assert_eq!(ts.merchant(merchant.id).await.unwrap(), Some(merchant.clone()));
    assert_eq!(ts.merchant(merchant_at(T0).id).await.unwrap(), None);

    let mut expected: Vec<_> = keys.iter().map(|k| k.record.clone()).collect();
    expected.sort_by_key(|k| k.id);
    assert_eq!(ts.list_keys(merchant.id).await.unwrap(), expected);
    assert_eq!(ts.list_keys(merchant_at(T0).id).await.unwrap(), vec![]);
    for key in &keys {
        assert_eq!(
            ts.key_by_hash(&key.hash).await.unwrap(),
            Some((key.record.clone(), merchant.clone()))
        );
        assert_eq!(ts.key(key.record.id).await.unwrap(), Some(key.record.clone()));
    }
    assert_eq!(ts.key_by_hash(&KeyHash::from_bytes([0; 32])).await.unwrap(), None);
    assert_eq!(
        ts.key(ApiKeyId::new(UnixMillis::new(T0), entropy())).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn merchants_page_in_id_order() {
    let ts = fresh_store().await;
    let mut ids = Vec::new();
    for i in [3, 0, 4, 1, 2] {
        let merchant = merchant_at(T0 + i);
        ts.insert_merchant(&merchant, &[]).await.unwrap();
        ids.push(merchant.id);
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut after = None;
    let mut sizes = Vec::new();
    loop {
        let page = ts.list_merchants(after, 2).await.unwrap();
        sizes.push(page.len());
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        seen.extend(page.iter().map(|m| m.id));
    }
    assert_eq!(sizes, [2, 2, 1, 0]);
    assert_eq!(seen, ids);
    assert_eq!(ts.list_merchants(None, 0).await.unwrap(), vec![]);
    assert_eq!(ts.list_merchants(Some(ids[4]), 10).await.unwrap(), vec![]);
}

#[tokio::test]
async fn failed_merchant_inserts_persist_nothing() {
    let ts = fresh_store().await;
    let (first, first_keys) = seeded_merchant(&*ts, T0).await;
    let other = merchant_at(T0 + 1);

    // (what is inserted, keys, why it must fail)
    let mut same_id = merchant_at(T0 + 2);
    same_id.id = first.id;
    let same_id_keys = four_keys(&same_id, T0 + 2);
    let mut dup_hash_keys = four_keys(&other, T0 + 1);
    dup_hash_keys[3].hash = first_keys[0].hash;
    let foreign_keys = vec![new_key(&first, Mode::Test, KeyKind::Secret, T0 + 1)];
    let cases = [
        (same_id, same_id_keys, "duplicate merchant ID"),
        (other.clone(), dup_hash_keys, "duplicate key hash"),
        (other.clone(), foreign_keys, "key of another merchant"),
    ];
    for (merchant, keys, why) in cases {
        let result = ts.insert_merchant(&merchant, &keys).await;
        assert!(is_conflict(&result), "{why}: {result:?}");
        // Every key ID is new, and so is every hash but the deliberate duplicate.
        for key in &keys {
            assert_eq!(ts.key(key.record.id).await.unwrap(), None, "{why}: a key was kept");
            if key.hash != first_keys[0].hash {
                assert_eq!(ts.key_by_hash(&key.hash).await.unwrap(), None, "{why}: a key was kept");
            }
        }
    }
    assert_eq!(ts.merchant(other.id).await.unwrap(), None);
    assert_eq!(ts.merchant(first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(ts.list_keys(first.id).await.unwrap().len(), 4);
    assert_eq!(ts.list_merchants(None, 10).await.unwrap(), vec![first]);
}

#[tokio::test]
async fn revocation_keeps_the_earliest_instant() {
    let ts = fresh_store().await;
    let (_, keys) = seeded_merchant(&*ts, T0).await;
    let key = &keys[0];
    // (revoke at, revoked_at afterwards)
    let steps = [(T0 + 100, T0 + 100), (T0 + 200, T0 + 100), (T0 + 50, T0 + 50)];
    for (at, expected) in steps {
        let revoked = ts.revoke_key(key.record.id, UnixMillis::new(at)).await.unwrap();
        assert_eq!(revoked.revoked_at, Some(UnixMillis::new(expected)), "revoke at {at}");
        assert_eq!(revoked.id, key.record.id);
        let (found, _) = ts.key_by_hash(&key.hash).await.unwrap().unwrap();
        assert_eq!(found, revoked, "key_by_hash returns revoked keys too");
    }
    let unknown = ts
        .revoke_key(ApiKeyId::new(UnixMillis::new(T0), entropy()), UnixMillis::new(T0))
        .await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
    // The other keys are untouched.
    for other in &keys[1..] {
        assert_eq!(ts.key(other.record.id).await.unwrap().unwrap().revoked_at, None);
    }
}

#[tokio::test]
async fn rotation() {
    let ts = fresh_store().await;
    let (merchant, keys) = seeded_merchant(&*ts, T0).await;
    let (other_merchant, _) = seeded_merchant(&*ts, T0 + 1).await;
    let grace = UnixMillis::new(T0 + 86_400_000);
    // keys[0] is test/sk, keys[1] test/ck, keys[2] live/sk, keys[3] live/ck.
    let test_sk = &keys[0].record;
    assert_eq!((test_sk.mode, test_sk.kind), (Mode::Test, KeyKind::Secret));

    // Mismatches first, while keys[0] is still active: each must leave both keys as they were.
    let mut with_dup_hash = new_key(&merchant, Mode::Test, KeyKind::Secret, T0 + 5);
    with_dup_hash.hash = keys[1].hash;
    let cases = [
        (
            test_sk.id,
            new_key(&merchant, Mode::Live, KeyKind::Secret, T0 + 5),
            "other mode",
        ),
        (
            test_sk.id,
            new_key(&merchant, Mode::Test, KeyKind::Client, T0 + 5),
            "other kind",
        ),
        (
            test_sk.id,
            new_key(&other_merchant, Mode::Test, KeyKind::Secret, T0 + 5),
            "other merchant",
        ),
        (test_sk.id, with_dup_hash, "hash already in use"),
    ];
    for (old, new, why) in cases {
        let result = ts.rotate_key(old, grace, &new).await;
        assert!(is_conflict(&result), "{why}: {result:?}");
        assert_eq!(
            ts.key(new.record.id).await.unwrap(),
            None,
            "{why}: the new key was inserted"
        );
        assert_eq!(
            ts.key(old).await.unwrap().unwrap().revoked_at,
            None,
            "{why}: the old key was revoked"
        );
    }
    let unknown = ApiKeyId::new(UnixMillis::new(T0), entropy());
    let result = ts
        .rotate_key(unknown, grace, &new_key(&merchant, Mode::Test, KeyKind::Secret, T0 + 5))
        .await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");

    // The real rotation.
    let new = new_key(&merchant, Mode::Test, KeyKind::Secret, T0 + 10);
    ts.rotate_key(test_sk.id, grace, &new).await.unwrap();
    assert_eq!(ts.key(test_sk.id).await.unwrap().unwrap().revoked_at, Some(grace));
    assert_eq!(
        ts.key_by_hash(&new.hash).await.unwrap(),
        Some((new.record.clone(), merchant.clone()))
    );
    assert_eq!(ts.list_keys(merchant.id).await.unwrap().len(), 5);

    // Rotating it again (it is already scheduled for revocation) must not add a key.
    let again = new_key(&merchant, Mode::Test, KeyKind::Secret, T0 + 20);
    let result = ts.rotate_key(test_sk.id, grace, &again).await;
    assert!(is_conflict(&result), "{result:?}");
    assert_eq!(ts.key_by_hash(&again.hash).await.unwrap(), None);
    // A revoked (not rotated) key cannot be rotated either.
    ts.revoke_key(keys[2].record.id, UnixMillis::new(T0)).await.unwrap();
    let live = new_key(&merchant, Mode::Live, KeyKind::Secret, T0 + 20);
    assert!(is_conflict(&ts.rotate_key(keys[2].record.id, grace, &live).await));
    assert_eq!(ts.key(live.record.id).await.unwrap(), None);
    assert_eq!(ts.list_keys(merchant.id).await.unwrap().len(), 5);
}

// Idempotency.

#[tokio::test]
async fn rows_the_domain_cannot_read_are_corrupt() {
    let ts = fresh_store().await;
    let merchant = merchant_at(T0);
    // An empty name passes the schema but not `MerchantName::parse`.
    ts.db
        .execute(&format!(
            "INSERT INTO merchants (id, name, status, created_at) VALUES ('{}', '', 'ACTIVE', {T0})",
            merchant.id
        ))
        .await;
    let one = ts.merchant(merchant.id).await;
    assert!(matches!(one, Err(StoreError::Corrupt(_))), "{one:?}");
    let listed = ts.list_merchants(None, 10).await;
    assert!(matches!(listed, Err(StoreError::Corrupt(_))), "{listed:?}");
}

// Concurrency.

/// Several stores on one database stand in for several gateway processes.
async fn processes(ts: &TestStore, count: usize) -> Vec<Arc<dyn Store>> {
    let mut stores = vec![Arc::clone(&ts.store)];
    for _ in 1..count {
        stores.push(ts.db.open().await.unwrap().0);
    }
    stores
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotations_have_one_winner() {
    let ts = fresh_store().await;
    let (merchant, keys) = seeded_merchant(&*ts, T0).await;
    let stores = processes(&ts, 3).await;
    let old = keys[3].record.clone();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = Arc::clone(&stores[i % stores.len()]);
            let new = new_key(&merchant, old.mode, old.kind, T0 + 1);
            tokio::spawn(async move { (store.rotate_key(old.id, UnixMillis::new(T0 + 9), &new).await, new) })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (result, new) = task.await.unwrap();
        match result {
            Ok(()) => winners.push(new.record),
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("unexpected rotation error: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let listed = ts.list_keys(merchant.id).await.unwrap();
    assert_eq!(listed.len(), 5);
    assert!(listed.contains(&winners[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_writes_all_commit() {
    let ts = fresh_store().await;
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let store = Arc::clone(&ts.store);
            let merchant = merchant_at(T0 + i);
            tokio::spawn(async move { store.insert_merchant(&merchant, &[]).await.map(|()| merchant.id) })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().unwrap());
    }
    let listed: Vec<_> = ts
        .list_merchants(None, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    ids.sort();
    assert_eq!(listed, ids);
}

/// With group commit, one failing job must roll back alone. Ten rounds of twenty concurrent inserts, one of them
/// a duplicate of an existing merchant, make shared batches likely.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_write_does_not_sink_the_others() {
    let ts = fresh_store().await;
    let existing = merchant_at(T0);
    ts.insert_merchant(&existing, &[]).await.unwrap();
    let mut expected = vec![existing.id];
    for round in 0..10 {
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = Arc::clone(&ts.store);
                let mut merchant = merchant_at(T0 + 1 + round * 20 + i);
                if i == 10 {
                    merchant.id = existing.id;
                }
                let keys = four_keys(&merchant, T0);
                tokio::spawn(async move { (store.insert_merchant(&merchant, &keys).await, merchant.id) })
            })
            .collect();
        let (mut ok, mut conflicts) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                (Ok(()), id) => {
                    ok += 1;
                    expected.push(id);
                }
                (Err(StoreError::Conflict(_)), id) => {
                    conflicts += 1;
                    assert_eq!(id, existing.id);
                }
                (Err(other), _) => panic!("unexpected insert error: {other:?}"),
            }
        }
        assert_eq!((ok, conflicts), (19, 1), "round {round}");
    }
    expected.sort();
    let listed: Vec<_> = ts
        .list_merchants(None, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(listed, expected);
    let unique: HashSet<_> = listed.iter().collect();
    assert_eq!(unique.len(), 1 + 10 * 19);
    assert_eq!(
        ts.list_keys(existing.id).await.unwrap(),
        vec![],
        "the duplicate's keys were kept"
    );
}
