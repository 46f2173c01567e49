//! Idempotency records as the use cases write them: inside other writes, never on their own. Runs on the backend
//! `PAYGATE_TEST_DATABASE_URL` selects, like the rest of the conformance suite.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use paygate_domain::api_key::{KeyKind, Mode};
use paygate_domain::card::Installment;
use paygate_domain::id::PaymentId;
use paygate_domain::idempotency::RequestFingerprint;
use paygate_domain::merchant::Merchant;
use paygate_domain::money::Money;
use paygate_domain::order::{OrderId, OrderName};
use paygate_domain::payment::{NewPayment, Payment, PaymentStatus};
use paygate_domain::time::UnixMillis;
use paygate_domain::vat::VatSplit;
use paygate_store::{
    IdempotencyResource, IdempotencyScope, IdempotencyState, IdempotencyWrite, InsertPaymentOutcome, PaymentInsert,
    PaymentUpdate, Store, StoreError, StoreOptions, StoredResponse,
};

const T0: i64 = 1_700_000_000_000;

fn at(millis: i64) -> UnixMillis {
    UnixMillis::new(millis)
}

fn checkout(merchant: &Merchant, order_id: &str, now: i64) -> Payment {
    let new = NewPayment {
        id: PaymentId::new(at(now), entropy()),
        merchant_id: merchant.id,
        mode: Mode::Test,
        order_id: OrderId::parse(&format!("order-{order_id}")).unwrap(),
        order_name: OrderName::parse("티셔츠").unwrap(),
        amounts: VatSplit::compute(Money::krw(15_000), Money::krw(0)).unwrap(),
        installment: Installment::LUMP_SUM,
        customer_name: None,
        customer_email: None,
        notification_url: None,
        extras: Default::default(),
        now: at(now),
    };
    Payment::checkout(new, at(now + 60_000))
}

fn response(status: u16, body: &str) -> StoredResponse {
    StoredResponse {
        status,
        content_type: "application/json".into(),
        body: body.as_bytes().to_vec(),
    }
}

fn with_claim(payment: &Payment, write: IdempotencyWrite) -> PaymentInsert {
    PaymentInsert {
        idempotency: Some(write),
        ..PaymentInsert::new(payment.clone())
    }
}

async fn record_state(store: &dyn Store, scope: &IdempotencyScope) -> Option<IdempotencyState> {
    store.idempotency_record(scope).await.unwrap().map(|r| r.state)
}

#[tokio::test]
async fn a_claim_commits_with_its_payment_or_not_at_all() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let key = scope(merchant.id, Mode::Test, "order-1");
    let first = checkout(&merchant, "order-1", T0);
    let outcome = ts
        .insert_payment(&with_claim(&first, claim(&key, 1, 11, T0, T0 + 60_000, first.id)))
        .await
        .unwrap();
    assert_eq!(outcome, InsertPaymentOutcome::Inserted);
    let record = ts.idempotency_record(&key).await.unwrap().unwrap();
    assert_eq!(record.fingerprint, RequestFingerprint([1; 32]));
    assert_eq!(
        record.state,
        IdempotencyState::InFlight {
            lock_token: 11,
            locked_until: at(T0 + 60_000)
        }
    );
    assert_eq!(
        record.resource,
        Some(IdempotencyResource {
            payment_id: first.id,
            focus: None
        })
    );
    // A second request under the key loses it, and its payment is not written either.
    let second = checkout(&merchant, "order-2", T0 + 1);
    let lost = ts
        .insert_payment(&with_claim(&second, claim(&key, 1, 12, T0 + 1, T0 + 60_000, second.id)))
        .await;
    assert!(matches!(lost, Err(StoreError::IdempotencyConflict)), "{lost:?}");
    assert!(ts.payment_by_id(second.id).await.unwrap().is_none());
    // A duplicate orderId under a fresh key writes no claim.
    let other_key = scope(merchant.id, Mode::Test, "order-1-again");
    let duplicate = checkout(&merchant, "order-1", T0 + 2);
    let outcome = ts
        .insert_payment(&with_claim(
            &duplicate,
            claim(&other_key, 2, 13, T0 + 2, T0 + 60_000, duplicate.id),
        ))
        .await
        .unwrap();
    assert_eq!(outcome, InsertPaymentOutcome::DuplicateOrderId);
    assert_eq!(ts.idempotency_record(&other_key).await.unwrap(), None);
}

/// A write that fails half-way leaves nothing, and the connection it ran on is clean for the next one: with a single
/// PostgreSQL connection, every later write runs on the connection the failed one rolled back.
#[tokio::test]
async fn a_failed_write_rolls_back_and_its_connection_is_reused_clean() {
    let db = fresh_database().await;
    let options = StoreOptions {
        postgres_pool_max: 1,
        ..test_options()
    };
    let (store, _) = db.open_with(&options).await.unwrap();
    let (merchant, _) = seeded_merchant(&*store, T0).await;
    let key = scope(merchant.id, Mode::Test, "taken");
    let first = checkout(&merchant, "order-1", T0);
    store
        .insert_payment(&with_claim(&first, claim(&key, 1, 11, T0, T0 + 60_000, first.id)))
        .await
        .unwrap();
    let mut written = Vec::new();
    for n in 0..3_i64 {
        // The payment's insert succeeds, then the claim loses: the whole write is rolled back.
        let lost = checkout(&merchant, &format!("lost-{n}"), T0 + 1 + n);
        let result = store
            .insert_payment(&with_claim(&lost, claim(&key, 1, 12, T0 + 1 + n, T0 + 60_000, lost.id)))
            .await;
        assert!(matches!(result, Err(StoreError::IdempotencyConflict)), "{result:?}");
        assert!(store.payment_by_id(lost.id).await.unwrap().is_none());
        written.push((lost.id, false));
        // The next write commits for good: it did not run inside the failed one's transaction.
        let next = checkout(&merchant, &format!("next-{n}"), T0 + 10 + n);
        let next_key = scope(merchant.id, Mode::Test, &format!("next-{n}"));
        store
            .insert_payment(&with_claim(
                &next,
                claim(&next_key, 1, 20, T0 + 10 + n, T0 + 60_000, next.id),
            ))
            .await
            .unwrap();
        assert!(store.payment_by_id(next.id).await.unwrap().is_some());
        written.push((next.id, true));
    }
    store.close().await;
    let (reopened, _) = db.open().await.unwrap();
    for (id, committed) in written {
        let found = reopened.payment_by_id(id).await.unwrap();
        assert_eq!(found.is_some(), committed, "{id}");
    }
}

#[tokio::test]
async fn the_answer_commits_with_the_outcome() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let key = scope(merchant.id, Mode::Test, "k");
    let payment = checkout(&merchant, "o-1", T0);
    ts.insert_payment(&with_claim(&payment, claim(&key, 1, 7, T0, T0 + 60_000, payment.id)))
        .await
        .unwrap();
    // Completing with another request's token stores nothing, and the outcome still commits.
    let expired = payment.expired().unwrap();
    let update = PaymentUpdate {
        idempotency: Some(IdempotencyWrite::Complete {
            scope: key.clone(),
            lock_token: 8,
            response: response(200, "{\"stale\":true}"),
            now: at(T0 + 1),
        }),
        ..PaymentUpdate::new(payment.version, expired.clone())
    };
    ts.update_payment(&update).await.unwrap();
    assert_eq!(
        ts.payment_by_id(payment.id).await.unwrap().unwrap().status,
        PaymentStatus::Expired
    );
    assert!(matches!(
        record_state(&*ts, &key).await,
        Some(IdempotencyState::InFlight { lock_token: 7, .. })
    ));
    // An outcome whose version check fails writes no answer either.
    let stale = PaymentUpdate {
        idempotency: Some(IdempotencyWrite::Complete {
            scope: key.clone(),
            lock_token: 7,
            response: response(200, "{}"),
            now: at(T0 + 2),
        }),
        ..PaymentUpdate::new(payment.version, expired.clone())
    };
    assert!(matches!(ts.update_payment(&stale).await, Err(StoreError::Conflict(_))));
    assert!(matches!(
        record_state(&*ts, &key).await,
        Some(IdempotencyState::InFlight { .. })
    ));
    // The holder's answer, with the outcome.
    let mut again = expired.clone();
    again.version += 1;
    let done = PaymentUpdate {
        idempotency: Some(IdempotencyWrite::Complete {
            scope: key.clone(),
            lock_token: 7,
            response: response(200, "{\"status\":\"EXPIRED\"}"),
            now: at(T0 + 3),
        }),
        ..PaymentUpdate::new(expired.version, again)
    };
    ts.update_payment(&done).await.unwrap();
    assert_eq!(
        record_state(&*ts, &key).await,
        Some(IdempotencyState::Completed(response(200, "{\"status\":\"EXPIRED\"}")))
    );
}

#[tokio::test]
async fn detach_release_and_record() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let detached = scope(merchant.id, Mode::Test, "detached");
    let released = scope(merchant.id, Mode::Test, "released");
    let recorded = scope(merchant.id, Mode::Test, "recorded");
    let a = checkout(&merchant, "a", T0);
    let b = checkout(&merchant, "b", T0);
    let c = checkout(&merchant, "c", T0);
    ts.insert_payment(&with_claim(&a, claim(&detached, 1, 1, T0, T0 + 60_000, a.id)))
        .await
        .unwrap();
    ts.insert_payment(&with_claim(&b, claim(&released, 1, 2, T0, T0 + 60_000, b.id)))
        .await
        .unwrap();
    let record = IdempotencyWrite::Record {
        scope: recorded.clone(),
        fingerprint: RequestFingerprint([3; 32]),
        resource: None,
        response: response(200, "{\"c\":1}"),
        now: at(T0),
    };
    ts.insert_payment(&with_claim(&c, record.clone())).await.unwrap();
    assert_eq!(
        record_state(&*ts, &recorded).await,
        Some(IdempotencyState::Completed(response(200, "{\"c\":1}")))
    );
    // Recording twice is a conflict: the first answer stands.
    let d = checkout(&merchant, "d", T0);
    assert!(matches!(
        ts.insert_payment(&with_claim(&d, record)).await,
        Err(StoreError::IdempotencyConflict)
    ));
    for (payment, write) in [
        (
            &a,
            IdempotencyWrite::Detach {
                scope: detached.clone(),
                lock_token: 1,
                now: at(T0 + 5),
            },
        ),
        (
            &b,
            IdempotencyWrite::Release {
                scope: released.clone(),
                lock_token: 2,
            },
        ),
    ] {
        let next = payment.expired().unwrap();
        let update = PaymentUpdate {
            idempotency: Some(write),
            ..PaymentUpdate::new(payment.version, next)
        };
        ts.update_payment(&update).await.unwrap();
    }
    assert_eq!(
        record_state(&*ts, &detached).await,
        Some(IdempotencyState::InFlight {
            lock_token: 1,
            locked_until: at(T0 + 5)
        })
    );
    assert_eq!(record_state(&*ts, &released).await, None);
    // The standalone release is conditional on the token.
    ts.idempotency_release(&detached, 99).await.unwrap();
    assert!(record_state(&*ts, &detached).await.is_some());
    ts.idempotency_release(&detached, 1).await.unwrap();
    assert_eq!(record_state(&*ts, &detached).await, None);
}

#[tokio::test]
async fn scopes_are_independent() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let (other, _) = seeded_merchant(&*ts, T0 + 1).await;
    let base = scope(merchant.id, Mode::Test, "same");
    let scopes = [
        base.clone(),
        IdempotencyScope {
            key_kind: KeyKind::Client,
            ..base.clone()
        },
        IdempotencyScope {
            mode: Mode::Live,
            ..base.clone()
        },
        scope(other.id, Mode::Test, "same"),
    ];
    for (i, key) in scopes.iter().enumerate() {
        let owner = if key.merchant_id == merchant.id {
            &merchant
        } else {
            &other
        };
        let i = i64::try_from(i).unwrap();
        let payment = checkout(owner, &format!("o{i}"), T0 + i);
        ts.insert_payment(&with_claim(&payment, claim(key, 1, i, T0, T0 + 60_000, payment.id)))
            .await
            .unwrap();
    }
    for (i, key) in scopes.iter().enumerate() {
        let i = i64::try_from(i).unwrap();
        assert!(matches!(
            record_state(&*ts, key).await,
            Some(IdempotencyState::InFlight { lock_token, .. }) if lock_token == i
        ));
    }
}

#[tokio::test]
async fn reaping_is_by_age_and_bounded() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let created = [100, 200, 300, 400, 500];
    for (i, at_ms) in created.iter().enumerate() {
        let key = scope(merchant.id, Mode::Test, &format!("k{i}"));
        let payment = checkout(&merchant, &format!("o{i}"), T0);
        ts.insert_payment(&with_claim(&payment, claim(&key, 1, 1, *at_ms, at_ms + 10, payment.id)))
            .await
            .unwrap();
    }
    // Three records (100, 200, 300) are older than 350: at most two go per call.
    let cutoff = at(350);
    let mut deleted = Vec::new();
    for _ in 0..3 {
        deleted.push(ts.idempotency_reap(cutoff, 2).await.unwrap());
    }
    assert_eq!(deleted, [2, 1, 0]);
    for (i, at_ms) in created.iter().enumerate() {
        let key = scope(merchant.id, Mode::Test, &format!("k{i}"));
        let survived = *at_ms >= 350;
        assert_eq!(record_state(&*ts, &key).await.is_some(), survived, "created at {at_ms}");
    }
}

/// Several stores on one database stand in for several gateway processes: of 60 requests under one key, each
/// creating its own payment, exactly one commits (claim and payment), and the others write nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_have_one_winner() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let mut stores: Vec<Arc<dyn Store>> = vec![Arc::clone(&ts.store)];
    for _ in 1..3 {
        stores.push(ts.db.open().await.unwrap().0);
    }
    let key = scope(merchant.id, Mode::Live, "pay-once");
    let tasks: Vec<_> = (0..60)
        .map(|i: i64| {
            let store = Arc::clone(&stores[usize::try_from(i).unwrap() % stores.len()]);
            let mut payment = checkout(&merchant, &format!("o{i}"), T0 + i);
            payment.mode = Mode::Live;
            let insert = with_claim(&payment, claim(&key, 1, i, T0, T0 + 60_000, payment.id));
            tokio::spawn(async move { (store.insert_payment(&insert).await, payment.id) })
        })
        .collect();
    let (mut won, mut lost) = (Vec::new(), 0);
    for task in tasks {
        match task.await.unwrap() {
            (Ok(InsertPaymentOutcome::Inserted), id) => won.push(id),
            (Err(StoreError::IdempotencyConflict), id) => {
                lost += 1;
                assert!(ts.payment_by_id(id).await.unwrap().is_none());
            }
            (other, _) => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!((won.len(), lost), (1, 59));
    let record = ts.idempotency_record(&key).await.unwrap().unwrap();
    assert_eq!(record.resource.map(|r| r.payment_id), won.first().copied());
}
