//! The product.md §5 test-card table, shared by the in-process and the HTTP suites: both must behave the same.

#![allow(clippy::unwrap_used, dead_code)]

use paygate_connectors::sandbox::{test_cards, JournalEntry, JournalKind};
use paygate_connectors::{
    Acquirer, ApproveOutcome, ApproveRequest, CardData, ConnectorError, DeclineCode, InquiryOutcome, Outcome,
};
use paygate_domain::money::Money;

pub const MERCHANT: &str = "M0001";

/// What one approve call must return.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    Approved {
        issuer: &'static str,
    },
    Declined {
        code: DeclineCode,
        acquirer_code: &'static str,
    },
    Timeout,
    SystemError,
}

/// What an inquiry afterwards must say.
#[derive(Clone, Copy, Debug)]
pub enum Inquiry {
    NotFound,
    Approved,
    Declined(DeclineCode),
}

#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub name: &'static str,
    pub card: &'static str,
    pub authenticated: bool,
    pub expired: bool,
    /// The first call.
    pub first: Expect,
    /// The journal entry the first call leaves (at most one per reference).
    pub journal: Option<JournalKind>,
    pub inquiry: Inquiry,
    /// The same request again (same reference).
    pub retry: Expect,
}

const APPROVED_11: Expect = Expect::Approved { issuer: "11" };

pub const CASES: &[Case] = &[
    Case {
        name: "approved",
        card: test_cards::APPROVED,
        authenticated: false,
        expired: false,
        first: APPROVED_11,
        journal: Some(JournalKind::Approved),
        inquiry: Inquiry::Approved,
        retry: APPROVED_11,
    },
    Case {
        name: "insufficient funds",
        card: test_cards::INSUFFICIENT_FUNDS,
        authenticated: false,
        expired: false,
        first: Expect::Declined {
            code: DeclineCode::RejectCardPayment,
            acquirer_code: "51",
        },
        journal: Some(JournalKind::Declined),
        inquiry: Inquiry::Declined(DeclineCode::RejectCardPayment),
        retry: Expect::Declined {
            code: DeclineCode::RejectCardPayment,
            acquirer_code: "51",
        },
    },
    Case {
        name: "lost or stolen",
        card: test_cards::LOST_OR_STOLEN,
        authenticated: false,
        expired: false,
        first: Expect::Declined {
            code: DeclineCode::LostOrStolenCard,
            acquirer_code: "43",
        },
        journal: Some(JournalKind::Declined),
        inquiry: Inquiry::Declined(DeclineCode::LostOrStolenCard),
        retry: Expect::Declined {
            code: DeclineCode::LostOrStolenCard,
            acquirer_code: "43",
        },
    },
    Case {
        name: "wrong password",
        card: test_cards::WRONG_PASSWORD,
        authenticated: false,
        expired: false,
        first: Expect::Declined {
            code: DeclineCode::InvalidPassword,
            acquirer_code: "55",
        },
        journal: Some(JournalKind::Declined),
        inquiry: Inquiry::Declined(DeclineCode::InvalidPassword),
        retry: Expect::Declined {
            code: DeclineCode::InvalidPassword,
            acquirer_code: "55",
        },
    },
    Case {
        name: "approved, answer lost",
        card: test_cards::APPROVED_ANSWER_LOST,
        authenticated: false,
        expired: false,
        first: Expect::Timeout,
        journal: Some(JournalKind::Approved),
        inquiry: Inquiry::Approved,
        // The retry is how paygate resolves it: the stored approval comes back this time.
        retry: APPROVED_11,
    },
    Case {
        name: "timeout, not approved",
        card: test_cards::TIMEOUT_NOT_APPROVED,
        authenticated: false,
        expired: false,
        first: Expect::Timeout,
        journal: None,
        inquiry: Inquiry::NotFound,
        retry: Expect::Timeout,
    },
    Case {
        name: "system error",
        card: test_cards::SYSTEM_ERROR,
        authenticated: false,
        expired: false,
        first: Expect::SystemError,
        journal: None,
        inquiry: Inquiry::NotFound,
        retry: Expect::SystemError,
    },
    Case {
        name: "authentication required, key-in",
        card: test_cards::AUTHENTICATION_REQUIRED,
        authenticated: false,
        expired: false,
        first: Expect::Declined {
            code: DeclineCode::AuthenticationRequired,
            acquirer_code: "1A",
        },
        journal: Some(JournalKind::Declined),
        inquiry: Inquiry::Declined(DeclineCode::AuthenticationRequired),
        retry: Expect::Declined {
            code: DeclineCode::AuthenticationRequired,
            acquirer_code: "1A",
        },
    },
    Case {
        name: "authentication required, authenticated",
        card: test_cards::AUTHENTICATION_REQUIRED,
        authenticated: true,
        expired: false,
        first: APPROVED_11,
        journal: Some(JournalKind::Approved),
        inquiry: Inquiry::Approved,
        retry: APPROVED_11,
    },
    Case {
        name: "5400 approved",
        card: test_cards::APPROVED_5400,
        authenticated: false,
        expired: false,
        first: Expect::Approved { issuer: "21" },
        journal: Some(JournalKind::Approved),
        inquiry: Inquiry::Approved,
        retry: Expect::Approved { issuer: "21" },
    },
    Case {
        name: "9400 approved",
        card: test_cards::APPROVED_9400,
        authenticated: false,
        expired: false,
        first: Expect::Approved { issuer: "31" },
        journal: Some(JournalKind::Approved),
        inquiry: Inquiry::Approved,
        retry: Expect::Approved { issuer: "31" },
    },
    Case {
        name: "other Luhn-valid card",
        card: "4111111111111111",
        authenticated: false,
        expired: false,
        first: Expect::Approved { issuer: "41" },
        journal: Some(JournalKind::Approved),
        inquiry: Inquiry::Approved,
        retry: Expect::Approved { issuer: "41" },
    },
    Case {
        name: "expired card",
        card: test_cards::APPROVED,
        authenticated: false,
        expired: true,
        first: Expect::Declined {
            code: DeclineCode::InvalidCardExpiration,
            acquirer_code: "54",
        },
        journal: Some(JournalKind::Declined),
        inquiry: Inquiry::Declined(DeclineCode::InvalidCardExpiration),
        retry: Expect::Declined {
            code: DeclineCode::InvalidCardExpiration,
            acquirer_code: "54",
        },
    },
    Case {
        name: "Luhn-invalid number",
        card: "4330000000000004",
        authenticated: false,
        expired: false,
        first: Expect::Declined {
            code: DeclineCode::InvalidCardNumber,
            acquirer_code: "14",
        },
        journal: Some(JournalKind::Declined),
        inquiry: Inquiry::Declined(DeclineCode::InvalidCardNumber),
        retry: Expect::Declined {
            code: DeclineCode::InvalidCardNumber,
            acquirer_code: "14",
        },
    },
];

pub fn card(number: &str, expired: bool) -> CardData {
    CardData {
        number: number.to_owned(),
        // 2020-01 is past and 2099-12 future for any clock these tests run on.
        expiry_year: if expired { 2020 } else { 2099 },
        expiry_month: if expired { 1 } else { 12 },
        password_two_digits: Some("12".to_owned()),
        identity_number: Some("900101".to_owned()),
    }
}

pub fn approve_request(reference: &str, number: &str, amount: i64) -> ApproveRequest {
    ApproveRequest {
        reference: reference.to_owned(),
        acquirer_merchant_id: MERCHANT.to_owned(),
        card: card(number, false),
        amount: Money::krw(amount),
        installment_months: 0,
        authenticated: false,
        merchant_initiated: false,
    }
}

pub fn case_reference(index: usize) -> String {
    format!("pay_case_{index:02}")
}

pub fn case_request(index: usize, case: &Case) -> ApproveRequest {
    ApproveRequest {
        reference: case_reference(index),
        acquirer_merchant_id: MERCHANT.to_owned(),
        card: card(case.card, case.expired),
        amount: Money::krw(15_000),
        installment_months: 0,
        authenticated: case.authenticated,
        merchant_initiated: false,
    }
}

pub fn check(name: &str, step: &str, expect: Expect, got: &Result<ApproveOutcome, ConnectorError>) {
    match (expect, got) {
        (Expect::Approved { issuer }, Ok(ApproveOutcome::Approved(approval))) => {
            assert_eq!(approval.issuer_code, issuer, "{name} {step}: issuer");
            assert!(
                ["11", "21", "31"].contains(&approval.acquirer_code.as_str()),
                "{name} {step}: acquirer code {}",
                approval.acquirer_code
            );
            assert_eq!(
                approval.card_type,
                paygate_domain::card::CardType::Credit,
                "{name} {step}"
            );
            assert_eq!(approval.approval_number.len(), 8, "{name} {step}: approval number");
            assert!(approval.approval_number.bytes().all(|b| b.is_ascii_digit()));
        }
        (Expect::Declined { code, acquirer_code }, Ok(ApproveOutcome::Declined(decline))) => {
            assert_eq!(decline.code, code, "{name} {step}: decline code");
            assert_eq!(decline.acquirer_code, acquirer_code, "{name} {step}: acquirer code");
        }
        (Expect::Timeout, Err(error @ ConnectorError::Timeout)) => {
            assert_eq!(error.outcome(), Outcome::Unknown);
        }
        (Expect::SystemError, Err(error @ ConnectorError::SystemError(_))) => {
            assert_eq!(error.outcome(), Outcome::NotApplied);
        }
        (expect, got) => panic!("{name} {step}: expected {expect:?}, got {got:?}"),
    }
}

/// Runs every case through `acquirer`: first call, inquiry, retry, and checks the retry returned the same
/// approval as the journal holds (no second approval).
pub async fn run_table(acquirer: &dyn Acquirer) {
    for (index, case) in CASES.iter().enumerate() {
        let request = case_request(index, case);
        let first = acquirer.approve(&request).await;
        check(case.name, "first call", case.first, &first);

        let inquiry = acquirer.inquire(&request.reference, MERCHANT).await.unwrap();
        match (case.inquiry, &inquiry) {
            (Inquiry::NotFound, InquiryOutcome::NotFound) | (Inquiry::Approved, InquiryOutcome::Approved(_)) => {}
            (Inquiry::Declined(code), InquiryOutcome::Declined(decline)) if decline.code == code => {}
            (expect, got) => panic!("{}: inquiry expected {expect:?}, got {got:?}", case.name),
        }

        let retry = acquirer.approve(&request).await;
        check(case.name, "retry", case.retry, &retry);
        // Whatever the retry says must be what the inquiry says: one decision per reference.
        match (&retry, &inquiry) {
            (Ok(ApproveOutcome::Approved(a)), InquiryOutcome::Approved(b)) => assert_eq!(a, b, "{}", case.name),
            (Ok(ApproveOutcome::Declined(a)), InquiryOutcome::Declined(b)) => assert_eq!(a, b, "{}", case.name),
            (Ok(_), _) => panic!("{}: retry {retry:?} disagrees with inquiry {inquiry:?}", case.name),
            (Err(_), _) => {}
        }
    }
}

/// The journal after [`run_table`]: exactly the expected entry per case reference, nothing else.
pub fn check_table_journal(journal: &[JournalEntry]) {
    for (index, case) in CASES.iter().enumerate() {
        let reference = case_reference(index);
        let kinds: Vec<JournalKind> = journal
            .iter()
            .filter(|entry| entry.reference == reference)
            .map(|entry| entry.kind)
            .collect();
        let expected: Vec<JournalKind> = case.journal.into_iter().collect();
        assert_eq!(kinds, expected, "{}: journal entries", case.name);
        if let Some(entry) = journal.iter().find(|entry| entry.reference == reference) {
            assert_eq!(entry.amount, Some(Money::krw(15_000)), "{}", case.name);
            assert_eq!(entry.acquirer_merchant_id, MERCHANT);
        }
    }
    let expected_total = CASES.iter().filter(|case| case.journal.is_some()).count();
    assert_eq!(journal.len(), expected_total, "no journal entries beyond the table's");
    for (index, entry) in journal.iter().enumerate() {
        assert_eq!(entry.seq, u64::try_from(index).unwrap() + 1, "journal seq is dense");
    }
}
