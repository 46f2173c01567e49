//! SQLite queries for checkout sessions.

use super::Cached;
use paygate_domain::id::PaymentId;
use paygate_domain::time::UnixMillis;
use rusqlite::{params, Connection, OptionalExtension};

use super::{backend, corrupt};
use crate::payments::{CheckoutEntry, CheckoutSession};
use crate::StoreError;

const COLUMNS: &str = "payment_id, entry, return_url, success_url, fail_url, challenge_otp_hash, challenge_attempts, \
    challenge_expires_at, created_at, version";

pub(super) fn insert(conn: &Connection, s: &CheckoutSession) -> Result<(), StoreError> {
    conn.exec(
        &format!("INSERT INTO checkout_sessions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
        params![
            s.payment_id.to_string(),
            s.entry.as_str(),
            s.return_url,
            s.success_url,
            s.fail_url,
            s.challenge_otp_hash,
            s.challenge_attempts,
            s.challenge_expires_at.map(UnixMillis::as_millis),
            s.created_at.as_millis(),
            s.version
        ],
    )
    .map_err(backend)?;
    Ok(())
}

pub(super) fn get(conn: &Connection, id: PaymentId) -> Result<Option<CheckoutSession>, StoreError> {
    conn.row(
        &format!("SELECT {COLUMNS} FROM checkout_sessions WHERE payment_id = ?1"),
        params![id.to_string()],
        |row| {
            Ok(CheckoutSession {
                payment_id: PaymentId::parse(&row.get::<_, String>(0)?)
                    .map_err(|_| corrupt("checkout_sessions.payment_id"))?,
                entry: CheckoutEntry::parse(&row.get::<_, String>(1)?)
                    .ok_or_else(|| corrupt("checkout_sessions.entry"))?,
                return_url: row.get(2)?,
                success_url: row.get(3)?,
                fail_url: row.get(4)?,
                challenge_otp_hash: row.get(5)?,
                challenge_attempts: row.get(6)?,
                challenge_expires_at: row.get::<_, Option<i64>>(7)?.map(UnixMillis::new),
                created_at: UnixMillis::new(row.get(8)?),
                version: row.get(9)?,
            })
        },
    )
    .optional()
    .map_err(backend)
}

pub(super) fn update(conn: &Connection, s: &CheckoutSession) -> Result<(), StoreError> {
    let changed = conn
        .exec(
            "UPDATE checkout_sessions SET challenge_otp_hash = ?2, challenge_attempts = ?3, challenge_expires_at = ?4,
                 version = ?5
             WHERE payment_id = ?1 AND version = ?6",
            params![
                s.payment_id.to_string(),
                s.challenge_otp_hash,
                s.challenge_attempts,
                s.challenge_expires_at.map(UnixMillis::as_millis),
                s.version,
                s.version - 1
            ],
        )
        .map_err(backend)?;
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict("the checkout session changed since it was read"))
    }
}
