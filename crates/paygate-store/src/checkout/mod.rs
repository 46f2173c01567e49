//! Hosted checkout sessions: how a checkout payment was started, where the browser goes afterwards, and the
//! buyer-authentication challenge in progress. The entity and its transitions are in `paygate_domain::checkout`.

use paygate_domain::bank::Bank;
use paygate_domain::checkout::{CheckoutEntry, CheckoutSession, CheckoutSessionFields};
use paygate_domain::id::PaymentId;
use paygate_domain::payment::PaymentMethod;

use crate::db::{aggregate, first, vals, Db};
use crate::StoreError;

aggregate! {
    pub trait CheckoutStore {
        write fn insert_checkout_session(session: &CheckoutSession) -> ();
        read fn checkout_session(payment_id: PaymentId) -> Option<CheckoutSession>;
        /// Writes a changed session, conditional on the stored version being `session.version - 1`: of
        /// concurrent changes computed from one read, exactly one is written.
        write fn update_checkout_session(session: &CheckoutSession) -> ();
    }
}

mod sql {
    pub const INSERT: &str = "INSERT INTO checkout_sessions (payment_id, entry, return_url, success_url, fail_url,
             challenge_otp_hash, challenge_attempts, challenge_expires_at, created_at, version, method, bank,
             holder_name, bank_authorization)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
    pub const SELECT: &str = "SELECT payment_id, entry, return_url, success_url, fail_url, challenge_otp_hash,
             challenge_attempts, challenge_expires_at, created_at, version, method, bank, holder_name,
             bank_authorization
         FROM checkout_sessions WHERE payment_id = ?1";
    /// How it was started and what the merchant asked for never change.
    pub const UPDATE: &str = "UPDATE checkout_sessions SET challenge_otp_hash = ?2, challenge_attempts = ?3,
             challenge_expires_at = ?4, version = ?5, bank = ?7, holder_name = ?8, bank_authorization = ?9
         WHERE payment_id = ?1 AND version = ?6";
}

/// Writes a new session inside the caller's transaction (a checkout payment's insert, or on its own).
pub(crate) async fn insert(db: &impl Db, s: &CheckoutSession) -> Result<(), StoreError> {
    let values = vals![
        s.payment_id,
        s.entry.as_str(),
        s.return_url.as_deref(),
        s.success_url.as_deref(),
        s.fail_url.as_deref(),
        s.challenge_otp_hash.as_ref(),
        s.challenge_attempts,
        s.challenge_expires_at,
        s.created_at,
        s.version,
        s.method.map(PaymentMethod::as_str),
        s.bank.map(|b| b.code()),
        s.holder_name.as_deref(),
        s.bank_authorization.as_deref(),
    ];
    db.execute(sql::INSERT, values).await?;
    Ok(())
}

async fn insert_checkout_session(db: &impl Db, session: CheckoutSession) -> Result<(), StoreError> {
    insert(db, &session).await
}

async fn checkout_session(db: &impl Db, payment_id: PaymentId) -> Result<Option<CheckoutSession>, StoreError> {
    let Some(row) = first(db, sql::SELECT, vals![payment_id]).await? else {
        return Ok(None);
    };
    Ok(Some(CheckoutSession::restore(CheckoutSessionFields {
        payment_id: row.parse(0, PaymentId::parse)?,
        entry: row.parse(1, CheckoutEntry::parse)?,
        return_url: row.opt_string(2)?,
        success_url: row.opt_string(3)?,
        fail_url: row.opt_string(4)?,
        challenge_otp_hash: row.opt_blob(5)?,
        challenge_attempts: row.num(6)?,
        challenge_expires_at: row.opt_millis(7)?,
        created_at: row.millis(8)?,
        version: row.int(9)?,
        method: row.opt_parse(10, PaymentMethod::parse)?,
        bank: row.opt_parse(11, |code| Bank::parse(code).filter(|b| b.code() == code))?,
        holder_name: row.opt_string(12)?,
        bank_authorization: row.opt_string(13)?,
    })))
}

async fn update_checkout_session(db: &impl Db, s: CheckoutSession) -> Result<(), StoreError> {
    update(db, &s).await
}

/// Writes a changed session inside the caller's transaction (a payment's change, or on its own), conditional on
/// the version before it.
pub(crate) async fn update(db: &impl Db, s: &CheckoutSession) -> Result<(), StoreError> {
    let values = vals![
        s.payment_id,
        s.challenge_otp_hash.as_ref(),
        s.challenge_attempts,
        s.challenge_expires_at,
        s.version,
        s.version.saturating_sub(1),
        s.bank.map(|b| b.code()),
        s.holder_name.as_deref(),
        s.bank_authorization.as_deref(),
    ];
    match db.execute(sql::UPDATE, values).await? {
        1 => Ok(()),
        _ => Err(StoreError::Conflict("the checkout session changed since it was read")),
    }
}
