//! Background work: expire payments past their deadline, resolve unknown approval outcomes by inquiry, and retry
//! cancels whose answer was lost. Each pass handles at most `worker_batch_max` items per queue; every write is
//! conditional on the payment's version, so several gateway processes can run workers on one database without
//! doing anything twice (a loser's write is refused and skipped).

use paygate_domain::payment::TransactionStatus;
use paygate_store::{CheckoutCardChange, PaymentUpdate, StoreError};

use super::PaymentError;
use crate::App;

/// What one pass did, for logs, metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkReport {
    pub expired: u32,
    pub inquiries: u32,
    pub cancel_retries: u32,
    pub errors: u32,
}

impl WorkReport {
    pub fn is_idle(&self) -> bool {
        self.expired == 0 && self.inquiries == 0 && self.cancel_retries == 0
    }
}

impl App {
    /// Runs one pass over every queue.
    pub async fn run_workers_once(&self) -> Result<WorkReport, PaymentError> {
        let mut report = WorkReport::default();
        let now = self.clock().now();
        let batch = self.payments.worker_batch_max.max(1);
        for payment in self.store().due_expiries(now, batch).await? {
            let Ok(next) = payment.expired() else { continue };
            let mut update = PaymentUpdate::new(payment.version, next);
            update.checkout_card = CheckoutCardChange::Delete;
            match self.commit(&payment, update.clone()).await {
                Ok(()) => report.expired += 1,
                Err(StoreError::Conflict(_)) => {}
                Err(other) => return Err(other.into()),
            }
        }
        for payment in self.store().due_inquiries(now, batch).await? {
            report.inquiries += 1;
            if let Err(error) = self.resolve_approval(payment).await {
                report.errors += 1;
                tracing::warn!(%error, "inquiry pass failed for one payment");
            }
        }
        for transaction in self.store().due_cancel_retries(now, batch).await? {
            if transaction.status != TransactionStatus::Pending {
                continue;
            }
            let Some(payment) = self.store().payment_by_id(transaction.payment_id).await? else {
                continue;
            };
            report.cancel_retries += 1;
            match self.send_cancel(payment, transaction, None).await {
                Ok(_) | Err(PaymentError::CancelRefused { .. }) | Err(PaymentError::AcquirerUnavailable { .. }) => {}
                Err(error) => {
                    report.errors += 1;
                    tracing::warn!(%error, "cancel retry failed");
                }
            }
        }
        Ok(report)
    }
}
