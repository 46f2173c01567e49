//! Key lifecycle through the use cases, with a clock the test moves.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use paygate_app::auth::AuthError;
use paygate_app::clock::ManualClock;
use paygate_app::{App, AppError, Secrets};
use paygate_domain::api_key::{KeyKind, Mode};
use paygate_domain::time::UnixMillis;
use paygate_store::testing::TestDatabase;

async fn app_with_clock() -> (App, Arc<ManualClock>, TestDatabase) {
    let db = TestDatabase::new().await;
    let (store, _) = db.open().await;
    let clock = Arc::new(ManualClock::new(UnixMillis::new(1_795_000_000_000)));
    let app = App::new(store, &Secrets::for_tests(5), clock.clone()).unwrap();
    (app, clock, db)
}

#[tokio::test]
async fn rotation_grace_period_ends_on_time() {
    let (app, clock, _db) = app_with_clock().await;
    let created = app.create_merchant("Clockwork").await.unwrap();
    let old = created.key(Mode::Test, KeyKind::Secret).unwrap().clone();
    let new = app.rotate_key(old.record.id, 3600).await.unwrap();
    assert_eq!((new.record.mode, new.record.kind), (Mode::Test, KeyKind::Secret));

    let old_text = old.secret.expose_secret().to_owned();
    let new_text = new.secret.expose_secret().to_owned();
    clock.advance_millis(3_599_999);
    assert!(
        app.authenticate(&old_text).await.is_ok(),
        "old key works during the grace period"
    );
    assert!(app.authenticate(&new_text).await.is_ok());
    clock.advance_millis(1);
    assert!(matches!(app.authenticate(&old_text).await, Err(AuthError::Revoked)));
    assert!(app.authenticate(&new_text).await.is_ok());

    // A key already scheduled for revocation cannot be rotated again; its replacement can.
    assert!(matches!(
        app.rotate_key(old.record.id, 0).await,
        Err(AppError::Conflict(_))
    ));
    let newest = app.rotate_key(new.record.id, 0).await.unwrap();
    assert!(matches!(app.authenticate(&new_text).await, Err(AuthError::Revoked)));
    let caller = app.authenticate(newest.secret.expose_secret()).await.unwrap();
    assert_eq!(caller.merchant.id, created.merchant.id);
    assert_eq!(caller.key.id, newest.record.id);
}

#[tokio::test]
async fn authentication_outcomes() {
    let (app, _clock, _db) = app_with_clock().await;
    let created = app.create_merchant("Outcomes").await.unwrap();
    assert_eq!(created.keys.len(), 4);
    for issued in &created.keys {
        let caller = app.authenticate(issued.secret.expose_secret()).await.unwrap();
        assert_eq!(
            (caller.key.mode, caller.key.kind),
            (issued.record.mode, issued.record.kind)
        );
    }
    let secret = created.key(Mode::Live, KeyKind::Secret).unwrap();
    app.revoke_key(secret.record.id).await.unwrap();
    assert!(matches!(
        app.authenticate(secret.secret.expose_secret()).await,
        Err(AuthError::Revoked)
    ));
    assert!(matches!(
        app.authenticate("live_sk_short").await,
        Err(AuthError::Malformed(_))
    ));

    // Keys hashed under another pepper are unknown here: the pepper is part of the stored hash.
    let other = App::new(
        app.store().clone(),
        &Secrets::for_tests(6),
        Arc::new(paygate_app::SystemClock),
    )
    .unwrap();
    let test_key = created.key(Mode::Test, KeyKind::Secret).unwrap();
    assert!(matches!(
        other.authenticate(test_key.secret.expose_secret()).await,
        Err(AuthError::Unknown)
    ));
    assert!(matches!(
        app.revoke_key(paygate_domain::id::ApiKeyId::new(UnixMillis::new(1), [0; 10]))
            .await,
        Err(AppError::NotFound)
    ));
    assert!(App::new(
        app.store().clone(),
        &Secrets {
            api_key_pepper: vec![1; 31],
            vault_keys: Secrets::for_tests(1).vault_keys
        },
        Arc::new(paygate_app::SystemClock)
    )
    .is_err());
}
