//! Background work: expire payments past their deadline, resolve unknown approval outcomes by inquiry, and retry
//! cancels whose answer was lost. Each pass handles at most `worker_batch_max` items per queue; every write is
//! conditional on the payment's version, so several gateway processes can run workers on one database without
//! doing anything twice (a loser's write is refused and skipped).
//!
//! Inquiries and cancel retries wait on the acquirer, so they run concurrently, at most
//! `worker_concurrency_max` at once (one at a time, 32 unknown approvals took 65 s against an acquirer answering in
//! 800 ms). The cancel retries of one payment stay in order, in one task: each reads the payment the previous one
//! left.

use std::collections::HashMap;
use std::future::Future;

use paygate_domain::id::PaymentId;
use paygate_domain::payment::{PaymentTransaction, TransactionStatus};
use paygate_store::{CheckoutCardChange, PaymentUpdate, StoreError};

use super::PaymentError;
use crate::App;

/// What one pass did, for logs, metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkReport {
    pub expired: u32,
    pub inquiries: u32,
    pub cancel_retries: u32,
    /// Held deposits sent back to their depositors (or asked about again).
    pub deposit_returns: u32,
    /// Deposits recorded from a bank's feed (their notification had not come).
    pub deposits_found: u32,
    /// Cash receipts reported to the tax authority (or asked about again).
    pub receipt_reports: u32,
    pub errors: u32,
}

impl WorkReport {
    pub fn is_idle(&self) -> bool {
        self.expired == 0
            && self.inquiries == 0
            && self.cancel_retries == 0
            && self.deposit_returns == 0
            && self.deposits_found == 0
            && self.receipt_reports == 0
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
        let grace = paygate_domain::time::DurationMs::from_millis(self.payments.virtual_account_expiry_grace_ms);
        report.expired += self
            .expire_virtual_accounts(now.saturating_sub(grace), now, batch)
            .await?;
        report.deposits_found += self.poll_bank_feeds(now).await?;
        report.cancel_retries += self.retry_bank_refunds(now, batch).await?;
        let (returned, failed) = self.return_held_deposits(now, batch).await?;
        report.deposit_returns += returned;
        match self.report_cash_receipts(now, batch).await {
            Ok(sent) => report.receipt_reports += sent,
            Err(error) => {
                tracing::warn!(%error, "the cash receipt report pass failed");
                report.errors += 1;
            }
        }
        report.errors += failed;
        let inquiries = self.store().due_inquiries(now, batch).await?;
        report.inquiries = u32::try_from(inquiries.len()).unwrap_or(u32::MAX);
        let resolved = self
            .run_bounded(inquiries, |app, payment| async move {
                match payment.method {
                    paygate_domain::payment::PaymentMethod::Transfer => app.resolve_transfer(payment).await.map(|_| ()),
                    _ => app.resolve_approval(payment).await.map(|_| ()),
                }
            })
            .await;
        for outcome in resolved {
            if let Some(Err(error)) = &outcome {
                tracing::warn!(%error, "inquiry pass failed for one payment");
            }
            if !matches!(outcome, Some(Ok(()))) {
                report.errors += 1;
            }
        }

        let mut per_payment: Vec<Vec<PaymentTransaction>> = Vec::new();
        let mut slot_of: HashMap<PaymentId, usize> = HashMap::new();
        for transaction in self.store().due_cancel_retries(now, batch).await? {
            if transaction.status != TransactionStatus::Pending {
                continue;
            }
            let slot = *slot_of.entry(transaction.payment_id).or_insert_with(|| {
                per_payment.push(Vec::new());
                per_payment.len() - 1
            });
            if let Some(group) = per_payment.get_mut(slot) {
                group.push(transaction);
            }
        }
        let retried = self
            .run_bounded(per_payment, |app, transactions| async move {
                app.retry_cancels(transactions).await
            })
            .await;
        for outcome in retried {
            match outcome {
                Some(counts) => {
                    report.cancel_retries += counts.attempted;
                    report.errors += counts.errors;
                }
                None => report.errors += 1,
            }
        }
        Ok(report)
    }

    /// Retries one payment's pending cancels, in order.
    async fn retry_cancels(&self, transactions: Vec<PaymentTransaction>) -> CancelRetries {
        let mut counts = CancelRetries::default();
        for transaction in transactions {
            let payment = match self.store().payment_by_id(transaction.payment_id).await {
                Ok(Some(payment)) => payment,
                Ok(None) => continue,
                Err(error) => {
                    counts.errors += 1;
                    tracing::warn!(%error, "cancel retry could not read its payment");
                    continue;
                }
            };
            counts.attempted += 1;
            match self.send_cancel(payment, transaction, None).await {
                Ok(_) | Err(PaymentError::CancelRefused { .. }) | Err(PaymentError::AcquirerUnavailable { .. }) => {}
                Err(error) => {
                    counts.errors += 1;
                    tracing::warn!(%error, "cancel retry failed");
                }
            }
        }
        counts
    }

    /// Runs `work` on every item, at most `worker_concurrency_max` at once, and returns each result in completion
    /// order (`None` for a task that panicked; the panic is logged). Tasks are spawned so that slow acquirer calls
    /// overlap; every write they make is conditional, as in a single task.
    async fn run_bounded<T, R, F, Fut>(&self, items: Vec<T>, work: F) -> Vec<Option<R>>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: Fn(App, T) -> Fut,
        Fut: Future<Output = R> + Send + 'static,
    {
        let limit = usize::try_from(self.payments.worker_concurrency_max.max(1)).unwrap_or(1);
        let mut results = Vec::with_capacity(items.len());
        let mut tasks = tokio::task::JoinSet::new();
        for item in items {
            if tasks.len() >= limit {
                if let Some(joined) = tasks.join_next().await {
                    results.push(joined_result(joined));
                }
            }
            tasks.spawn(work(self.clone(), item));
        }
        while let Some(joined) = tasks.join_next().await {
            results.push(joined_result(joined));
        }
        results
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct CancelRetries {
    attempted: u32,
    errors: u32,
}

fn joined_result<R>(joined: Result<R, tokio::task::JoinError>) -> Option<R> {
    match joined {
        Ok(result) => Some(result),
        Err(error) => {
            tracing::error!(%error, "a worker task panicked");
            None
        }
    }
}
