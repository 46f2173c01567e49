//! Billing-key registrations on paygate's page and the card each holds, sealed, while it runs. The entity and its
//! transitions are in `paygate_domain::billing_auth`. Issuing the key from a registration writes the key, its sealed
//! card, its event, the registration's last version and the request's answer in one transaction
//! ([`BillingAuthStore::issue_from_auth`]).

use paygate_domain::api_key::Mode;
use paygate_domain::billing::{CardFacts, CustomerKey};
use paygate_domain::billing_auth::{BillingAuth, BillingAuthFields, BillingAuthStatus};
use paygate_domain::card::{CardSummary, CardType, OwnerType};
use paygate_domain::id::{BillingAuthId, BillingKeyId, MerchantId};

use crate::billing::{insert_key, BillingKeyInsert};
use crate::db::{aggregate, first, vals, Db, Row};
use crate::{Sealed, StoreError};

/// What happens to a registration's sealed card with a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthCardChange {
    Keep,
    Store(Sealed),
    Erase,
}

aggregate! {
    pub trait BillingAuthStore {
        write fn insert_billing_auth(auth: &BillingAuth) -> ();
        /// By its ID alone: the hosted page's capability is the unguessable ID.
        read fn billing_auth(id: BillingAuthId) -> Option<BillingAuth>;
        /// By the SHA-256 of its `authKey`, if it is this merchant's in this mode.
        read fn billing_auth_by_key(merchant_id: MerchantId, mode: Mode, auth_key_hash: &[u8]) -> Option<BillingAuth>;
        read fn billing_auth_card(id: BillingAuthId) -> Option<Sealed>;
        /// Writes a changed registration, conditional on the stored version being `auth.version - 1`.
        write fn update_billing_auth(auth: &BillingAuth, card: &AuthCardChange) -> ();
        /// The registration's ISSUED version (conditional, its card erased) and the new key, in one transaction.
        write fn issue_from_auth(auth: &BillingAuth, key: &BillingKeyInsert) -> ();
    }
}

macro_rules! auth_columns {
    () => {
        "id, merchant_id, mode, customer_key, success_url, fail_url, customer_name, customer_email, status, card_bin,
         card_last4, card_masked, issuer_code, acquirer_code, card_type, card_owner_type, challenge_otp_hash,
         challenge_attempts, challenge_expires_at, auth_key_hash, billing_key_id, failure_code, expires_at,
         created_at, version"
    };
}

mod sql {
    pub const INSERT: &str = concat!(
        "INSERT INTO billing_auths (",
        auth_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21,
             ?22, ?23, ?24, ?25)"
    );
    pub const BY_ID: &str = concat!("SELECT ", auth_columns!(), " FROM billing_auths WHERE id = ?1");
    pub const BY_KEY: &str = concat!(
        "SELECT ",
        auth_columns!(),
        " FROM billing_auths WHERE auth_key_hash = ?1 AND merchant_id = ?2 AND mode = ?3"
    );
    pub const CARD: &str = "SELECT card_key_version, card_sealed FROM billing_auths
         WHERE id = ?1 AND card_sealed IS NOT NULL";
    /// Every mutable column; the identity ones must be unchanged, and the version must be the one read. A finished
    /// registration's card is erased in the same statement (the table's CHECK holds at every statement).
    pub const UPDATE: &str = "UPDATE billing_auths SET status = ?9, card_bin = ?10, card_last4 = ?11,
             card_masked = ?12, issuer_code = ?13, acquirer_code = ?14, card_type = ?15, card_owner_type = ?16,
             challenge_otp_hash = ?17, challenge_attempts = ?18, challenge_expires_at = ?19, auth_key_hash = ?20,
             billing_key_id = ?21, failure_code = ?22, expires_at = ?23, version = ?25,
             card_key_version = CASE WHEN ?9 IN ('ISSUED', 'FAILED', 'EXPIRED') THEN NULL ELSE card_key_version END,
             card_sealed = CASE WHEN ?9 IN ('ISSUED', 'FAILED', 'EXPIRED') THEN NULL ELSE card_sealed END
         WHERE id = ?1 AND version = ?26 AND merchant_id = ?2 AND mode = ?3 AND customer_key = ?4
           AND success_url = ?5 AND fail_url = ?6 AND created_at = ?24
           AND (customer_name = ?7 OR (customer_name IS NULL AND ?7 IS NULL))
           AND (customer_email = ?8 OR (customer_email IS NULL AND ?8 IS NULL))";
    pub const STORE_CARD: &str = "UPDATE billing_auths SET card_key_version = ?2, card_sealed = ?3 WHERE id = ?1";
    pub const ERASE_CARD: &str = "UPDATE billing_auths SET card_key_version = NULL, card_sealed = NULL WHERE id = ?1";
}

fn auth_from(row: &Row) -> Result<BillingAuth, StoreError> {
    let card = match (row.opt_string(9)?, row.opt_string(10)?, row.opt_string(11)?) {
        (Some(bin), Some(last4), Some(masked)) => Some(CardSummary { bin, last4, masked }),
        _ => None,
    };
    let facts = match (row.opt_string(12)?, row.opt_string(13)?) {
        (Some(issuer_code), Some(acquirer_code)) => Some(CardFacts {
            issuer_code,
            acquirer_code,
            card_type: row.opt_parse(14, CardType::parse)?.unwrap_or(CardType::Unknown),
            owner_type: row.opt_parse(15, OwnerType::parse)?.unwrap_or(OwnerType::Unknown),
        }),
        _ => None,
    };
    Ok(BillingAuth::restore(BillingAuthFields {
        id: row.parse(0, BillingAuthId::parse)?,
        merchant_id: row.parse(1, MerchantId::parse)?,
        mode: row.parse(2, Mode::parse)?,
        customer_key: row.parse(3, CustomerKey::parse)?,
        success_url: row.string(4)?,
        fail_url: row.string(5)?,
        customer_name: row.opt_string(6)?,
        customer_email: row.opt_string(7)?,
        status: row.parse(8, BillingAuthStatus::parse)?,
        card,
        facts,
        challenge_otp_hash: row.opt_blob(16)?,
        challenge_attempts: row.num(17)?,
        challenge_expires_at: row.opt_millis(18)?,
        auth_key_hash: row.opt_blob(19)?,
        billing_key_id: row.opt_parse(20, BillingKeyId::parse)?,
        failure_code: row.opt_string(21)?,
        expires_at: row.millis(22)?,
        created_at: row.millis(23)?,
        version: row.int(24)?,
    }))
}

fn auth_values(a: &BillingAuth) -> Vec<crate::db::Value<'_>> {
    let (card, facts) = (a.card.as_ref(), a.facts.as_ref());
    vals![
        a.id,
        a.merchant_id,
        a.mode,
        a.customer_key.as_str(),
        &a.success_url,
        &a.fail_url,
        a.customer_name.as_deref(),
        a.customer_email.as_deref(),
        a.status.as_str(),
        card.map(|c| c.bin.as_str()),
        card.map(|c| c.last4.as_str()),
        card.map(|c| c.masked.as_str()),
        facts.map(|f| f.issuer_code.as_str()),
        facts.map(|f| f.acquirer_code.as_str()),
        facts.map(|f| f.card_type.as_str()),
        facts.map(|f| f.owner_type.as_str()),
        a.challenge_otp_hash.as_ref(),
        a.challenge_attempts,
        a.challenge_expires_at,
        a.auth_key_hash.as_ref(),
        a.billing_key_id,
        a.failure_code.as_deref(),
        a.expires_at,
        a.created_at,
        a.version,
    ]
    .to_vec()
}

async fn insert_billing_auth(db: &impl Db, auth: BillingAuth) -> Result<(), StoreError> {
    db.execute(sql::INSERT, &auth_values(&auth)).await?;
    Ok(())
}

async fn billing_auth(db: &impl Db, id: BillingAuthId) -> Result<Option<BillingAuth>, StoreError> {
    first(db, sql::BY_ID, vals![id])
        .await?
        .map(|row| auth_from(&row))
        .transpose()
}

async fn billing_auth_by_key(
    db: &impl Db,
    merchant_id: MerchantId,
    mode: Mode,
    auth_key_hash: Vec<u8>,
) -> Result<Option<BillingAuth>, StoreError> {
    first(db, sql::BY_KEY, vals![&auth_key_hash, merchant_id, mode])
        .await?
        .map(|row| auth_from(&row))
        .transpose()
}

async fn billing_auth_card(db: &impl Db, id: BillingAuthId) -> Result<Option<Sealed>, StoreError> {
    let Some(row) = first(db, sql::CARD, vals![id]).await? else {
        return Ok(None);
    };
    Ok(Some(Sealed {
        key_version: row.num(0)?,
        bytes: row.blob(1)?,
    }))
}

async fn write_update(db: &impl Db, auth: &BillingAuth, card: &AuthCardChange) -> Result<(), StoreError> {
    let mut values = auth_values(auth);
    values.push(auth.version.saturating_sub(1).into());
    if db.execute(sql::UPDATE, &values).await? != 1 {
        return Err(StoreError::Conflict(
            "the billing registration changed since it was read",
        ));
    }
    // A finished registration's card went with the update above.
    if auth.status.is_final() {
        return Ok(());
    }
    match card {
        AuthCardChange::Keep => {}
        AuthCardChange::Store(sealed) => {
            crate::vault::refuse_retired(db, sealed.key_version).await?;
            db.execute(sql::STORE_CARD, vals![auth.id, sealed.key_version, &sealed.bytes])
                .await?;
        }
        AuthCardChange::Erase => {
            db.execute(sql::ERASE_CARD, vals![auth.id]).await?;
        }
    }
    Ok(())
}

async fn update_billing_auth(db: &impl Db, auth: BillingAuth, card: AuthCardChange) -> Result<(), StoreError> {
    write_update(db, &auth, &card).await
}

async fn issue_from_auth(db: &impl Db, auth: BillingAuth, key: BillingKeyInsert) -> Result<(), StoreError> {
    // The key first: its row must exist before the registration names it.
    insert_key(db, &key).await?;
    write_update(db, &auth, &AuthCardChange::Erase).await
}
