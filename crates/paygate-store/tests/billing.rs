//! Conformance tests for billing keys and card registrations: scoping by merchant and mode, the sealed card read by
//! the charge path only and erased with the key, conditional updates, and a registration's card erased when it ends.
//! Like `conformance.rs` they run on the backend `PAYGATE_TEST_DATABASE_URL` selects.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use paygate_domain::api_key::Mode;
use paygate_domain::billing::{BillingKey, BillingKeyStatus, CardFacts, CustomerKey, NewBillingKey, Registration};
use paygate_domain::billing_auth::{BillingAuth, BillingAuthStatus, NewBillingAuth};
use paygate_domain::card::{CardSummary, CardType, OwnerType};
use paygate_domain::id::{BillingAuthId, BillingKeyId};
use paygate_domain::time::UnixMillis;
use paygate_store::{AuthCardChange, BillingKeyInsert, BillingKeyUpdate, Sealed, StoreError};

const T0: i64 = 1_700_000_000_000;

fn at(millis: i64) -> UnixMillis {
    UnixMillis::new(millis)
}

fn card() -> CardSummary {
    CardSummary {
        bin: "433000".into(),
        last4: "0003".into(),
        masked: "433000******0003".into(),
    }
}

fn facts() -> CardFacts {
    CardFacts {
        issuer_code: "11".into(),
        acquirer_code: "21".into(),
        card_type: CardType::Credit,
        owner_type: OwnerType::Corporate,
    }
}

fn sealed(byte: u8) -> Sealed {
    Sealed {
        key_version: 3,
        bytes: vec![byte; 40],
    }
}

fn key_for(merchant: &paygate_domain::merchant::Merchant, customer: &str, now: i64) -> BillingKey {
    BillingKey::issue(NewBillingKey {
        id: BillingKeyId::new(at(now), entropy()),
        merchant_id: merchant.id,
        mode: Mode::Test,
        customer_key: CustomerKey::parse(customer).unwrap(),
        registration: Registration::KeyIn,
        card: card(),
        facts: facts(),
        customer_name: Some("박토스".into()),
        customer_email: None,
        now: at(now),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_keys_are_scoped_and_their_cards_go_with_them() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let (other, _) = seeded_merchant(&*ts, T0 + 1).await;
    let key = key_for(&merchant, "customer-1", T0 + 10);
    let insert = BillingKeyInsert {
        key: key.clone(),
        card: sealed(7),
        events: Vec::new(),
        idempotency: None,
    };
    ts.insert_billing_key(&insert).await.unwrap();

    // Round trip, and nothing for another merchant or mode.
    assert_eq!(
        ts.billing_key(merchant.id, Mode::Test, key.id).await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(ts.billing_key(other.id, Mode::Test, key.id).await.unwrap(), None);
    assert_eq!(ts.billing_key(merchant.id, Mode::Live, key.id).await.unwrap(), None);
    assert_eq!(
        ts.billing_card(merchant.id, Mode::Test, key.id).await.unwrap(),
        Some(sealed(7))
    );
    assert_eq!(ts.billing_card(other.id, Mode::Test, key.id).await.unwrap(), None);
    let second = key_for(&merchant, "customer-1", T0 + 20);
    ts.insert_billing_key(&BillingKeyInsert {
        key: second.clone(),
        card: sealed(8),
        events: Vec::new(),
        idempotency: None,
    })
    .await
    .unwrap();
    let customer = CustomerKey::parse("customer-1").unwrap();
    let listed = ts
        .customer_billing_keys(merchant.id, Mode::Test, &customer, 10)
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![second.id, key.id],
        "newest first"
    );
    assert!(ts
        .customer_billing_keys(other.id, Mode::Test, &customer, 10)
        .await
        .unwrap()
        .is_empty());

    // Deleting is conditional on the version read, and erases the card in the same write.
    let deleted = key.delete(at(T0 + 30)).unwrap();
    ts.update_billing_key(&BillingKeyUpdate {
        key: deleted.clone(),
        events: Vec::new(),
    })
    .await
    .unwrap();
    let stale = ts
        .update_billing_key(&BillingKeyUpdate {
            key: deleted.clone(),
            events: Vec::new(),
        })
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    let stored = ts.billing_key(merchant.id, Mode::Test, key.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.deleted_at),
        (BillingKeyStatus::Deleted, Some(at(T0 + 30)))
    );
    assert_eq!(ts.billing_card(merchant.id, Mode::Test, key.id).await.unwrap(), None);
    assert_eq!(
        ts.billing_card(merchant.id, Mode::Test, second.id).await.unwrap(),
        Some(sealed(8))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_keeps_its_card_until_it_ends_and_issues_once() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let now = at(T0 + 10);
    let auth = BillingAuth::start(NewBillingAuth {
        id: BillingAuthId::new(now, entropy()),
        merchant_id: merchant.id,
        mode: Mode::Test,
        customer_key: CustomerKey::parse("customer-2").unwrap(),
        success_url: "https://shop.example/ok".into(),
        fail_url: "https://shop.example/fail".into(),
        customer_name: None,
        customer_email: Some("buyer@example.com".into()),
        now,
        expires_at: at(T0 + 1_000_000),
    });
    ts.insert_billing_auth(&auth).await.unwrap();
    assert_eq!(ts.billing_auth(auth.id).await.unwrap(), Some(auth.clone()));
    let challenged = auth.card_entered(card(), vec![1; 32], at(T0 + 300_000), now).unwrap();
    ts.update_billing_auth(&challenged, &AuthCardChange::Store(sealed(5)))
        .await
        .unwrap();
    assert_eq!(ts.billing_auth_card(auth.id).await.unwrap(), Some(sealed(5)));
    // Two answers computed from one read: one is counted.
    let tried = challenged.challenge_attempted(now).unwrap();
    ts.update_billing_auth(&tried, &AuthCardChange::Keep).await.unwrap();
    let racing = ts.update_billing_auth(&tried, &AuthCardChange::Keep).await;
    assert!(matches!(racing, Err(StoreError::Conflict(_))), "{racing:?}");
    let hash = vec![9; 32];
    let done = tried
        .authenticated(facts(), hash.clone(), at(T0 + 600_000), now)
        .unwrap();
    ts.update_billing_auth(&done, &AuthCardChange::Keep).await.unwrap();
    assert_eq!(
        ts.billing_auth_by_key(merchant.id, Mode::Test, &hash).await.unwrap(),
        Some(done.clone())
    );
    assert_eq!(
        ts.billing_auth_by_key(merchant.id, Mode::Live, &hash).await.unwrap(),
        None
    );

    // Issuing writes the key and the registration's last version together; the registration's card is erased.
    let key = key_for(&merchant, "customer-2", T0 + 20);
    let insert = BillingKeyInsert {
        key: key.clone(),
        card: sealed(6),
        events: Vec::new(),
        idempotency: None,
    };
    let issued = done.issued(key.id, now).unwrap();
    ts.issue_from_auth(&issued, &insert).await.unwrap();
    let stored = ts.billing_auth(auth.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.billing_key_id),
        (BillingAuthStatus::Issued, Some(key.id))
    );
    assert_eq!(ts.billing_auth_card(auth.id).await.unwrap(), None);
    assert_eq!(
        ts.billing_card(merchant.id, Mode::Test, key.id).await.unwrap(),
        Some(sealed(6))
    );
    // A second exchange computed from the same read writes nothing: neither a second key nor a second version.
    let again = BillingKeyInsert {
        key: key_for(&merchant, "customer-2", T0 + 30),
        ..insert
    };
    let lost = ts.issue_from_auth(&issued, &again).await;
    assert!(matches!(lost, Err(StoreError::Conflict(_))), "{lost:?}");
    assert_eq!(
        ts.billing_key(merchant.id, Mode::Test, again.key.id).await.unwrap(),
        None
    );
}
