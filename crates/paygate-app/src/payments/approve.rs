//! Calling the acquirer for an approval and writing down what happened, including the unknown.

use std::time::Duration;

use paygate_connectors::{Approval, ApproveOutcome, ApproveRequest, CardData, DeclineCode, Outcome};
use paygate_domain::id::JournalId;
use paygate_domain::ledger::Journal;
use paygate_domain::payment::{
    ApprovalDetails, Failure, Payment, PaymentStatus, PaymentTransaction, TransactionKind, TransactionStatus,
};
use paygate_domain::time::DurationMs;
use paygate_store::{CheckoutCardChange, JournalEntry, JournalOf, PaymentUpdate, StoreError};

use super::{answer_write, InternalError, PaymentClaim, PaymentError, PaymentView};
use crate::App;

/// Which error a failed approval answers with.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FailureAnswer {
    /// The issuer or acquirer declined: the failure's code and messages.
    Declined,
    /// The acquirer certainly did not process it; nothing was charged.
    Unavailable,
}

impl FailureAnswer {
    pub(crate) fn error(self, failed: Payment) -> PaymentError {
        match self {
            FailureAnswer::Declined => {
                let failure = failed.failure.clone().unwrap_or(Failure {
                    code: "REJECT_CARD_COMPANY".into(),
                    message: String::new(),
                    acquirer_code: None,
                });
                // The stored failure code is paygate's own spelling of a `DeclineCode`, or a code that names no
                // decline reason (`ACQUIRER_REVERSED`, `ACQUIRER_TIMEOUT`), which answers as the issuer's refusal.
                let code = DeclineCode::parse(&failure.code).unwrap_or(DeclineCode::RejectCardCompany);
                PaymentError::Declined {
                    payment: Box::new(failed),
                    code,
                    message: failure.message,
                    acquirer_code: failure.acquirer_code,
                }
            }
            FailureAnswer::Unavailable => PaymentError::AcquirerUnavailable {
                payment: Some(Box::new(failed)),
            },
        }
    }
}

/// A pause between attempts at a request the acquirer certainly did not apply.
const NOT_APPLIED_RETRY_PAUSE: Duration = Duration::from_millis(100);

impl App {
    /// Calls the acquirer for a payment already written with approval REQUESTED, and records the outcome.
    /// With `claim`, the request's answer is stored (or its claim ended) in the outcome's transaction.
    pub(crate) async fn run_approval(
        &self,
        payment: Payment,
        card: CardData,
        authenticated: bool,
        claim: Option<&PaymentClaim>,
    ) -> Result<PaymentView, PaymentError> {
        let acquirer = self.acquirer(&payment)?;
        let route = payment.route.clone().ok_or(PaymentError::NoRoute)?;
        let request = ApproveRequest {
            reference: payment.id.to_string(),
            acquirer_merchant_id: route.acquirer_merchant_id,
            card,
            amount: payment.total(),
            installment_months: payment.installment.months(),
            authenticated,
            // A billing key's charge: the merchant charges a registered card without the buyer.
            merchant_initiated: payment.billing.is_some(),
        };
        let attempts_max = self.payments.approve_attempts_max.max(1);
        let mut attempt = 1;
        crate::failpoint::hit("approve.before_acquirer");
        let result = loop {
            let result = acquirer.approve(&request).await;
            match &result {
                Err(error) if error.outcome() == Outcome::NotApplied && attempt < attempts_max => {
                    tracing::warn!(payment_id = %payment.id, %error, attempt, "acquirer did not apply the approval; retrying");
                    attempt += 1;
                    tokio::time::sleep(NOT_APPLIED_RETRY_PAUSE).await;
                }
                _ => break result,
            }
        };
        crate::failpoint::hit("approve.after_acquirer");
        match result {
            Ok(ApproveOutcome::Approved(approval)) => self.complete_approval(payment, approval, claim).await,
            Ok(ApproveOutcome::Declined(decline)) => {
                let failure = Failure {
                    code: decline.code.as_str().to_owned(),
                    message: decline.acquirer_message.clone(),
                    acquirer_code: Some(decline.acquirer_code.clone()),
                };
                let failed = self
                    .record_failure(&payment, failure, FailureAnswer::Declined, claim)
                    .await?;
                Err(FailureAnswer::Declined.error(failed))
            }
            Err(error) => match error.outcome() {
                Outcome::NotApplied => {
                    tracing::warn!(payment_id = %payment.id, %error, "acquirer unavailable; payment aborted, nothing charged");
                    let failure = Failure {
                        code: "ACQUIRER_UNAVAILABLE".into(),
                        message: "the acquirer could not process the payment; nothing was charged".into(),
                        acquirer_code: None,
                    };
                    let failed = self
                        .record_failure(&payment, failure, FailureAnswer::Unavailable, claim)
                        .await?;
                    Err(FailureAnswer::Unavailable.error(failed))
                }
                Outcome::Unknown => {
                    tracing::warn!(payment_id = %payment.id, %error, "approval outcome unknown; an inquiry will resolve it");
                    self.record_outcome_unknown(&payment, claim).await
                }
            },
        }
    }

    /// Records that the answer to a payment's approval (a card's, or a transfer's debit) is not known: the
    /// request's claim ends without an answer and the inquiry worker resolves it, never a guess.
    pub(crate) async fn record_outcome_unknown(
        &self,
        payment: &Payment,
        claim: Option<&PaymentClaim>,
    ) -> Result<PaymentView, PaymentError> {
        let now = self.clock().now();
        let next = payment.outcome_unknown(now.saturating_add(DurationMs::from_millis(self.inquiry_backoff_ms(0))));
        let mut update = PaymentUpdate::new(payment.version, next.clone());
        update.idempotency = claim.map(|c| c.detach(now));
        match self.commit_before_approval(payment, update).await {
            // Still waiting for its approval: no transactions yet.
            Ok(()) => Ok(PaymentView {
                virtual_account: None,
                payment: next,
                transactions: Vec::new(),
                focus: None,
                cash_receipts: Vec::new(),
            }),
            // The inquiry worker got there first; its answer stands.
            Err(StoreError::Conflict(_)) => {
                let current = self.reload(payment).await?;
                self.view(current).await
            }
            Err(other) => Err(other.into()),
        }
    }

    /// A payment's approval as its first transaction, `DONE`: the whole amount, the acquirer's (or bank's) ID of it,
    /// approved at `approved_at` and recorded `now`.
    pub(crate) fn approval_transaction(
        &self,
        payment: &Payment,
        external_id: &str,
        approved_at: paygate_domain::time::UnixMillis,
        now: paygate_domain::time::UnixMillis,
    ) -> PaymentTransaction {
        PaymentTransaction {
            key: self.new_transaction_key(now),
            payment_id: payment.id,
            merchant_id: payment.merchant_id,
            mode: payment.mode,
            kind: TransactionKind::Approval,
            status: TransactionStatus::Done,
            amount: payment.total(),
            tax_free: payment.amounts.tax_free(),
            reason: None,
            created_at: approved_at,
            completed_at: Some(now),
            acquirer_transaction_id: Some(external_id.to_owned()),
            next_attempt_at: None,
            attempts: 1,
        }
    }

    pub(crate) async fn reload(&self, payment: &Payment) -> Result<Payment, PaymentError> {
        self.store()
            .payment_by_id(payment.id)
            .await?
            .ok_or(PaymentError::NotFound)
    }

    /// Writes an approval (DONE, the approval transaction and its journal), or — when the payment can no longer
    /// take it — reverses it at the acquirer and expires the payment.
    pub(crate) async fn complete_approval(
        &self,
        payment: Payment,
        approval: Approval,
        claim: Option<&PaymentClaim>,
    ) -> Result<PaymentView, PaymentError> {
        let now = self.clock().now();
        if !payment.can_complete_at(now) {
            let expired = self.reverse_and_expire(payment, claim).await?;
            return self.view(expired).await;
        }
        let route = payment.route.clone().ok_or(PaymentError::NoRoute)?;
        let details = ApprovalDetails {
            approval_number: approval.approval_number.clone(),
            issuer_code: approval.issuer_code.clone(),
            acquirer_code: Some(approval.acquirer_code.clone()),
            card_type: approval.card_type,
            owner_type: approval.owner_type,
            acquirer_transaction_id: approval.acquirer_transaction_id.clone(),
            approved_at: approval.approved_at,
        };
        let next = payment.approved(details)?;
        let transaction =
            self.approval_transaction(&payment, &approval.acquirer_transaction_id, approval.approved_at, now);
        let key = transaction.key;
        let journal = Journal::card_approval(payment.merchant_id, &route.acquirer, payment.total())
            .map_err(|e| InternalError::Invariant(e.to_string()))?;
        let mut update = PaymentUpdate::new(payment.version, next.clone());
        update.insert_transactions.push(transaction);
        update.journals.push(JournalEntry {
            id: JournalId::new(now, crate::random_bytes()),
            of: JournalOf::Transaction(key),
            journal,
            created_at: now,
        });
        update.checkout_card = CheckoutCardChange::Delete;
        // An approval is a payment's first transaction: the answer shows the payment with it alone.
        let view = PaymentView {
            virtual_account: None,
            payment: next,
            transactions: update.insert_transactions.clone(),
            focus: None,
            cash_receipts: Vec::new(),
        };
        let answer = Ok(view);
        update.idempotency = answer_write(claim, &answer, now);
        match self.commit_before_approval(&payment, update).await {
            Ok(()) => {
                tracing::info!(payment_id = %payment.id, "payment approved");
                crate::failpoint::hit("approve.after_outcome");
                answer
            }
            Err(StoreError::Conflict(_)) => {
                // Someone else wrote the outcome first. If it is this approval, all is well; if the payment ended
                // otherwise, the approval must not stand.
                let current = self.reload(&payment).await?;
                if current.status == PaymentStatus::Done || current.status.accepts_cancel() {
                    return self.view(current).await;
                }
                if current.status.is_terminal() {
                    self.reverse(&current).await?;
                    return self.view(current).await;
                }
                Err(PaymentError::Concurrent)
            }
            Err(other) => Err(other.into()),
        }
    }

    pub(crate) async fn record_failure(
        &self,
        payment: &Payment,
        failure: Failure,
        answer: FailureAnswer,
        claim: Option<&PaymentClaim>,
    ) -> Result<Payment, PaymentError> {
        let next = payment.failed(failure)?;
        let mut update = PaymentUpdate::new(payment.version, next.clone());
        update.checkout_card = CheckoutCardChange::Delete;
        update.idempotency = answer_write(claim, &Err(answer.error(next.clone())), self.clock().now());
        match self.commit_before_approval(payment, update).await {
            Ok(()) => Ok(next),
            Err(StoreError::Conflict(_)) => self.reload(payment).await,
            Err(other) => Err(other.into()),
        }
    }

    /// 망취소: tells the acquirer to undo the approval with this payment's reference. Idempotent.
    pub(crate) async fn reverse(&self, payment: &Payment) -> Result<(), PaymentError> {
        let acquirer = self.acquirer(payment)?;
        let route = payment.route.clone().ok_or(PaymentError::NoRoute)?;
        acquirer
            .reverse(&payment.id.to_string(), &route.acquirer_merchant_id)
            .await
            .map_err(|error| {
                tracing::warn!(payment_id = %payment.id, %error, "reversal failed; will retry");
                PaymentError::AcquirerUnavailable { payment: None }
            })?;
        tracing::info!(payment_id = %payment.id, "approval reversed (망취소)");
        Ok(())
    }

    async fn reverse_and_expire(
        &self,
        payment: Payment,
        claim: Option<&PaymentClaim>,
    ) -> Result<Payment, PaymentError> {
        self.reverse(&payment).await?;
        let next = payment.expired()?;
        let mut update = PaymentUpdate::new(payment.version, next.clone());
        update.checkout_card = CheckoutCardChange::Delete;
        let answer = Ok(PaymentView {
            virtual_account: None,
            payment: next.clone(),
            transactions: Vec::new(),
            focus: None,
            cash_receipts: Vec::new(),
        });
        update.idempotency = answer_write(claim, &answer, self.clock().now());
        match self.commit_before_approval(&payment, update).await {
            Ok(()) => Ok(next),
            Err(StoreError::Conflict(_)) => self.reload(&payment).await,
            Err(other) => Err(other.into()),
        }
    }

    /// Resolves one payment whose approval outcome is unknown (or whose request may have been lost in a crash).
    pub(crate) async fn resolve_approval(&self, payment: Payment) -> Result<Payment, PaymentError> {
        use paygate_connectors::InquiryOutcome;
        let acquirer = self.acquirer(&payment)?;
        let route = payment.route.clone().ok_or(PaymentError::NoRoute)?;
        let answer = acquirer
            .inquire(&payment.id.to_string(), &route.acquirer_merchant_id)
            .await;
        crate::failpoint::hit("inquiry.after_acquirer");
        match answer {
            Ok(InquiryOutcome::Approved(approval)) => self
                .complete_approval(payment, approval, None)
                .await
                .map(|view| view.payment),
            Ok(InquiryOutcome::Declined(decline)) => {
                let failure = Failure {
                    code: decline.code.as_str().to_owned(),
                    message: decline.acquirer_message,
                    acquirer_code: Some(decline.acquirer_code),
                };
                self.record_failure(&payment, failure, FailureAnswer::Declined, None)
                    .await
            }
            Ok(InquiryOutcome::Reversed { .. }) => {
                let failure = Failure {
                    code: "ACQUIRER_REVERSED".into(),
                    message: "the approval was reversed at the acquirer".into(),
                    acquirer_code: None,
                };
                self.record_failure(&payment, failure, FailureAnswer::Declined, None)
                    .await
            }
            Ok(InquiryOutcome::NotFound) => {
                // The request may still be in flight inside the acquirer: reverse the reference first, so it can
                // never complete later, then record the payment as failed. Nothing was charged.
                if let Err(error) = self.reverse(&payment).await {
                    return self.postpone_inquiry(payment, &error.to_string(), None).await;
                }
                let failure = Failure {
                    code: "ACQUIRER_TIMEOUT".into(),
                    message: "the acquirer did not complete the payment; nothing was charged".into(),
                    acquirer_code: None,
                };
                self.record_failure(&payment, failure, FailureAnswer::Declined, None)
                    .await
            }
            Err(error) => self.postpone_inquiry(payment, &error.to_string(), None).await,
        }
    }

    /// Schedules the next inquiry of a payment after the backoff, but not after `not_after` if given.
    pub(crate) async fn postpone_inquiry(
        &self,
        payment: Payment,
        why: &str,
        not_after: Option<paygate_domain::time::UnixMillis>,
    ) -> Result<Payment, PaymentError> {
        let now = self.clock().now();
        let delay = self.inquiry_backoff_ms(payment.inquiry_attempts.saturating_add(1));
        tracing::info!(payment_id = %payment.id, why, delay_ms = delay, "inquiry postponed");
        let backoff = now.saturating_add(DurationMs::from_millis(delay));
        let next = payment.inquiry_postponed(not_after.map_or(backoff, |cap| backoff.min(cap)));
        match self
            .commit(&payment, PaymentUpdate::new(payment.version, next.clone()))
            .await
        {
            Ok(()) => Ok(next),
            Err(StoreError::Conflict(_)) => self.reload(&payment).await,
            Err(other) => Err(other.into()),
        }
    }
}
