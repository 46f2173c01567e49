//! paygate's domain core.
//!
//! Everything here is pure: no I/O, no clock, no randomness source, no serde, no SQL.
//! Callers pass in the current time and entropy, and persist what the core decides.

pub mod api_key;
pub mod bank;
pub mod billing;
pub mod billing_auth;
pub mod card;
pub mod cash_receipt;
pub mod checkout;
pub mod customer;
pub mod event;
pub mod id;
pub mod idempotency;
pub mod ledger;
pub mod merchant;
pub mod money;
pub mod order;
pub mod payment;
pub mod routing;
pub mod sealed;
pub mod time;
pub mod transfer;
pub mod vat;
pub mod virtual_account;
pub mod webhook;
