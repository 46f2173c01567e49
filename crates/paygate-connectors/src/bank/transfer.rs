//! The sandbox bank's account transfers (계좌이체), the way a bank's open-banking withdrawal works: paygate opens
//! a transfer for one payment (its reference), the buyer authorizes it on the bank's own page with an account and
//! a PIN, the bank sends the browser back with a one-time code, and paygate debits with that code. Each step is
//! idempotent per reference: a repeated debit answers the first answer, so a lost answer is asked again by
//! sending the same request (or by an inquiry).
//!
//! The sandbox's accounts: any 10 to 14 digits; a PIN of four digits, `0000` being wrong; an account ending in
//! `9999` has no money (the debit is refused as `INSUFFICIENT_FUNDS`).

use std::collections::HashMap;

use paygate_domain::bank::Bank;
use paygate_domain::money::Money;
use paygate_domain::time::UnixMillis;
use sha2::{Digest, Sha256};

use super::{entry, BankJournalKind, BankRefusal, SandboxBank};

/// How many wrong PINs the bank's page takes before it sends the buyer back refused.
pub const PIN_TRIES_MAX: u32 = 3;
/// How long an authorization page and its code stay valid.
pub const AUTHORIZATION_TTL_MS: i64 = 15 * 60 * 1_000;

/// Open a transfer for one payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeginTransfer {
    pub reference: String,
    pub merchant_id: String,
    pub bank_code: Bank,
    pub amount: Money,
    /// Where the bank sends the browser afterwards, with `code` or `error`.
    pub return_url: String,
}

/// Where the buyer authorizes the transfer: a path on the bank's host (the in-process bank is served under the
/// gateway's own host) or an absolute URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferSession {
    pub session_id: String,
    pub authorize_url: String,
}

/// Debit the account the buyer authorized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Debit {
    pub reference: String,
    pub merchant_id: String,
    pub authorization: String,
    pub amount: Money,
}

/// The bank's answer to a debit, kept per reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DebitAnswer {
    Done {
        debit_id: String,
        bank_code: Bank,
        account_number: String,
        holder_name: String,
        debited_at: UnixMillis,
    },
    Failed {
        refusal: BankRefusal,
    },
}

/// What the bank's authorization page shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationView {
    pub bank_code: Bank,
    pub amount: Money,
    pub merchant_id: String,
    pub pin_tries_left: u32,
    /// Whether the page still takes an answer (not authorized, refused, cancelled or expired).
    pub open: bool,
}

/// Why the bank's page asks again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorizeRetry {
    AccountNumber,
    HolderName,
    Pin,
}

/// What the bank's page does with the buyer's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthorizeStep {
    /// Ask again, saying why.
    Retry(AuthorizeRetry),
    /// Send the browser back to paygate.
    Return(String),
}

#[derive(Clone, Debug)]
enum AuthState {
    Pending {
        pin_tries: u32,
    },
    Authorized {
        code: String,
        account: String,
        holder: String,
    },
    Closed,
}

#[derive(Clone, Debug)]
struct Authorization {
    request: BeginTransfer,
    created_at: UnixMillis,
    state: AuthState,
}

#[derive(Default)]
pub(super) struct Transfers {
    sessions: HashMap<String, Authorization>,
    /// (merchant, reference) → the reference's latest session.
    by_reference: HashMap<(String, String), String>,
    debits: HashMap<(String, String), (Debit, DebitAnswer)>,
    serial: u64,
}

fn with_query(url: &str, key: &str, value: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    let encoded: String = value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{url}{separator}{key}={encoded}")
}

impl SandboxBank {
    /// Opens a transfer. The same reference again opens a new session (the buyer went back and picked again) and
    /// closes the earlier one, unless the reference was already debited.
    pub fn begin_transfer(&self, request: &BeginTransfer) -> Result<TransferSession, BankRefusal> {
        if !self.banks.contains(&request.bank_code) {
            return Err(BankRefusal::NotSupportedBank);
        }
        if !request.amount.is_positive() {
            return Err(BankRefusal::InvalidAmount);
        }
        let now = (self.clock)();
        let mut state = self.lock();
        let key = (request.merchant_id.clone(), request.reference.clone());
        if state.transfers.debits.contains_key(&key) {
            return Err(BankRefusal::DuplicateReference);
        }
        state.transfers.serial += 1;
        let serial = state.transfers.serial;
        let digest = Sha256::digest(format!(
            "{}:{}:{serial}:{}",
            request.merchant_id,
            request.reference,
            now.as_millis()
        ));
        let session_id = format!("trs_{}", hex::encode(&digest[..16]));
        let transfers = &mut state.transfers;
        if let Some(earlier) = transfers.by_reference.insert(key, session_id.clone()) {
            if let Some(auth) = transfers.sessions.get_mut(&earlier) {
                auth.state = AuthState::Closed;
            }
        }
        transfers.sessions.insert(
            session_id.clone(),
            Authorization {
                request: request.clone(),
                created_at: now,
                state: AuthState::Pending { pin_tries: 0 },
            },
        );
        Ok(TransferSession {
            authorize_url: format!("/bank/transfers/{session_id}/authorize"),
            session_id,
        })
    }

    fn expired(&self, auth: &Authorization) -> bool {
        (self.clock)().as_millis() - auth.created_at.as_millis() > AUTHORIZATION_TTL_MS
    }

    /// The authorization page of a session, if it exists.
    pub fn authorization(&self, session_id: &str) -> Option<AuthorizationView> {
        let state = self.lock();
        let auth = state.transfers.sessions.get(session_id)?;
        let (open, tries) = match auth.state {
            AuthState::Pending { pin_tries } => (!self.expired(auth), pin_tries),
            _ => (false, PIN_TRIES_MAX),
        };
        Some(AuthorizationView {
            bank_code: auth.request.bank_code,
            amount: auth.request.amount,
            merchant_id: auth.request.merchant_id.clone(),
            pin_tries_left: PIN_TRIES_MAX.saturating_sub(tries),
            open,
        })
    }

    /// The buyer's answer on the bank's page. `None`: no such session.
    pub fn authorize_transfer(
        &self,
        session_id: &str,
        account_number: &str,
        holder_name: &str,
        pin: &str,
    ) -> Option<AuthorizeStep> {
        let expired = {
            let state = self.lock();
            let auth = state.transfers.sessions.get(session_id)?;
            self.expired(auth)
        };
        let mut state = self.lock();
        let auth = state.transfers.sessions.get_mut(session_id)?;
        let return_url = auth.request.return_url.clone();
        let pin_tries = match auth.state {
            AuthState::Pending { pin_tries } => pin_tries,
            // Answered before (a double submit): back to paygate, which knows where the payment stands.
            AuthState::Authorized { ref code, .. } => {
                return Some(AuthorizeStep::Return(with_query(&return_url, "code", code)))
            }
            AuthState::Closed => return Some(AuthorizeStep::Return(with_query(&return_url, "error", "CLOSED"))),
        };
        if expired {
            auth.state = AuthState::Closed;
            return Some(AuthorizeStep::Return(with_query(&return_url, "error", "EXPIRED")));
        }
        let account: String = account_number.chars().filter(|c| *c != '-' && *c != ' ').collect();
        if !(10..=14).contains(&account.len()) || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Some(AuthorizeStep::Retry(AuthorizeRetry::AccountNumber));
        }
        let holder = holder_name.trim();
        if holder.is_empty() || holder.chars().count() > 30 {
            return Some(AuthorizeStep::Retry(AuthorizeRetry::HolderName));
        }
        if pin.len() != 4 || !pin.bytes().all(|b| b.is_ascii_digit()) || pin == "0000" {
            let tries = pin_tries + 1;
            if tries >= PIN_TRIES_MAX {
                auth.state = AuthState::Closed;
                return Some(AuthorizeStep::Return(with_query(
                    &return_url,
                    "error",
                    "AUTHENTICATION_FAILED",
                )));
            }
            auth.state = AuthState::Pending { pin_tries: tries };
            return Some(AuthorizeStep::Retry(AuthorizeRetry::Pin));
        }
        let digest = Sha256::digest(format!("code:{session_id}:{account}:{}", (self.clock)().as_millis()));
        let code = format!("tac_{}", hex::encode(&digest[..16]));
        auth.state = AuthState::Authorized {
            code: code.clone(),
            account,
            holder: holder.to_owned(),
        };
        Some(AuthorizeStep::Return(with_query(&return_url, "code", &code)))
    }

    /// The buyer left the bank's page without authorizing. `None`: no such session.
    pub fn cancel_transfer(&self, session_id: &str) -> Option<String> {
        let mut state = self.lock();
        let auth = state.transfers.sessions.get_mut(session_id)?;
        if let AuthState::Pending { .. } = auth.state {
            auth.state = AuthState::Closed;
        }
        Some(with_query(&auth.request.return_url, "error", "USER_CANCEL"))
    }

    /// Debits the authorized account. The same reference again answers the first answer; with another request it
    /// is refused and the first answer stands.
    pub fn debit(&self, request: &Debit) -> Result<DebitAnswer, BankRefusal> {
        let now = (self.clock)();
        let mut state = self.lock();
        let key = (request.merchant_id.clone(), request.reference.clone());
        if let Some((first, answer)) = state.transfers.debits.get(&key) {
            return if first == request {
                Ok(answer.clone())
            } else {
                Err(BankRefusal::DuplicateReference)
            };
        }
        let session_id = state
            .transfers
            .by_reference
            .get(&key)
            .cloned()
            .ok_or(BankRefusal::InvalidAuthorization)?;
        let auth = state
            .transfers
            .sessions
            .get(&session_id)
            .cloned()
            .ok_or(BankRefusal::InvalidAuthorization)?;
        let expired = self.expired(&auth);
        let AuthState::Authorized { code, account, holder } = auth.state else {
            return Err(BankRefusal::InvalidAuthorization);
        };
        if code != request.authorization || expired {
            return Err(BankRefusal::InvalidAuthorization);
        }
        if request.amount != auth.request.amount {
            return Err(BankRefusal::InvalidAmount);
        }
        let answer = if account.ends_with("9999") {
            DebitAnswer::Failed {
                refusal: BankRefusal::InsufficientFunds,
            }
        } else {
            state.record(
                self.bounds,
                entry(
                    now,
                    BankJournalKind::Debit,
                    &request.merchant_id,
                    &request.reference,
                    &account,
                    Some(request.amount),
                ),
            )?;
            DebitAnswer::Done {
                debit_id: format!("dbt_{:012}", state.journal.len()),
                bank_code: auth.request.bank_code,
                account_number: account,
                holder_name: holder,
                debited_at: now,
            }
        };
        if let Some(auth) = state.transfers.sessions.get_mut(&session_id) {
            auth.state = AuthState::Closed;
        }
        state.transfers.debits.insert(key, (request.clone(), answer.clone()));
        Ok(answer)
    }

    /// The first answer to a debit reference, if the bank has one.
    pub fn inquire_debit(&self, merchant_id: &str, reference: &str) -> Option<DebitAnswer> {
        let state = self.lock();
        state
            .transfers
            .debits
            .get(&(merchant_id.to_owned(), reference.to_owned()))
            .map(|(_, answer)| answer.clone())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use paygate_domain::money::Currency;

    fn begin(bank: &SandboxBank, reference: &str) -> TransferSession {
        bank.begin_transfer(&BeginTransfer {
            reference: reference.into(),
            merchant_id: "mer_1".into(),
            bank_code: Bank::parse("06").unwrap(),
            amount: Money::new(15_000, Currency::Krw),
            return_url: "/checkout/pay_1/transfer".into(),
        })
        .unwrap()
    }

    fn code_of(step: Option<AuthorizeStep>) -> String {
        match step {
            Some(AuthorizeStep::Return(url)) => url.split("code=").nth(1).unwrap().to_owned(),
            other => panic!("not authorized: {other:?}"),
        }
    }

    #[test]
    fn an_authorized_transfer_is_debited_once() {
        let bank = SandboxBank::new(Bank::virtual_account_issuers().collect());
        let session = begin(&bank, "pay_1");
        assert!(session.authorize_url.ends_with("/authorize"));
        assert_eq!(
            bank.authorize_transfer(&session.session_id, "123", "홍길동", "1234"),
            Some(AuthorizeStep::Retry(AuthorizeRetry::AccountNumber))
        );
        assert_eq!(
            bank.authorize_transfer(&session.session_id, "110-123-456789", "홍길동", "0000"),
            Some(AuthorizeStep::Retry(AuthorizeRetry::Pin))
        );
        assert_eq!(bank.authorization(&session.session_id).unwrap().pin_tries_left, 2);
        let code = code_of(bank.authorize_transfer(&session.session_id, "110-123-456789", "홍길동", "1234"));
        let debit = Debit {
            reference: "pay_1".into(),
            merchant_id: "mer_1".into(),
            authorization: "tac_wrong".into(),
            amount: Money::new(15_000, Currency::Krw),
        };
        assert_eq!(bank.debit(&debit), Err(BankRefusal::InvalidAuthorization));
        let debit = Debit {
            authorization: code,
            ..debit
        };
        let first = bank.debit(&debit).unwrap();
        let DebitAnswer::Done { ref account_number, .. } = first else {
            panic!("not debited: {first:?}");
        };
        assert_eq!(account_number, "110123456789");
        assert_eq!(bank.debit(&debit).unwrap(), first);
        assert_eq!(bank.inquire_debit("mer_1", "pay_1"), Some(first));
        let debits = bank.journal_page(0, 10);
        assert_eq!(debits.iter().filter(|e| e.kind == BankJournalKind::Debit).count(), 1);
        // A debited reference opens no new transfer.
        assert!(bank
            .begin_transfer(&BeginTransfer {
                reference: "pay_1".into(),
                merchant_id: "mer_1".into(),
                bank_code: Bank::parse("06").unwrap(),
                amount: Money::new(15_000, Currency::Krw),
                return_url: "/r".into(),
            })
            .is_err());
    }

    #[test]
    fn wrong_pins_and_empty_accounts_refuse() {
        let bank = SandboxBank::new(Bank::virtual_account_issuers().collect());
        let session = begin(&bank, "pay_2");
        for _ in 0..2 {
            bank.authorize_transfer(&session.session_id, "1101234567", "홍길동", "0000");
        }
        assert_eq!(
            bank.authorize_transfer(&session.session_id, "1101234567", "홍길동", "0000"),
            Some(AuthorizeStep::Return(
                "/checkout/pay_1/transfer?error=AUTHENTICATION_FAILED".into()
            ))
        );
        assert!(!bank.authorization(&session.session_id).unwrap().open);
        let session = begin(&bank, "pay_3");
        let code = code_of(bank.authorize_transfer(&session.session_id, "1101239999", "홍길동", "1234"));
        let answer = bank
            .debit(&Debit {
                reference: "pay_3".into(),
                merchant_id: "mer_1".into(),
                authorization: code,
                amount: Money::new(15_000, Currency::Krw),
            })
            .unwrap();
        assert_eq!(
            answer,
            DebitAnswer::Failed {
                refusal: BankRefusal::InsufficientFunds
            }
        );
        let session = begin(&bank, "pay_4");
        assert_eq!(
            bank.cancel_transfer(&session.session_id),
            Some("/checkout/pay_1/transfer?error=USER_CANCEL".into())
        );
    }
}
