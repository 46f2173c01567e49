//! Rows to domain types. A value the domain cannot represent is [`StoreError::Corrupt`], never a panic.

use paygate_domain::api_key::{ApiKey, KeyKind, Mode};
use paygate_domain::id::{ApiKeyId, MerchantId};
use paygate_domain::merchant::{Merchant, MerchantName, MerchantStatus};
use paygate_domain::time::UnixMillis;
use tokio_postgres::types::FromSql;
use tokio_postgres::Row;

use crate::StoreError;

pub(super) const MERCHANT_COLUMNS: &str = "m.id, m.name, m.status, m.created_at";
pub(super) const KEY_COLUMNS: &str =
    "k.id, k.merchant_id, k.mode, k.kind, k.display_prefix, k.created_at, k.revoked_at";
pub(super) const KEY_COLUMN_COUNT: usize = 7;

pub(super) fn get<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, StoreError> {
    row.try_get(index).map_err(|error| {
        let column = row.columns().get(index).map_or("?", |c| c.name());
        StoreError::Corrupt(format!("column {column}: {error}"))
    })
}

pub(super) fn parsed<T, E>(value: Result<T, E>, what: &str) -> Result<T, StoreError> {
    value.map_err(|_| StoreError::Corrupt(what.to_owned()))
}

pub(super) fn merchant(row: &Row, at: usize) -> Result<Merchant, StoreError> {
    Ok(Merchant {
        id: parsed(MerchantId::parse(get(row, at)?), "merchants.id")?,
        name: parsed(MerchantName::parse(get(row, at + 1)?), "merchants.name")?,
        status: MerchantStatus::parse(get(row, at + 2)?).ok_or_else(|| corrupt("merchants.status"))?,
        created_at: UnixMillis::new(get(row, at + 3)?),
    })
}

pub(super) fn key(row: &Row, at: usize) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: parsed(ApiKeyId::parse(get(row, at)?), "api_keys.id")?,
        merchant_id: parsed(MerchantId::parse(get(row, at + 1)?), "api_keys.merchant_id")?,
        mode: Mode::parse(get(row, at + 2)?).ok_or_else(|| corrupt("api_keys.mode"))?,
        kind: KeyKind::parse(get(row, at + 3)?).ok_or_else(|| corrupt("api_keys.kind"))?,
        display_prefix: get(row, at + 4)?,
        created_at: UnixMillis::new(get(row, at + 5)?),
        revoked_at: get::<Option<i64>>(row, at + 6)?.map(UnixMillis::new),
    })
}

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}
