//! Cancels, full or partial, repeatable until the balance is zero. Each cancel is its own transaction with its own
//! key, sent to the acquirer under that key (so a retry can never refund twice). The amount is reserved from the
//! balance before the acquirer is called, which is what keeps concurrent cancels from exceeding it.

use paygate_connectors::{CancelOutcome, Outcome};
use paygate_domain::id::{JournalId, PaymentId};
use paygate_domain::ledger::Journal;
use paygate_domain::money::Money;
use paygate_domain::payment::{Payment, PaymentTransaction, TransactionKind, TransactionStatus};
use paygate_domain::time::{DurationMs, UnixMillis};
use paygate_store::{JournalEntry, PaymentUpdate, StoreError};

use super::{InternalError, PaymentError, PaymentView};
use crate::auth::Caller;
use crate::App;

#[derive(Clone, Debug)]
pub struct CancelRequest {
    pub reason: String,
    /// None cancels the whole remaining balance.
    pub amount: Option<i64>,
    pub expected_balance: Option<i64>,
}

/// How many times a cancel re-reads the payment when a concurrent change won the race, and the longest pause
/// between tries (drawn at random, so racing writers spread out instead of colliding again in step).
const RACE_RETRIES_MAX: u32 = 32;
const RACE_PAUSE_MS_MAX: u64 = 8;

async fn race_pause() {
    let draw: [u8; 1] = crate::random_bytes();
    tokio::time::sleep(std::time::Duration::from_millis(
        1 + u64::from(draw[0]) % RACE_PAUSE_MS_MAX,
    ))
    .await;
}

impl App {
    pub async fn cancel(
        &self,
        caller: &Caller,
        id: PaymentId,
        request: CancelRequest,
    ) -> Result<PaymentView, PaymentError> {
        if caller.key.kind != paygate_domain::api_key::KeyKind::Secret {
            return Err(PaymentError::Forbidden);
        }
        let reason = request.reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 {
            return Err(PaymentError::Invalid {
                code: "INVALID_FIELD_VALUE",
                param: "cancelReason",
                message: "`cancelReason` must be 1 to 200 characters".into(),
            });
        }
        let amount = request.amount.map(|a| self.money(a, "cancelAmount")).transpose()?;
        let expected = request.expected_balance.map(Money::krw);
        let (payment, transaction) = self.reserve_cancel(caller, id, amount, expected, reason).await?;
        let key = transaction.key;
        let payment = self.send_cancel(payment, transaction).await?;
        let mut view = self.view(payment).await?;
        view.focus = Some(key);
        Ok(view)
    }

    async fn reserve_cancel(
        &self,
        caller: &Caller,
        id: PaymentId,
        amount: Option<Money>,
        expected: Option<Money>,
        reason: &str,
    ) -> Result<(Payment, PaymentTransaction), PaymentError> {
        for _ in 0..RACE_RETRIES_MAX {
            let payment = self
                .store()
                .payment(caller.merchant.id, caller.key.mode, id)
                .await?
                .ok_or(PaymentError::NotFound)?;
            let amount = amount.unwrap_or(payment.balance);
            let next = payment.cancel_reserved(amount, expected)?;
            let now = self.clock().now();
            let transaction = PaymentTransaction {
                key: self.new_transaction_key(now),
                payment_id: payment.id,
                merchant_id: payment.merchant_id,
                mode: payment.mode,
                kind: TransactionKind::Cancel,
                status: TransactionStatus::Pending,
                amount,
                reason: Some(reason.to_owned()),
                created_at: now,
                completed_at: None,
                acquirer_transaction_id: None,
                // If this process dies before the acquirer answers, the worker picks the cancel up from here.
                next_attempt_at: Some(
                    now.saturating_add(DurationMs::from_millis(self.payments.first_inquiry_delay_ms)),
                ),
                attempts: 0,
            };
            let mut update = PaymentUpdate::new(payment.version, next.clone());
            update.insert_transactions.push(transaction.clone());
            match self.commit(&payment, update.clone()).await {
                Ok(()) => return Ok((next, transaction)),
                Err(StoreError::Conflict(_)) => race_pause().await,
                Err(other) => return Err(other.into()),
            }
        }
        Err(PaymentError::Concurrent)
    }

    /// Sends a reserved cancel to the acquirer (first time, or again from the worker) and records the answer.
    pub(crate) async fn send_cancel(
        &self,
        payment: Payment,
        transaction: PaymentTransaction,
    ) -> Result<Payment, PaymentError> {
        let acquirer = self.acquirer(&payment)?;
        let route = payment.route.clone().ok_or(PaymentError::NoRoute)?;
        let request = paygate_connectors::CancelRequest {
            reference: transaction.key.to_string(),
            approval_reference: payment.id.to_string(),
            acquirer_merchant_id: route.acquirer_merchant_id.clone(),
            amount: transaction.amount,
        };
        let answer = acquirer.cancel(&request).await;
        crate::failpoint::hit("cancel.after_acquirer");
        match answer {
            Ok(CancelOutcome::Canceled(done)) => {
                self.finish_cancel(
                    payment.id,
                    transaction,
                    Some(done.acquirer_transaction_id),
                    &route.acquirer,
                )
                .await
            }
            Ok(CancelOutcome::Refused {
                acquirer_code,
                acquirer_message,
            }) => {
                self.release_cancel(payment.id, transaction).await?;
                Err(PaymentError::CancelRefused {
                    message: acquirer_message,
                    acquirer_code,
                })
            }
            Err(error) if error.outcome() == Outcome::NotApplied => {
                tracing::warn!(payment_id = %payment.id, %error, "acquirer did not apply the cancel; released");
                let released = self.release_cancel(payment.id, transaction).await?;
                Err(PaymentError::AcquirerUnavailable {
                    payment: Some(Box::new(released)),
                })
            }
            Err(error) => {
                tracing::warn!(payment_id = %payment.id, %error, "cancel outcome unknown; the worker will retry it");
                self.postpone_cancel(payment.id, transaction).await
            }
        }
    }

    async fn finish_cancel(
        &self,
        id: PaymentId,
        transaction: PaymentTransaction,
        acquirer_transaction_id: Option<String>,
        acquirer: &str,
    ) -> Result<Payment, PaymentError> {
        let payment = self
            .settle_pending_cancel(id, &transaction, |payment, transactions, now| {
                let mut settled = payment.total();
                let done_cancels = transactions
                    .iter()
                    .filter(|t| t.kind == TransactionKind::Cancel && t.status == TransactionStatus::Done);
                for amount in done_cancels
                    .map(|t| t.amount)
                    .chain(std::iter::once(transaction.amount))
                {
                    settled = settled
                        .checked_sub(amount)
                        .map_err(|e| InternalError::Invariant(e.to_string()))?;
                }
                let mut done = transaction.clone();
                done.status = TransactionStatus::Done;
                done.completed_at = Some(now);
                done.acquirer_transaction_id = acquirer_transaction_id.clone();
                done.next_attempt_at = None;
                done.attempts = transaction.attempts.saturating_add(1);
                let journal = Journal::card_cancel(payment.merchant_id, acquirer, transaction.amount)
                    .map_err(|e| InternalError::Invariant(e.to_string()))?;
                let mut update = PaymentUpdate::new(payment.version, payment.cancel_completed(settled)?);
                update.update_transaction = Some(done);
                update.journals.push(JournalEntry {
                    id: JournalId::new(now, crate::random_bytes()),
                    transaction_key: transaction.key,
                    journal,
                    created_at: now,
                });
                Ok(update)
            })
            .await?;
        tracing::info!(payment_id = %id, status = payment.status.as_str(), "cancel completed");
        Ok(payment)
    }

    async fn release_cancel(&self, id: PaymentId, transaction: PaymentTransaction) -> Result<Payment, PaymentError> {
        self.settle_pending_cancel(id, &transaction, |payment, _, now| {
            let mut failed = transaction.clone();
            failed.status = TransactionStatus::Failed;
            failed.completed_at = Some(now);
            failed.next_attempt_at = None;
            failed.attempts = transaction.attempts.saturating_add(1);
            let mut update = PaymentUpdate::new(payment.version, payment.cancel_released(transaction.amount)?);
            update.update_transaction = Some(failed);
            Ok(update)
        })
        .await
    }

    async fn postpone_cancel(&self, id: PaymentId, transaction: PaymentTransaction) -> Result<Payment, PaymentError> {
        let delay = DurationMs::from_millis(self.inquiry_backoff_ms(transaction.attempts));
        self.settle_pending_cancel(id, &transaction, |payment, _, now| {
            let mut pending = transaction.clone();
            pending.attempts = transaction.attempts.saturating_add(1);
            pending.next_attempt_at = Some(now.saturating_add(delay));
            // The payment itself does not change, but bumping its version serialises this with other writers.
            let mut next = payment.clone();
            next.version += 1;
            let mut update = PaymentUpdate::new(payment.version, next);
            update.update_transaction = Some(pending);
            Ok(update)
        })
        .await
    }

    /// Writes the resolution of a pending cancel, re-reading the payment when another change won the race. If the
    /// cancel itself was resolved meanwhile (by a worker, or a concurrent retry), that resolution stands.
    async fn settle_pending_cancel(
        &self,
        id: PaymentId,
        transaction: &PaymentTransaction,
        build: impl Fn(&Payment, &[PaymentTransaction], UnixMillis) -> Result<PaymentUpdate, PaymentError>,
    ) -> Result<Payment, PaymentError> {
        for _ in 0..RACE_RETRIES_MAX {
            let payment = self.store().payment_by_id(id).await?.ok_or(PaymentError::NotFound)?;
            let transactions = self.store().payment_transactions(id).await?;
            if transactions
                .iter()
                .any(|t| t.key == transaction.key && t.status != TransactionStatus::Pending)
            {
                return Ok(payment);
            }
            let update = build(&payment, &transactions, self.clock().now())?;
            match self.commit(&payment, update.clone()).await {
                Ok(()) => return Ok(update.payment),
                Err(StoreError::Conflict(_)) => race_pause().await,
                Err(other) => return Err(other.into()),
            }
        }
        Err(PaymentError::Concurrent)
    }
}
