//! Cancels, full or partial, repeatable until the balance is zero. Each cancel is its own transaction with its own
//! key, sent to the acquirer under that key (so a retry can never refund twice). The amount is reserved from the
//! balance before the acquirer is called, which is what keeps concurrent cancels from exceeding it.

use paygate_connectors::{CancelOutcome, Outcome};
use paygate_domain::id::{JournalId, PaymentId};
use paygate_domain::ledger::Journal;
use paygate_domain::money::Money;
use paygate_domain::payment::{Payment, PaymentRuleError, PaymentTransaction, TransactionKind, TransactionStatus};
use paygate_domain::time::{DurationMs, UnixMillis};
use paygate_store::{IdempotencyResource, IdempotencyWrite, JournalEntry, JournalOf, PaymentUpdate, StoreError};

use super::command::CancelCommand;
use super::{
    answer_write, InternalError, PaymentAnswer, PaymentClaim, PaymentError, PaymentIdempotency, PaymentView, Start,
};
use crate::auth::Caller;
use crate::idempotency::{Answer, IdempotencyRefusal};
use crate::App;

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

/// A cancel as the use case runs it.
#[derive(Clone, Copy)]
struct CancelRequest<'a> {
    /// None cancels the whole balance.
    amount: Option<Money>,
    tax_free: Money,
    expected: Option<Money>,
    /// The guard came as Toss's `refundableAmount`.
    as_refundable: bool,
    reason: &'a str,
}

impl App {
    pub async fn cancel(
        &self,
        caller: &Caller,
        id: PaymentId,
        command: CancelCommand,
        idempotency: Option<PaymentIdempotency>,
    ) -> PaymentAnswer {
        if caller.key.kind != paygate_domain::api_key::KeyKind::Secret {
            return Err(PaymentError::Forbidden);
        }
        let claim = match self.start_payment_request(caller, idempotency).await? {
            Start::Run(claim) => claim,
            Start::Answer(answer) => return Ok(*answer),
        };
        let amount = command
            .amount
            .map(|amount| self.check_amount(amount, "cancelAmount"))
            .transpose()?;
        // A bank method's payment is cancelled through its bank, not an acquirer.
        let payment = self
            .store()
            .payment(caller.merchant.id, caller.key.mode, id)
            .await?
            .ok_or(PaymentError::NotFound)?;
        if payment.method == paygate_domain::payment::PaymentMethod::Transfer {
            return self
                .cancel_transfer(payment, &command, amount, claim.as_ref())
                .await
                .map(Answer::Fresh);
        }
        if payment.method == paygate_domain::payment::PaymentMethod::VirtualAccount {
            return self
                .cancel_virtual_account(payment, &command, amount, claim.as_ref())
                .await
                .map(Answer::Fresh);
        }
        let request = CancelRequest {
            amount,
            tax_free: command.tax_free,
            expected: command.expected_balance,
            as_refundable: command.balance_as_refundable,
            reason: command.reason.as_str(),
        };
        let (payment, transaction) = match self.reserve_cancel(caller, id, &request, claim.as_ref()).await {
            Err(PaymentError::Idempotency(_)) if claim.is_some() => {
                let claim = claim.as_ref().ok_or(PaymentError::Concurrent)?;
                return self
                    .restart_payment_request(caller, claim)
                    .await?
                    .ok_or(PaymentError::Concurrent);
            }
            other => other?,
        };
        let key = transaction.key;
        let payment = self.send_cancel(payment, transaction, claim.as_ref()).await?;
        let mut view = self.view(payment).await?;
        view.focus = Some(key);
        Ok(Answer::Fresh(view))
    }

    async fn reserve_cancel(
        &self,
        caller: &Caller,
        id: PaymentId,
        request: &CancelRequest<'_>,
        claim: Option<&PaymentClaim>,
    ) -> Result<(Payment, PaymentTransaction), PaymentError> {
        let CancelRequest {
            amount,
            tax_free,
            expected,
            as_refundable,
            reason,
        } = *request;
        for _ in 0..RACE_RETRIES_MAX {
            let payment = self
                .store()
                .payment(caller.merchant.id, caller.key.mode, id)
                .await?
                .ok_or(PaymentError::NotFound)?;
            // A full cancel of a payment with nothing left to cancel (another cancel took the balance, perhaps a
            // moment ago) is refused as the payment's state, not as an amount the caller never sent.
            if amount.is_none() && payment.balance.is_zero() {
                return Err(PaymentError::NotCancelable { status: payment.status });
            }
            let amount = amount.unwrap_or(payment.balance);
            if !tax_free.is_zero() {
                // Read after the payment: a cancel committed in between shows here (the check is stricter, never
                // looser) and moves the version, so the write below fails and this is tried again.
                let cancelled = self.tax_free_cancelled(&payment).await?;
                payment.check_cancel_tax_free(amount, tax_free, cancelled)?;
            }
            let next = match payment.cancel_reserved(amount, expected) {
                Err(PaymentRuleError::BalanceMismatch { actual, .. }) if as_refundable => {
                    return Err(PaymentError::RefundableMismatch { actual });
                }
                other => other?,
            };
            let now = self.clock().now();
            let transaction = PaymentTransaction {
                key: self.new_transaction_key(now),
                payment_id: payment.id,
                merchant_id: payment.merchant_id,
                mode: payment.mode,
                kind: TransactionKind::Cancel,
                status: TransactionStatus::Pending,
                amount,
                tax_free,
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
            update.idempotency = claim.map(|c| {
                c.claim(
                    IdempotencyResource {
                        payment_id: payment.id,
                        focus: Some(transaction.key),
                    },
                    now,
                )
            });
            match self.commit(&payment, update).await {
                Ok(()) => return Ok((next, transaction)),
                Err(StoreError::IdempotencyConflict) => return Err(IdempotencyRefusal::InFlight.into()),
                Err(StoreError::Conflict(_)) => race_pause().await,
                Err(other) => return Err(other.into()),
            }
        }
        Err(PaymentError::Concurrent)
    }

    /// The tax-free amount that the payment's cancels, pending or done, declared so far.
    pub(crate) async fn tax_free_cancelled(&self, payment: &Payment) -> Result<Money, PaymentError> {
        let mut sum = Money::zero(payment.total().currency());
        for t in self.store().payment_transactions(payment.id).await? {
            if t.kind == TransactionKind::Cancel && t.status != TransactionStatus::Failed {
                sum = sum
                    .checked_add(t.tax_free)
                    .map_err(|e| InternalError::Invariant(e.to_string()))?;
            }
        }
        Ok(sum)
    }

    /// Sends a reserved cancel to the acquirer (first time, or again from the worker) and records the answer.
    pub(crate) async fn send_cancel(
        &self,
        payment: Payment,
        transaction: PaymentTransaction,
        claim: Option<&PaymentClaim>,
    ) -> Result<Payment, PaymentError> {
        let acquirer = self.acquirer(&payment)?;
        let route = payment.route.clone().ok_or(PaymentError::NoRoute)?;
        let request = paygate_connectors::CancelRequest {
            reference: transaction.key.to_string(),
            approval_reference: payment.id.to_string(),
            acquirer_merchant_id: route.acquirer_merchant_id.clone(),
            amount: transaction.amount,
        };
        crate::failpoint::hit("cancel.before_acquirer");
        let answer = acquirer.cancel(&request).await;
        crate::failpoint::hit("cancel.after_acquirer");
        match answer {
            Ok(CancelOutcome::Canceled(done)) => {
                self.finish_cancel(
                    payment.id,
                    transaction,
                    Some(done.acquirer_transaction_id),
                    &route.acquirer,
                    claim,
                )
                .await
            }
            Ok(CancelOutcome::Refused {
                acquirer_code,
                acquirer_message,
            }) => {
                let refused = || PaymentError::CancelRefused {
                    message: acquirer_message.clone(),
                    acquirer_code: acquirer_code.clone(),
                };
                let answer = claim.map(|c| c.complete(&Err(refused()), self.clock().now()));
                self.release_cancel(payment.id, transaction, answer).await?;
                Err(refused())
            }
            // Only a first attempt may conclude that nothing happened: on a retry (an earlier attempt's outcome was
            // unknown) "not applied" speaks for this attempt alone, and the earlier one may have been applied. The
            // worker retries it under the same reference until the acquirer gives its answer for that reference.
            Err(error) if error.outcome() == Outcome::NotApplied && transaction.attempts > 0 => {
                tracing::warn!(payment_id = %payment.id, %error, "acquirer did not apply this retry of a cancel whose earlier outcome is unknown; the worker will retry it");
                self.postpone_cancel(payment.id, transaction, claim.map(|c| c.detach(self.clock().now())))
                    .await
            }
            Err(error) if error.outcome() == Outcome::NotApplied => {
                tracing::warn!(payment_id = %payment.id, %error, "acquirer did not apply the cancel; released");
                // Nothing happened: the key is given back, so a retry runs the cancel again.
                let released = self
                    .release_cancel(payment.id, transaction, claim.map(|c| c.release()))
                    .await?;
                Err(PaymentError::AcquirerUnavailable {
                    payment: Some(Box::new(released)),
                })
            }
            Err(error) => {
                tracing::warn!(payment_id = %payment.id, %error, "cancel outcome unknown; the worker will retry it");
                self.postpone_cancel(payment.id, transaction, claim.map(|c| c.detach(self.clock().now())))
                    .await
            }
        }
    }

    async fn finish_cancel(
        &self,
        id: PaymentId,
        transaction: PaymentTransaction,
        acquirer_transaction_id: Option<String>,
        acquirer: &str,
        claim: Option<&PaymentClaim>,
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
                let answer = Ok(PaymentView {
                    virtual_account: None,
                    payment: update.payment.clone(),
                    transactions: transactions
                        .iter()
                        .map(|t| if t.key == done.key { done.clone() } else { t.clone() })
                        .collect(),
                    focus: Some(done.key),
                    cash_receipts: Vec::new(),
                });
                update.idempotency = answer_write(claim, &answer, now);
                update.update_transaction = Some(done);
                update.journals.push(JournalEntry {
                    id: JournalId::new(now, crate::random_bytes()),
                    of: JournalOf::Transaction(transaction.key),
                    journal,
                    created_at: now,
                });
                Ok(update)
            })
            .await?;
        crate::failpoint::hit("cancel.after_outcome");
        tracing::info!(payment_id = %id, status = payment.status.as_str(), "cancel completed");
        Ok(payment)
    }

    async fn release_cancel(
        &self,
        id: PaymentId,
        transaction: PaymentTransaction,
        idempotency: Option<IdempotencyWrite>,
    ) -> Result<Payment, PaymentError> {
        self.settle_pending_cancel(id, &transaction, |payment, _, now| {
            let mut failed = transaction.clone();
            failed.status = TransactionStatus::Failed;
            failed.completed_at = Some(now);
            failed.next_attempt_at = None;
            failed.attempts = transaction.attempts.saturating_add(1);
            let mut update = PaymentUpdate::new(payment.version, payment.cancel_released(transaction.amount)?);
            update.update_transaction = Some(failed);
            update.idempotency = idempotency.clone();
            Ok(update)
        })
        .await
    }

    async fn postpone_cancel(
        &self,
        id: PaymentId,
        transaction: PaymentTransaction,
        idempotency: Option<IdempotencyWrite>,
    ) -> Result<Payment, PaymentError> {
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
            update.idempotency = idempotency.clone();
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
