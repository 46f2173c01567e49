//! Billing keys (빌링키) and their sealed cards. The entity and its transitions are in `paygate_domain::billing`.
//!
//! The sealed card lives in the key's row and is read only by [`BillingStore::billing_card`], which the charge path
//! alone calls; deleting a key erases it in the same statement that marks the key deleted.

use paygate_domain::api_key::Mode;
use paygate_domain::billing::{BillingKey, BillingKeyFields, BillingKeyStatus, CardFacts, CustomerKey, Registration};
use paygate_domain::card::{CardSummary, CardType, OwnerType};
use paygate_domain::id::{BillingKeyId, MerchantId};

use crate::db::{aggregate, all, first, vals, Db, Row};
use crate::idempotency::IdempotencyWrite;
use crate::outbox::{insert_new_event, NewEvent};
use crate::{Sealed, StoreError};

/// A new key with its sealed card, the event that announces it and the request's stored answer: one transaction.
#[derive(Clone, Debug)]
pub struct BillingKeyInsert {
    pub key: BillingKey,
    pub card: Sealed,
    pub events: Vec<NewEvent>,
    pub idempotency: Option<IdempotencyWrite>,
}

/// A changed key (the next version of one read), with its events: one transaction, conditional on the version.
#[derive(Clone, Debug)]
pub struct BillingKeyUpdate {
    pub key: BillingKey,
    pub events: Vec<NewEvent>,
}

aggregate! {
    pub trait BillingStore {
        write fn insert_billing_key(insert: &BillingKeyInsert) -> ();
        /// The key, if it is this merchant's in this mode (whatever its status).
        read fn billing_key(merchant_id: MerchantId, mode: Mode, id: BillingKeyId) -> Option<BillingKey>;
        /// A customer's keys, newest first, at most `limit`.
        read fn customer_billing_keys(merchant_id: MerchantId, mode: Mode, customer_key: &CustomerKey, limit: u32)
            -> Vec<BillingKey>;
        /// The sealed card of an active key of this merchant and mode: the charge path's read.
        read fn billing_card(merchant_id: MerchantId, mode: Mode, id: BillingKeyId) -> Option<Sealed>;
        /// Writes a changed key, conditional on the stored version being `key.version - 1`. A deleted key's sealed
        /// card is erased in the same statement.
        write fn update_billing_key(update: &BillingKeyUpdate) -> ();
    }
}

macro_rules! key_columns {
    () => {
        "id, merchant_id, mode, customer_key, status, registration, card_bin, card_last4, card_masked, issuer_code,
         acquirer_code, card_type, card_owner_type, customer_name, customer_email, authenticated_at, deleted_at,
         version"
    };
}

mod sql {
    pub const INSERT: &str = concat!(
        "INSERT INTO billing_keys (",
        key_columns!(),
        ", card_key_version, card_sealed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
    );
    pub const SELECT: &str = concat!(
        "SELECT ",
        key_columns!(),
        " FROM billing_keys WHERE id = ?1 AND merchant_id = ?2 AND mode = ?3"
    );
    pub const OF_CUSTOMER: &str = concat!(
        "SELECT ",
        key_columns!(),
        " FROM billing_keys WHERE merchant_id = ?1 AND mode = ?2 AND customer_key = ?3 ORDER BY id DESC LIMIT ?4"
    );
    pub const CARD: &str = "SELECT card_key_version, card_sealed FROM billing_keys
         WHERE id = ?1 AND merchant_id = ?2 AND mode = ?3 AND status = 'ACTIVE'";
    /// A deleted key keeps no card: the sealed bytes go with the status change.
    pub const UPDATE: &str = "UPDATE billing_keys SET status = ?2, deleted_at = ?3, version = ?4,
             card_key_version = CASE WHEN ?2 = 'ACTIVE' THEN card_key_version END,
             card_sealed = CASE WHEN ?2 = 'ACTIVE' THEN card_sealed END
         WHERE id = ?1 AND version = ?5";
}

fn key_from(row: &Row) -> Result<BillingKey, StoreError> {
    Ok(BillingKey::restore(BillingKeyFields {
        id: row.parse(0, BillingKeyId::parse)?,
        merchant_id: row.parse(1, MerchantId::parse)?,
        mode: row.parse(2, Mode::parse)?,
        customer_key: row.parse(3, CustomerKey::parse)?,
        status: row.parse(4, BillingKeyStatus::parse)?,
        registration: row.parse(5, Registration::parse)?,
        card: CardSummary {
            bin: row.string(6)?,
            last4: row.string(7)?,
            masked: row.string(8)?,
        },
        facts: CardFacts {
            issuer_code: row.string(9)?,
            acquirer_code: row.string(10)?,
            card_type: row.parse(11, CardType::parse)?,
            owner_type: row.parse(12, OwnerType::parse)?,
        },
        customer_name: row.opt_string(13)?,
        customer_email: row.opt_string(14)?,
        authenticated_at: row.millis(15)?,
        deleted_at: row.opt_millis(16)?,
        version: row.int(17)?,
    }))
}

async fn insert_billing_key(db: &impl Db, insert: BillingKeyInsert) -> Result<(), StoreError> {
    insert_key(db, &insert).await
}

/// Writes a new key, its sealed card, its events and the request's answer inside the caller's transaction.
pub(crate) async fn insert_key(db: &impl Db, insert: &BillingKeyInsert) -> Result<(), StoreError> {
    crate::vault::refuse_retired(db, insert.card.key_version).await?;
    if let Some(write) = &insert.idempotency {
        crate::idempotency::apply(db, write).await?;
    }
    let k = &insert.key;
    let values = vals![
        k.id,
        k.merchant_id,
        k.mode,
        k.customer_key.as_str(),
        k.status.as_str(),
        k.registration.as_str(),
        &k.card.bin,
        &k.card.last4,
        &k.card.masked,
        &k.facts.issuer_code,
        &k.facts.acquirer_code,
        k.facts.card_type.as_str(),
        k.facts.owner_type.as_str(),
        k.customer_name.as_deref(),
        k.customer_email.as_deref(),
        k.authenticated_at,
        k.deleted_at,
        k.version,
        insert.card.key_version,
        &insert.card.bytes,
    ];
    db.execute(sql::INSERT, values).await?;
    for event in &insert.events {
        insert_new_event(db, event).await?;
    }
    Ok(())
}

async fn billing_key(
    db: &impl Db,
    merchant_id: MerchantId,
    mode: Mode,
    id: BillingKeyId,
) -> Result<Option<BillingKey>, StoreError> {
    first(db, sql::SELECT, vals![id, merchant_id, mode])
        .await?
        .map(|row| key_from(&row))
        .transpose()
}

async fn customer_billing_keys(
    db: &impl Db,
    merchant_id: MerchantId,
    mode: Mode,
    customer_key: CustomerKey,
    limit: u32,
) -> Result<Vec<BillingKey>, StoreError> {
    all(
        db,
        sql::OF_CUSTOMER,
        vals![merchant_id, mode, customer_key.as_str(), limit],
        key_from,
    )
    .await
}

async fn billing_card(
    db: &impl Db,
    merchant_id: MerchantId,
    mode: Mode,
    id: BillingKeyId,
) -> Result<Option<Sealed>, StoreError> {
    let Some(row) = first(db, sql::CARD, vals![id, merchant_id, mode]).await? else {
        return Ok(None);
    };
    Ok(Some(Sealed {
        key_version: row.num(0)?,
        bytes: row.blob(1)?,
    }))
}

async fn update_billing_key(db: &impl Db, update: BillingKeyUpdate) -> Result<(), StoreError> {
    let k = &update.key;
    let values = vals![
        k.id,
        k.status.as_str(),
        k.deleted_at,
        k.version,
        k.version.saturating_sub(1),
    ];
    if db.execute(sql::UPDATE, values).await? != 1 {
        return Err(StoreError::Conflict("the billing key changed since it was read"));
    }
    for event in &update.events {
        insert_new_event(db, event).await?;
    }
    Ok(())
}
