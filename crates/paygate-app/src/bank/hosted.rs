//! Bank methods on paygate's hosted page: the buyer picks a virtual account's bank (and the name it is for), or
//! authorizes an account transfer at the bank's own page; the merchant then confirms (`POST
//! /v1/payments/confirm`), which issues the account (WAITING_FOR_DEPOSIT) or debits the transfer (DONE). A form
//! POST checkout has no merchant confirm: paygate confirms at once, as it approves a card at once.
//!
//! Order of operations, as for cards: the buyer's choice is written (IN_PROGRESS, with the session's bank, in one
//! transaction) before the merchant can confirm; a transfer's confirm is written (approval REQUESTED) before the
//! bank is asked to debit under the payment's key, so a lost answer is resolved by an inquiry under that key and
//! never guessed; the account of a virtual account is issued under the payment's key too, so a repeated confirm
//! gets the same account.

use paygate_connectors::bank::{BeginTransfer, Debit, DebitAnswer, IssueAccount};
use paygate_domain::bank::{Bank, Validity};
use paygate_domain::card::{CardType, OwnerType};
use paygate_domain::cash_receipt::ReceiptRequest;
use paygate_domain::checkout::CheckoutEntry;
use paygate_domain::id::{JournalId, PaymentId};
use paygate_domain::ledger::Journal;
use paygate_domain::money::Money;
use paygate_domain::order::OrderId;
use paygate_domain::payment::{ApprovalDetails, Failure, Payment, PaymentMethod, PaymentStatus};
use paygate_domain::time::DurationMs;
use paygate_domain::transfer::{NewTransfer, Transfer};
use paygate_domain::virtual_account::{NewVirtualAccount, RefundAccount, VirtualAccount};
use paygate_store::{IdempotencyResource, JournalEntry, JournalOf, PaymentUpdate, StoreError};

use crate::idempotency::IdempotencyRefusal;
use crate::payments::approve::FailureAnswer;
use crate::payments::command::{CashReceiptAsked, FieldError};
use crate::payments::hosted::{HostedPage, HostedStep, RetryReason};
use crate::payments::{answer_write, InternalError, PaymentClaim, PaymentError, PaymentView};
use crate::App;

fn receipt_request(
    payment_id: PaymentId,
    asked: CashReceiptAsked,
    now: paygate_domain::time::UnixMillis,
) -> ReceiptRequest {
    ReceiptRequest {
        payment_id,
        receipt_type: asked.receipt_type,
        identity: asked.identity,
        requested_at: now,
    }
}

/// The longest name a virtual account is issued for.
pub const HOLDER_NAME_CHARS_MAX: usize = 30;

impl App {
    /// The methods the hosted page offers for a payment: the one the merchant asked for, or (none asked) cards
    /// and, where paygate reaches a bank in the payment's mode, virtual accounts and transfers.
    pub fn hosted_methods(&self, page: &HostedPage) -> Vec<PaymentMethod> {
        if let Some(method) = page.session.method {
            return vec![method];
        }
        if self.banks.get(page.payment.mode).is_some() {
            PaymentMethod::ALL.to_vec()
        } else {
            vec![PaymentMethod::Card]
        }
    }

    /// The banks the hosted page offers for a bank method in `mode`, in Toss's table order.
    pub fn hosted_banks(&self, page: &HostedPage) -> Vec<Bank> {
        self.banks
            .get(page.payment.mode)
            .map(|bank| bank.banks())
            .unwrap_or_default()
    }

    fn offered_bank(&self, page: &HostedPage, method: PaymentMethod, bank: &str) -> Result<Bank, RetryReason> {
        if !self.hosted_methods(page).contains(&method) {
            return Err(RetryReason::MethodNotOffered);
        }
        Bank::parse(bank.trim())
            .filter(|bank| self.hosted_banks(page).contains(bank))
            .ok_or(RetryReason::BankNotOffered(method))
    }

    /// The buyer picked a virtual account: its bank and the name it is for (the depositor's name the bank
    /// expects; the buyer's name by default).
    pub async fn hosted_virtual_account(
        &self,
        id: PaymentId,
        bank: &str,
        holder_name: &str,
        receipt: Result<Option<CashReceiptAsked>, FieldError>,
    ) -> Result<HostedStep, PaymentError> {
        let page = self.hosted_page(id).await?;
        if page.payment.status != PaymentStatus::Ready {
            return self.result_step(&page.payment, &page.session).await;
        }
        let bank = match self.offered_bank(&page, PaymentMethod::VirtualAccount, bank) {
            Ok(bank) => bank,
            Err(reason) => return Ok(HostedStep::Retry(reason)),
        };
        let holder = holder_name.trim();
        if holder.is_empty() || holder.chars().count() > HOLDER_NAME_CHARS_MAX || holder.chars().any(char::is_control) {
            return Ok(HostedStep::Retry(RetryReason::HolderName));
        }
        let Ok(receipt) = receipt else {
            return Ok(HostedStep::Retry(RetryReason::CashReceipt(
                PaymentMethod::VirtualAccount,
            )));
        };
        let session = page.session.bank_chosen(bank, Some(holder.to_owned()));
        let request = receipt.map(|asked| receipt_request(id, asked, self.clock().now()));
        self.choose_bank_method(page, PaymentMethod::VirtualAccount, session, request)
            .await
    }

    /// The buyer picked a bank for a transfer: the bank opens the transfer and the browser goes to its page.
    pub async fn hosted_transfer(
        &self,
        id: PaymentId,
        bank: &str,
        receipt: Result<Option<CashReceiptAsked>, FieldError>,
    ) -> Result<HostedStep, PaymentError> {
        let page = self.hosted_page(id).await?;
        if page.payment.status != PaymentStatus::Ready {
            return self.result_step(&page.payment, &page.session).await;
        }
        let bank = match self.offered_bank(&page, PaymentMethod::Transfer, bank) {
            Ok(bank) => bank,
            Err(reason) => return Ok(HostedStep::Retry(reason)),
        };
        let connector = self
            .banks
            .get(page.payment.mode)
            .cloned()
            .ok_or(PaymentError::BankUnavailable {
                message: "no bank in this mode".into(),
            })?;
        let Ok(receipt) = receipt else {
            return Ok(HostedStep::Retry(RetryReason::CashReceipt(PaymentMethod::Transfer)));
        };
        // The bank and the buyer's cash receipt, in one write (the payment itself stays READY).
        let session = page.session.bank_chosen(bank, None);
        let mut update = PaymentUpdate::new(page.payment.version, page.payment.touched());
        update.bank.checkout_session = Some(session);
        update.receipts.request = receipt.map(|asked| receipt_request(id, asked, self.clock().now()));
        match self.commit(&page.payment, update).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return self.current_step(id).await,
            Err(other) => return Err(other.into()),
        }
        let request = BeginTransfer {
            reference: id.to_string(),
            merchant_id: page.payment.merchant_id.to_string(),
            bank_code: bank,
            amount: page.payment.total(),
            return_url: format!(
                "{}/checkout/{id}/transfer",
                self.payments.checkout_base_url.trim_end_matches('/')
            ),
        };
        match connector.begin_transfer(&request).await {
            Ok(Ok(opened)) => Ok(HostedStep::Redirect(opened.authorize_url)),
            Ok(Err(refusal)) => {
                tracing::warn!(payment = %id, code = refusal.code(), "the bank refused to open a transfer");
                Ok(HostedStep::Retry(RetryReason::BankUnavailable(PaymentMethod::Transfer)))
            }
            Err(error) => {
                tracing::warn!(payment = %id, %error, "the bank could not open a transfer");
                Ok(HostedStep::Retry(RetryReason::BankUnavailable(PaymentMethod::Transfer)))
            }
        }
    }

    /// The bank sent the browser back: with the one-time code of the buyer's authorization, or with why not
    /// (`USER_CANCEL`, `AUTHENTICATION_FAILED`, …), in which case the buyer may pick again.
    pub async fn hosted_transfer_return(
        &self,
        id: PaymentId,
        code: Option<&str>,
        error: Option<&str>,
    ) -> Result<HostedStep, PaymentError> {
        let page = self.hosted_page(id).await?;
        if page.payment.status != PaymentStatus::Ready {
            return self.result_step(&page.payment, &page.session).await;
        }
        let code = code.map(str::trim).filter(|c| !c.is_empty() && c.len() <= 128);
        let (Some(code), None) = (code, error) else {
            let reason = match error {
                Some("USER_CANCEL") => RetryReason::TransferCancelled,
                _ => RetryReason::TransferNotAuthorized,
            };
            return Ok(HostedStep::Retry(reason));
        };
        if page.session.bank.is_none() {
            return Ok(HostedStep::Retry(RetryReason::TransferNotAuthorized));
        }
        let session = page.session.transfer_authorized(code.to_owned());
        self.choose_bank_method(page, PaymentMethod::Transfer, session, None)
            .await
    }

    /// Writes the buyer's choice (the payment IN_PROGRESS for the merchant's confirm, the session with its bank)
    /// in one transaction; a form checkout is confirmed at once.
    async fn choose_bank_method(
        &self,
        page: HostedPage,
        method: PaymentMethod,
        session: paygate_domain::checkout::CheckoutSession,
        receipt: Option<ReceiptRequest>,
    ) -> Result<HostedStep, PaymentError> {
        let payment = page.payment;
        let now = self.clock().now();
        let confirm_by = now.saturating_add_secs(u64::from(self.payments.confirm_window_secs));
        let next = match payment.bank_method_chosen(method, now, confirm_by) {
            Ok(next) => next,
            Err(error) => {
                tracing::info!(payment_id = %payment.id, %error, "a bank method cannot be chosen now");
                return self.result_step(&payment, &page.session).await;
            }
        };
        let mut update = PaymentUpdate::new(payment.version, next.clone());
        update.bank.checkout_session = Some(session.clone());
        update.receipts.request = receipt;
        update.checkout_card = paygate_store::CheckoutCardChange::Delete;
        match self.commit(&payment, update).await {
            Ok(()) => {}
            Err(StoreError::Conflict(why)) => {
                tracing::info!(payment_id = %payment.id, why, "the buyer's bank method lost to another change");
                return self.current_step(payment.id).await;
            }
            Err(other) => return Err(other.into()),
        }
        if session.entry == CheckoutEntry::Api {
            return self.result_step(&next, &session).await;
        }
        let order_id = next.order_id.clone();
        let amount = next.total();
        match self.confirm_payment(next, &order_id, amount, None).await {
            Ok(_) | Err(PaymentError::TransferRefused { .. }) => {}
            // The page shows where the payment stands (a bank that did not answer leaves it for the workers).
            Err(error @ (PaymentError::BankUnavailable { .. } | PaymentError::Concurrent)) => {
                tracing::warn!(payment_id = %payment.id, %error, "a form checkout's bank method was not confirmed");
            }
            Err(other) => return Err(other),
        }
        self.current_step(payment.id).await
    }

    /// The merchant's confirm of a payment the buyer chose a bank method for.
    pub(crate) async fn confirm_bank_payment(
        &self,
        payment: Payment,
        order_id: &OrderId,
        amount: Money,
        claim: Option<&PaymentClaim>,
    ) -> Result<PaymentView, PaymentError> {
        match payment.method {
            PaymentMethod::VirtualAccount => self.confirm_virtual_account(payment, order_id, amount, claim).await,
            PaymentMethod::Transfer => self.confirm_transfer(payment, order_id, amount, claim).await,
            PaymentMethod::Card => Err(InternalError::Invariant("a card payment is not a bank method".into()).into()),
        }
    }

    async fn confirm_virtual_account(
        &self,
        payment: Payment,
        order_id: &OrderId,
        amount: Money,
        claim: Option<&PaymentClaim>,
    ) -> Result<PaymentView, PaymentError> {
        let now = self.clock().now();
        payment.confirmable(order_id, amount, now)?;
        let session = self
            .store()
            .checkout_session(payment.id)
            .await?
            .ok_or(PaymentError::NotFound)?;
        let (Some(bank_code), Some(holder)) = (session.bank, session.holder_name.clone()) else {
            return Err(InternalError::Invariant("a chosen virtual account has no bank".into()).into());
        };
        let bank = self
            .banks
            .get(payment.mode)
            .cloned()
            .ok_or(PaymentError::BankUnavailable {
                message: "no bank in this mode".into(),
            })?;
        let due_at = Validity::Hours(Validity::HOURS_DEFAULT)
            .due_at(now)
            .map_err(|e| InternalError::Invariant(e.to_string()))?;
        let request = IssueAccount {
            reference: payment.id.to_string(),
            merchant_id: payment.merchant_id.to_string(),
            bank_code,
            amount: payment.total(),
            holder_name: holder.clone(),
            expires_at: due_at,
        };
        let issued = super::issue_with_retry(bank.as_ref(), &request).await?;
        let next = payment.account_confirmed(order_id, amount, now, due_at)?;
        let account = VirtualAccount::issue(NewVirtualAccount {
            payment_id: payment.id,
            merchant_id: payment.merchant_id,
            mode: payment.mode,
            bank: issued.bank_code,
            account_number: issued.account_number,
            customer_name: holder,
            amount: payment.total(),
            issued_at: now,
            due_at,
        });
        let answer = Ok(PaymentView {
            payment: next.clone(),
            transactions: Vec::new(),
            focus: None,
            cash_receipts: Vec::new(),
            virtual_account: Some(Box::new(account.clone())),
        });
        let mut update = PaymentUpdate::new(payment.version, next);
        update.bank.new_account = Some(account);
        update.idempotency = claim.map(|c| {
            c.record(
                Some(IdempotencyResource {
                    payment_id: payment.id,
                    focus: None,
                }),
                &answer,
                now,
            )
        });
        match self.commit(&payment, update).await {
            Ok(()) => answer,
            Err(StoreError::IdempotencyConflict) => Err(IdempotencyRefusal::InFlight.into()),
            // A concurrent confirm won (the bank answered it the same account) or the payment expired meanwhile.
            Err(StoreError::Conflict(_)) => Err(PaymentError::Concurrent),
            Err(other) => Err(other.into()),
        }
    }

    async fn confirm_transfer(
        &self,
        payment: Payment,
        order_id: &OrderId,
        amount: Money,
        claim: Option<&PaymentClaim>,
    ) -> Result<PaymentView, PaymentError> {
        let now = self.clock().now();
        let inquire_after = now.saturating_add(DurationMs::from_millis(self.payments.first_inquiry_delay_ms));
        let requested = payment.confirm_requested(order_id, amount, now, inquire_after)?;
        let session = self
            .store()
            .checkout_session(payment.id)
            .await?
            .ok_or(PaymentError::NotFound)?;
        let Some(authorization) = session.bank_authorization.clone() else {
            return Err(InternalError::Invariant("an authorized transfer has no authorization".into()).into());
        };
        let mut update = PaymentUpdate::new(payment.version, requested.clone());
        update.idempotency = claim.map(|c| {
            c.claim(
                IdempotencyResource {
                    payment_id: payment.id,
                    focus: None,
                },
                now,
            )
        });
        match self.commit_before_approval(&payment, update).await {
            Ok(()) => {}
            Err(StoreError::IdempotencyConflict) => return Err(IdempotencyRefusal::InFlight.into()),
            Err(StoreError::Conflict(_)) => return Err(PaymentError::Concurrent),
            Err(other) => return Err(other.into()),
        }
        let bank = self
            .banks
            .get(payment.mode)
            .cloned()
            .ok_or(PaymentError::BankUnavailable {
                message: "no bank in this mode".into(),
            })?;
        let debit = Debit {
            reference: payment.id.to_string(),
            merchant_id: payment.merchant_id.to_string(),
            authorization,
            amount: payment.total(),
        };
        crate::failpoint::hit("transfer.before_bank");
        let answer = bank.debit(&debit).await;
        crate::failpoint::hit("transfer.after_bank");
        match answer {
            Ok(Ok(answer)) => self.settle_transfer(requested, answer, claim).await,
            Ok(Err(refusal)) => {
                self.settle_transfer(requested, DebitAnswer::Failed { refusal }, claim)
                    .await
            }
            Err(error) => {
                tracing::warn!(payment_id = %payment.id, %error, "transfer outcome unknown; an inquiry will resolve it");
                self.record_outcome_unknown(&requested, claim).await
            }
        }
    }

    /// Writes the bank's answer to a transfer's debit: DONE with its approval transaction, its journal (the
    /// bank's clearing account owes the merchant) and its transfer record, or ABORTED with the bank's refusal.
    async fn settle_transfer(
        &self,
        payment: Payment,
        answer: DebitAnswer,
        claim: Option<&PaymentClaim>,
    ) -> Result<PaymentView, PaymentError> {
        let now = self.clock().now();
        match answer {
            DebitAnswer::Done {
                debit_id,
                bank_code,
                account_number,
                holder_name,
                debited_at,
            } => {
                let next = payment.approved(ApprovalDetails {
                    approval_number: String::new(),
                    issuer_code: bank_code.code().to_owned(),
                    acquirer_code: None,
                    card_type: CardType::Unknown,
                    owner_type: OwnerType::Unknown,
                    acquirer_transaction_id: debit_id.clone(),
                    approved_at: debited_at,
                })?;
                let transaction = self.approval_transaction(&payment, &debit_id, debited_at, now);
                let key = transaction.key;
                let journal = Journal::transfer_debited(payment.merchant_id, bank_code.code(), payment.total())
                    .map_err(|e| InternalError::Invariant(e.to_string()))?;
                let mut update = PaymentUpdate::new(payment.version, next.clone());
                update.insert_transactions.push(transaction);
                update.journals.push(JournalEntry {
                    id: JournalId::new(now, crate::random_bytes()),
                    of: JournalOf::Transaction(key),
                    journal,
                    created_at: now,
                });
                let request = self.store().cash_receipt_request(payment.id).await?;
                if let Some((receipt, event)) = self.receipt_with_payment(&next, request, now).await? {
                    update.receipts.added.push(receipt);
                    update.receipts.events.push(event);
                }
                update.bank.new_transfer = Some(Transfer::debited(NewTransfer {
                    payment_id: payment.id,
                    merchant_id: payment.merchant_id,
                    mode: payment.mode,
                    bank: bank_code,
                    account_number,
                    holder_name,
                    bank_debit_id: debit_id,
                    amount: payment.total(),
                    debited_at,
                }));
                let answer = Ok(PaymentView {
                    virtual_account: None,
                    payment: next,
                    transactions: update.insert_transactions.clone(),
                    focus: None,
                    cash_receipts: update.receipts.added.clone(),
                });
                update.idempotency = answer_write(claim, &answer, now);
                match self.commit_before_approval(&payment, update).await {
                    Ok(()) => {
                        tracing::info!(payment_id = %payment.id, "transfer debited");
                        answer
                    }
                    // The inquiry worker wrote the same outcome first.
                    Err(StoreError::Conflict(_)) => {
                        let current = self.reload(&payment).await?;
                        self.view(current).await
                    }
                    Err(other) => Err(other.into()),
                }
            }
            DebitAnswer::Failed { refusal } => {
                let code = refusal.code();
                let failure = Failure {
                    code: match code {
                        "INSUFFICIENT_FUNDS" => "REJECT_ACCOUNT_PAYMENT".into(),
                        _ => "INVALID_AUTHORIZE_AUTH".into(),
                    },
                    message: format!("the bank refused the transfer: {code}"),
                    acquirer_code: Some(code.to_owned()),
                };
                let next = payment.failed(failure)?;
                let mut update = PaymentUpdate::new(payment.version, next.clone());
                let error = PaymentError::TransferRefused {
                    payment: Box::new(next.clone()),
                    code,
                };
                update.idempotency = answer_write(claim, &Err(error.clone_for_answer()), now);
                match self.commit_before_approval(&payment, update).await {
                    Ok(()) => Err(error),
                    Err(StoreError::Conflict(_)) => {
                        let current = self.reload(&payment).await?;
                        self.view(current).await
                    }
                    Err(other) => Err(other.into()),
                }
            }
        }
    }

    /// Resolves a transfer whose debit answer never came, by asking the bank under the payment's key: its first
    /// answer settles the payment. A bank that never saw the debit is asked again until the buyer's authorization
    /// has certainly expired (the debit cannot arrive after that); then nothing was debited, and the payment is
    /// ABORTED with `BANK_TIMEOUT`.
    pub(crate) async fn resolve_transfer(&self, payment: Payment) -> Result<Payment, PaymentError> {
        let bank = self
            .banks
            .get(payment.mode)
            .cloned()
            .ok_or(PaymentError::BankUnavailable {
                message: "no bank in this mode".into(),
            })?;
        let answer = bank
            .inquire_debit(&payment.merchant_id.to_string(), &payment.id.to_string())
            .await;
        let settled = match answer {
            Ok(Some(answer)) => self.settle_transfer(payment.clone(), answer, None).await,
            Ok(None) => {
                // A debit still in flight could land after this inquiry; it can no longer once the buyer's
                // authorization has expired at the bank (it expires `AUTHORIZATION_TTL_MS` after the bank opened the
                // transfer, which was before the confirm deadline). Until then, ask again.
                let now = self.clock().now();
                let code_dead_at =
                    payment
                        .expires_at
                        .unwrap_or(payment.requested_at)
                        .saturating_add(DurationMs::from_millis(
                            u32::try_from(paygate_connectors::bank::AUTHORIZATION_TTL_MS).unwrap_or(u32::MAX),
                        ));
                if now < code_dead_at {
                    return self
                        .postpone_inquiry(payment, "the bank knows no such debit yet", Some(code_dead_at))
                        .await;
                }
                let failure = Failure {
                    code: "BANK_TIMEOUT".into(),
                    message: "the bank did not debit the transfer; nothing was debited".into(),
                    acquirer_code: None,
                };
                return self
                    .record_failure(&payment, failure, FailureAnswer::Declined, None)
                    .await;
            }
            Err(error) => return self.postpone_inquiry(payment, &error.to_string(), None).await,
        };
        match settled {
            Ok(view) => Ok(view.payment),
            Err(PaymentError::TransferRefused { payment, .. }) => Ok(*payment),
            Err(other) => Err(other),
        }
    }

    /// Cancels a transfer: a refund through the bank to the account it was debited from, whole or part.
    pub(crate) async fn cancel_transfer(
        &self,
        payment: Payment,
        command: &crate::payments::command::CancelCommand,
        amount: Option<Money>,
        claim: Option<&PaymentClaim>,
    ) -> Result<PaymentView, PaymentError> {
        if !matches!(payment.status, PaymentStatus::Done | PaymentStatus::PartialCanceled) {
            return Err(PaymentError::NotCancelable { status: payment.status });
        }
        let transfer = self
            .store()
            .transfer(payment.id)
            .await?
            .ok_or_else(|| InternalError::Invariant(format!("payment {} has no transfer", payment.id)))?;
        let to = RefundAccount {
            bank: transfer.bank,
            account_number: transfer.account_number.clone(),
            holder_name: transfer.holder_name.clone(),
        };
        self.refund_through_bank(payment, to, None, command, amount, claim)
            .await
    }
}
