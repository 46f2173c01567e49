//! Hosted checkout: the browser side of a checkout payment, and the buyer-authentication challenge it may go
//! through.
//!
//! A session is read through its [`CheckoutSessionFields`] (it dereferences to them) and changed only by the
//! transitions below, each of which yields the next version: the store writes it conditionally on the version it
//! came from. So of concurrent answers to a challenge only one is counted per version, and the attempt limit holds.

use crate::bank::Bank;
use crate::id::PaymentId;
use crate::payment::PaymentMethod;
use crate::time::UnixMillis;

/// How a checkout payment was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckoutEntry {
    /// The merchant page POSTed a signed form; paygate approves after the buyer authenticates and sends the browser
    /// to `return_url` with a signed result.
    Form,
    /// `POST /v1/payments` (API or browser SDK); the browser goes to `success_url` and the merchant confirms.
    Api,
}

impl CheckoutEntry {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckoutEntry::Form => "FORM",
            CheckoutEntry::Api => "API",
        }
    }

    pub fn parse(text: &str) -> Option<CheckoutEntry> {
        [CheckoutEntry::Form, CheckoutEntry::Api]
            .into_iter()
            .find(|e| e.as_str() == text)
    }
}

/// What a session holds, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutSessionFields {
    pub payment_id: PaymentId,
    pub entry: CheckoutEntry,
    pub return_url: Option<String>,
    pub success_url: Option<String>,
    pub fail_url: Option<String>,
    /// SHA-256 of the one-time password of the challenge in progress; never the password itself.
    pub challenge_otp_hash: Option<Vec<u8>>,
    /// Answers counted in the challenge in progress.
    pub challenge_attempts: u32,
    pub challenge_expires_at: Option<UnixMillis>,
    /// The method the merchant asked for; `None`: the buyer picks one on the page.
    pub method: Option<PaymentMethod>,
    /// The bank the buyer picked for a virtual account or a transfer.
    pub bank: Option<Bank>,
    /// Whom the virtual account is for (the depositor's name the bank expects), as the buyer gave it.
    pub holder_name: Option<String>,
    /// The bank's one-time code for the transfer the buyer authorized at the bank, until the merchant confirms.
    pub bank_authorization: Option<String>,
    pub created_at: UnixMillis,
    /// Every change is conditional on it.
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutSession(CheckoutSessionFields);

impl std::ops::Deref for CheckoutSession {
    type Target = CheckoutSessionFields;

    fn deref(&self) -> &CheckoutSessionFields {
        &self.0
    }
}

impl CheckoutSession {
    /// A session started by the merchant's signed form: the browser returns to `return_url`.
    pub fn form(payment_id: PaymentId, return_url: Option<String>, now: UnixMillis) -> CheckoutSession {
        CheckoutSession::new(payment_id, CheckoutEntry::Form, return_url, None, None, now)
    }

    /// A session started through the API: the browser goes to `success_url` or `fail_url`.
    pub fn api(
        payment_id: PaymentId,
        success_url: Option<String>,
        fail_url: Option<String>,
        now: UnixMillis,
    ) -> CheckoutSession {
        CheckoutSession::new(payment_id, CheckoutEntry::Api, None, success_url, fail_url, now)
    }

    fn new(
        payment_id: PaymentId,
        entry: CheckoutEntry,
        return_url: Option<String>,
        success_url: Option<String>,
        fail_url: Option<String>,
        now: UnixMillis,
    ) -> CheckoutSession {
        CheckoutSession(CheckoutSessionFields {
            payment_id,
            entry,
            return_url,
            success_url,
            fail_url,
            challenge_otp_hash: None,
            challenge_attempts: 0,
            challenge_expires_at: None,
            method: None,
            bank: None,
            holder_name: None,
            bank_authorization: None,
            created_at: now,
            version: 0,
        })
    }

    /// The same new session, offering only `method` (as the merchant asked) instead of letting the buyer pick.
    pub fn asking_for(mut self, method: Option<PaymentMethod>) -> CheckoutSession {
        self.0.method = method;
        self
    }

    /// A session as stored, unchecked: for the store, which reads what it wrote, and for tests.
    pub fn restore(fields: CheckoutSessionFields) -> CheckoutSession {
        CheckoutSession(fields)
    }

    pub fn fields(&self) -> &CheckoutSessionFields {
        &self.0
    }

    fn next(&self, change: impl FnOnce(&mut CheckoutSessionFields)) -> CheckoutSession {
        let mut next = self.0.clone();
        change(&mut next);
        next.version = self.version.saturating_add(1);
        CheckoutSession(next)
    }

    /// A new challenge (OTP hash, deadline), with no answer counted yet.
    pub fn challenge_started(&self, otp_hash: Vec<u8>, expires_at: UnixMillis) -> CheckoutSession {
        self.next(|s| {
            s.challenge_otp_hash = Some(otp_hash);
            s.challenge_attempts = 0;
            s.challenge_expires_at = Some(expires_at);
        })
    }

    /// One more answer counted, before it is compared.
    pub fn challenge_attempted(&self) -> CheckoutSession {
        self.next(|s| s.challenge_attempts = s.challenge_attempts.saturating_add(1))
    }

    /// The buyer picked a bank for a virtual account (with the name it is for) or for a transfer. A new pick
    /// forgets an earlier authorization.
    pub fn bank_chosen(&self, bank: Bank, holder_name: Option<String>) -> CheckoutSession {
        self.next(|s| {
            s.bank = Some(bank);
            s.holder_name = holder_name;
            s.bank_authorization = None;
        })
    }

    /// The buyer authorized the transfer at the bank, which answered this one-time code.
    pub fn transfer_authorized(&self, code: String) -> CheckoutSession {
        self.next(|s| s.bank_authorization = Some(code))
    }

    /// Answers left of `max`.
    pub fn challenge_attempts_left(&self, max: u32) -> u32 {
        max.saturating_sub(self.challenge_attempts)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_counts_its_answers_one_version_each() {
        let id = PaymentId::new(UnixMillis::new(1), [1; 10]);
        let s = CheckoutSession::form(id, Some("https://shop.example/back".into()), UnixMillis::new(5));
        assert_eq!((s.entry, s.version, s.challenge_attempts), (CheckoutEntry::Form, 0, 0));
        let started = s.challenge_started(vec![7; 32], UnixMillis::new(100));
        let once = started.challenge_attempted();
        let twice = once.challenge_attempted();
        assert_eq!((started.version, once.version, twice.version), (1, 2, 3));
        assert_eq!((twice.challenge_attempts, twice.challenge_attempts_left(5)), (2, 3));
        // A new challenge starts the count again.
        let again = twice.challenge_started(vec![8; 32], UnixMillis::new(200));
        assert_eq!((again.challenge_attempts, again.version), (0, 4));
        assert_eq!(again.challenge_expires_at, Some(UnixMillis::new(200)));
        let api = CheckoutSession::api(id, Some("s".into()), Some("f".into()), UnixMillis::new(5));
        assert_eq!((api.entry, api.return_url.clone()), (CheckoutEntry::Api, None));
        let api = api.asking_for(Some(PaymentMethod::Transfer));
        assert_eq!((api.method, api.version), (Some(PaymentMethod::Transfer), 0));
        let kookmin = Bank::parse("06").unwrap();
        let shinhan = Bank::parse("88").unwrap();
        let chosen = api.bank_chosen(kookmin, None).transfer_authorized("code-1".into());
        assert_eq!(
            (chosen.bank, chosen.bank_authorization.as_deref()),
            (Some(kookmin), Some("code-1"))
        );
        // Picking again forgets the authorization of the earlier pick.
        let again = chosen.bank_chosen(shinhan, Some("홍길동".into()));
        assert_eq!((again.bank_authorization.clone(), again.version), (None, 3));
    }
}
