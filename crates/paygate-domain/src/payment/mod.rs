//! Payments: the status machine ([`status`]) and the payment record with its rules ([`record`]).

pub mod record;
pub mod status;

pub use record::*;
pub use status::*;
