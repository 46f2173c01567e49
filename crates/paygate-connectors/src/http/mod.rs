//! The sandbox acquirers' JSON-over-HTTP protocol (PROTOCOL.md at the crate root): the simulator that serves it
//! and the [`HttpAcquirer`] connector that speaks it.

mod bank_client;
mod bank_sim;
mod client;
mod simulator;
mod wire;

pub use bank_client::HttpBank;
pub use bank_sim::{BankSimConfig, BankSimulator, MAX_PAGE};
pub use client::{HttpAcquirer, HttpAcquirerConfig, HttpAcquirerError};
pub use simulator::{run_simulator, Simulator, SimulatorConfig, MAX_BODY_BYTES, MAX_JOURNAL_PAGE};
pub use wire::{MAX_MERCHANT_ID_LEN, MAX_REFERENCE_LEN};
