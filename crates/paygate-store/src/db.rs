//! What every aggregate module runs its SQL through: parameters ([`Value`]), rows ([`Row`]) and the [`Db`] each
//! backend executes statements on, plus [`aggregate!`], which declares an aggregate's trait and implements it for
//! both backends.
//!
//! An aggregate's operations are written once, as `async fn op(db: &impl Db, …)`: the statements they run, the
//! conditions their writes carry and the decoding of their rows are the same on both backends. Only the execution
//! differs: SQLite runs an operation to completion on its writer (or a reader) thread, PostgreSQL awaits each
//! statement on a pooled connection. Operations never begin, commit or roll back: [`aggregate!`] runs each in the
//! transaction its kind names (`read`, `snapshot`, `write`), and a write commits only if the operation returned
//! `Ok`.

use std::borrow::Cow;
use std::sync::Arc;

use paygate_domain::api_key::Mode;
use paygate_domain::bank::Bank;
use paygate_domain::id::{
    ApiKeyId, BankRefundId, BillingAuthId, BillingKeyId, CashReceiptKey, DepositId, EventId, JournalId, MerchantId,
    PaymentId, TransactionKey, WebhookEndpointId,
};
use paygate_domain::time::UnixMillis;

use crate::StoreError;

/// The SQL dialect behind a [`Db`], for the few statements the two spell differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The statement of this dialect, where the two differ (both texts stand side by side in the aggregate).
    pub(crate) fn pick(self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match self {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        }
    }
}

/// A connection, or a transaction on one, that runs statements written with SQLite's `?N` placeholders.
pub(crate) trait Db {
    fn dialect(&self) -> Dialect;

    /// Runs a statement; returns how many rows it changed.
    async fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<u64, StoreError>;

    /// Runs a query (or a statement with `RETURNING`); returns its rows.
    async fn query(&self, sql: &str, params: &[Value<'_>]) -> Result<Vec<Row>, StoreError>;

    /// Makes sure the statements are ready to be sent without a round trip of their own. An operation that sends
    /// several statements together (`tokio::join!(biased; …)`) prepares the one that must lead: it then leaves at
    /// its future's first poll, before any other future is polled. (On PostgreSQL a statement not yet prepared on
    /// the connection first waits for its preparation, and a later one could overtake it.) Nothing to do on SQLite,
    /// where every statement completes at once, in order.
    async fn prepare(&self, sql: &[&str]) -> Result<(), StoreError> {
        let _ = sql;
        Ok(())
    }
}

/// The first row of a query, if any.
pub(crate) async fn first(db: &impl Db, sql: &str, params: &[Value<'_>]) -> Result<Option<Row>, StoreError> {
    Ok(db.query(sql, params).await?.into_iter().next())
}

/// Every row of a query, decoded.
pub(crate) async fn all<T>(
    db: &impl Db,
    sql: &str,
    params: &[Value<'_>],
    decode: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    db.query(sql, params).await?.iter().map(decode).collect()
}

/// A statement parameter. Integers are `i64` on both sides: every integer column is 64 bits wide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Null,
    Int(i64),
    Text(Cow<'a, str>),
    Blob(Cow<'a, [u8]>),
}

/// `&[Value]` from expressions that convert into values.
macro_rules! vals {
    ($($value:expr),* $(,)?) => {
        &[$($crate::db::Value::from($value)),*]
    };
}
pub(crate) use vals;

impl From<i64> for Value<'_> {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}

impl From<u32> for Value<'_> {
    fn from(value: u32) -> Self {
        Value::Int(i64::from(value))
    }
}

impl From<u16> for Value<'_> {
    fn from(value: u16) -> Self {
        Value::Int(i64::from(value))
    }
}

impl From<u8> for Value<'_> {
    fn from(value: u8) -> Self {
        Value::Int(i64::from(value))
    }
}

impl From<bool> for Value<'_> {
    fn from(value: bool) -> Self {
        Value::Int(i64::from(value))
    }
}

impl From<UnixMillis> for Value<'_> {
    fn from(value: UnixMillis) -> Self {
        Value::Int(value.as_millis())
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(value: &'a str) -> Self {
        Value::Text(Cow::Borrowed(value))
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(value: &'a String) -> Self {
        Value::Text(Cow::Borrowed(value))
    }
}

impl From<String> for Value<'_> {
    fn from(value: String) -> Self {
        Value::Text(Cow::Owned(value))
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(value: &'a [u8]) -> Self {
        Value::Blob(Cow::Borrowed(value))
    }
}

impl<'a> From<&'a Vec<u8>> for Value<'a> {
    fn from(value: &'a Vec<u8>) -> Self {
        Value::Blob(Cow::Borrowed(value))
    }
}

impl From<Mode> for Value<'_> {
    fn from(value: Mode) -> Self {
        Value::from(value.as_str())
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

/// Typed IDs are stored as their text.
macro_rules! id_values {
    ($($id:ty),*) => {
        $(impl From<$id> for Value<'_> {
            fn from(value: $id) -> Self {
                Value::Text(Cow::Owned(value.to_string()))
            }
        })*
    };
}
id_values!(
    MerchantId,
    ApiKeyId,
    PaymentId,
    EventId,
    WebhookEndpointId,
    TransactionKey,
    JournalId,
    BillingKeyId,
    BillingAuthId,
    DepositId,
    BankRefundId,
    CashReceiptKey
);

/// A column's value as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// A row as read, on either backend. Every getter fails with [`StoreError::Corrupt`] (naming the column) when the
/// value is missing, of another type, or one the domain cannot represent: a bug or manual tampering, never a panic.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    columns: Arc<[String]>,
    cells: Vec<Cell>,
}

/// A parse result, whether the parser answers with `Option` or `Result`.
pub(crate) trait Parsed<T> {
    fn parsed(self) -> Option<T>;
}

impl<T> Parsed<T> for Option<T> {
    fn parsed(self) -> Option<T> {
        self
    }
}

impl<T, E> Parsed<T> for Result<T, E> {
    fn parsed(self) -> Option<T> {
        self.ok()
    }
}

thread_local! {
    static COLUMNS: std::cell::RefCell<std::collections::HashMap<String, Arc<[String]>>> = Default::default();
}

/// A statement's column names, for [`Row`]'s error messages: computed once per statement text and thread (reads
/// are hot, and the statements are a fixed set), not once per query.
pub(crate) fn columns(sql: &str, names: impl FnOnce() -> Vec<String>) -> Arc<[String]> {
    COLUMNS.with(|cache| {
        if let Some(known) = cache.borrow().get(sql) {
            return Arc::clone(known);
        }
        let names: Arc<[String]> = names().into();
        cache.borrow_mut().insert(sql.to_owned(), Arc::clone(&names));
        names
    })
}

impl Row {
    pub(crate) fn new(columns: Arc<[String]>, cells: Vec<Cell>) -> Row {
        Row { columns, cells }
    }

    fn corrupt(&self, index: usize, problem: &str) -> StoreError {
        let column = self.columns.get(index).map_or("?", String::as_str);
        StoreError::Corrupt(format!("column {column}: {problem}"))
    }

    fn cell(&self, index: usize) -> Result<&Cell, StoreError> {
        self.cells.get(index).ok_or_else(|| self.corrupt(index, "missing"))
    }

    fn required<T>(&self, index: usize, value: Option<T>) -> Result<T, StoreError> {
        value.ok_or_else(|| self.corrupt(index, "NULL"))
    }

    pub(crate) fn opt_int(&self, index: usize) -> Result<Option<i64>, StoreError> {
        match self.cell(index)? {
            Cell::Null => Ok(None),
            Cell::Int(value) => Ok(Some(*value)),
            _ => Err(self.corrupt(index, "not an integer")),
        }
    }

    pub(crate) fn int(&self, index: usize) -> Result<i64, StoreError> {
        self.required(index, self.opt_int(index)?)
    }

    /// An integer column holding a narrower domain value (`u32`, `u16`, `u8`): one out of range is corrupt.
    pub(crate) fn opt_num<T: TryFrom<i64>>(&self, index: usize) -> Result<Option<T>, StoreError> {
        self.opt_int(index)?
            .map(|value| T::try_from(value).map_err(|_| self.corrupt(index, "out of range")))
            .transpose()
    }

    pub(crate) fn num<T: TryFrom<i64>>(&self, index: usize) -> Result<T, StoreError> {
        self.required(index, self.opt_num(index)?)
    }

    /// A 0/1 integer.
    pub(crate) fn flag(&self, index: usize) -> Result<bool, StoreError> {
        match self.int(index)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.corrupt(index, "neither 0 nor 1")),
        }
    }

    pub(crate) fn opt_millis(&self, index: usize) -> Result<Option<UnixMillis>, StoreError> {
        Ok(self.opt_int(index)?.map(UnixMillis::new))
    }

    pub(crate) fn millis(&self, index: usize) -> Result<UnixMillis, StoreError> {
        self.int(index).map(UnixMillis::new)
    }

    pub(crate) fn opt_text(&self, index: usize) -> Result<Option<&str>, StoreError> {
        match self.cell(index)? {
            Cell::Null => Ok(None),
            Cell::Text(value) => Ok(Some(value)),
            _ => Err(self.corrupt(index, "not text")),
        }
    }

    pub(crate) fn text(&self, index: usize) -> Result<&str, StoreError> {
        self.required(index, self.opt_text(index)?)
    }

    pub(crate) fn opt_string(&self, index: usize) -> Result<Option<String>, StoreError> {
        Ok(self.opt_text(index)?.map(str::to_owned))
    }

    pub(crate) fn string(&self, index: usize) -> Result<String, StoreError> {
        self.text(index).map(str::to_owned)
    }

    pub(crate) fn opt_blob(&self, index: usize) -> Result<Option<Vec<u8>>, StoreError> {
        match self.cell(index)? {
            Cell::Null => Ok(None),
            Cell::Blob(value) => Ok(Some(value.clone())),
            _ => Err(self.corrupt(index, "not bytes")),
        }
    }

    pub(crate) fn blob(&self, index: usize) -> Result<Vec<u8>, StoreError> {
        self.required(index, self.opt_blob(index)?)
    }

    /// A text column parsed into a domain value (`MerchantId::parse`, `Mode::parse`, …).
    pub(crate) fn opt_parse<T, P: Parsed<T>>(
        &self,
        index: usize,
        parse: impl FnOnce(&str) -> P,
    ) -> Result<Option<T>, StoreError> {
        self.opt_text(index)?
            .map(|text| {
                parse(text)
                    .parsed()
                    .ok_or_else(|| self.corrupt(index, "not a valid value"))
            })
            .transpose()
    }

    pub(crate) fn parse<T, P: Parsed<T>>(&self, index: usize, parse: impl FnOnce(&str) -> P) -> Result<T, StoreError> {
        self.required(index, self.opt_parse(index, parse)?)
    }
}

/// How an argument of a store method becomes owned, so that it can move into a backend's job (SQLite runs jobs on
/// its own threads).
pub(crate) trait Arg {
    type Owned: Send + 'static;
    fn owned(self) -> Self::Owned;
}

impl<T: ToOwned + ?Sized> Arg for &T
where
    T::Owned: Send + 'static,
{
    type Owned = T::Owned;
    fn owned(self) -> T::Owned {
        self.to_owned()
    }
}

impl<T: Clone + Send + 'static> Arg for Option<&T> {
    type Owned = Option<T>;
    fn owned(self) -> Option<T> {
        self.cloned()
    }
}

macro_rules! copy_args {
    ($($ty:ty),*) => {
        $(impl Arg for $ty {
            type Owned = $ty;
            fn owned(self) -> $ty {
                self
            }
        })*
    };
}
copy_args!(
    u32,
    i64,
    Mode,
    UnixMillis,
    MerchantId,
    ApiKeyId,
    PaymentId,
    EventId,
    WebhookEndpointId,
    BillingKeyId,
    BillingAuthId,
    DepositId,
    Bank,
    Option<MerchantId>,
    Option<EventId>,
    CashReceiptKey
);

/// Declares an aggregate's trait and implements it for both backends.
///
/// Each method names the transaction it runs in (`read`: no transaction; `snapshot`: one consistent read-only
/// snapshot; `write`: one write transaction, committed if and only if the operation returns `Ok`) and is carried
/// out by the function of the same name in the invoking module, which takes a `&impl Db` and the arguments owned.
macro_rules! aggregate {
    (
        $(#[$trait_meta:meta])*
        pub trait $trait:ident {
            $(
                $(#[$meta:meta])*
                $kind:ident fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty;
            )*
        }
    ) => {
        $(#[$trait_meta])*
        #[async_trait::async_trait]
        pub trait $trait: Send + Sync + 'static {
            $(
                $(#[$meta])*
                async fn $name(&self, $($arg: $ty),*) -> Result<$ret, $crate::StoreError>;
            )*
        }

        #[async_trait::async_trait]
        impl $trait for $crate::sqlite::SqliteStore {
            $(
                async fn $name(&self, $($arg: $ty),*) -> Result<$ret, $crate::StoreError> {
                    $(let $arg = $crate::db::Arg::owned($arg);)*
                    self.$kind(move |db| $crate::sqlite::run($name(db, $($arg),*))).await
                }
            )*
        }

        #[async_trait::async_trait]
        impl $trait for $crate::postgres::PostgresStore {
            $(
                async fn $name(&self, $($arg: $ty),*) -> Result<$ret, $crate::StoreError> {
                    $(let $arg = $crate::db::Arg::owned($arg);)*
                    $crate::postgres::transaction!($kind, self, |db| $name(db, $($arg),*))
                }
            )*
        }
    };
}
pub(crate) use aggregate;

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: Vec<Cell>) -> Row {
        let columns: Arc<[String]> = (0..cells.len()).map(|i| format!("c{i}")).collect();
        Row::new(columns, cells)
    }

    #[test]
    fn getters_refuse_what_the_domain_cannot_hold() {
        let r = row(vec![Cell::Int(-1), Cell::Null, Cell::Text("x".into()), Cell::Int(2)]);
        assert_eq!(r.int(0).unwrap_or_default(), -1);
        assert!(matches!(r.num::<u32>(0), Err(StoreError::Corrupt(m)) if m.contains("c0")));
        assert!(matches!(r.int(1), Err(StoreError::Corrupt(m)) if m.contains("NULL")));
        assert_eq!(r.opt_int(1).ok(), Some(None));
        assert!(r.int(2).is_err() && r.text(0).is_err() && r.blob(2).is_err());
        assert!(r.parse(2, Mode::parse).is_err());
        assert!(r.flag(3).is_err());
        assert!(r.int(9).is_err());
    }
}
