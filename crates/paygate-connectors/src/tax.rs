//! The tax authority (국세청) that registers cash receipts, and its sandbox.
//!
//! paygate reports each cash receipt request (an issue, or a cancel naming its issue's number) under the receipt's
//! key as reference; a repeat with the same reference answers the first answer, so a report whose answer was
//! lost is simply sent again. `Err` is a transport failure (the report may or may not have been registered);
//! `Ok(Rejected)` is the authority's refusal, final.
//!
//! The sandbox's rules (documented in docs/cash-receipts.md): a buyer identifier ending in `0000` is unknown
//! (`NTS_ERROR [TS1]`); one ending in `9999` is answered with a transport failure on its first two reports (so the
//! retries can be seen), then registered; a cancel must name a registered issue and stay within what is left of it
//! (`[TSC]`, `[TSG]`); anything else is registered with a 9-digit issue number.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use paygate_domain::money::Money;
use paygate_domain::time::UnixMillis;

use crate::ConnectorError;

/// One request to register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptReport {
    /// The receipt's key.
    pub reference: String,
    /// The issuing merchant's business registration number.
    pub business_number: String,
    /// `INCOME_DEDUCTION` or `EXPENSE_PROOF`.
    pub receipt_type: &'static str,
    /// `CONFIRM` or `CANCEL`.
    pub transaction: &'static str,
    pub identity_number: String,
    pub amount: Money,
    pub tax_free: Money,
    /// A cancel's issue, by the number the authority gave it.
    pub original_issue_number: Option<String>,
    pub requested_at: UnixMillis,
}

/// The authority's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportAnswer {
    Issued { issue_number: String },
    Rejected { code: String, message: String },
}

#[async_trait::async_trait]
pub trait TaxAuthority: Send + Sync + 'static {
    async fn report(&self, report: &ReceiptReport) -> Result<ReportAnswer, ConnectorError>;
}

#[derive(Default)]
struct State {
    serial: u64,
    answers: HashMap<String, (ReceiptReport, ReportAnswer)>,
    /// Registered issues: what is left of each to cancel.
    remaining: HashMap<String, Money>,
    /// Reports answered with a transport failure so far, per reference.
    failed_calls: HashMap<String, u32>,
}

/// The sandbox tax authority, in process. Cheap to clone; clones share state.
#[derive(Clone, Default)]
pub struct SandboxTaxAuthority {
    state: Arc<Mutex<State>>,
}

/// How many reports of an identifier ending in `9999` fail before it is registered.
pub const SANDBOX_FAILED_CALLS: u32 = 2;

fn rejected(code: &str, message: &str) -> ReportAnswer {
    ReportAnswer::Rejected {
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

impl SandboxTaxAuthority {
    pub fn new() -> SandboxTaxAuthority {
        SandboxTaxAuthority::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers (or refuses) a report; the same reference again answers the first answer.
    pub fn register(&self, report: &ReceiptReport) -> Result<ReportAnswer, ConnectorError> {
        let mut state = self.lock();
        if let Some((first, answer)) = state.answers.get(&report.reference) {
            return Ok(if first == report {
                answer.clone()
            } else {
                rejected("NTS_ERROR", "[TS5] 이미 다른 내용으로 접수된 요청번호입니다.")
            });
        }
        if report.identity_number.ends_with("9999") {
            let calls = state.failed_calls.entry(report.reference.clone()).or_insert(0);
            if *calls < SANDBOX_FAILED_CALLS {
                *calls += 1;
                return Err(ConnectorError::SystemError(
                    "the sandbox tax authority is unavailable".into(),
                ));
            }
        }
        let answer = if report.identity_number.ends_with("0000") {
            rejected("NTS_ERROR", "[TS1] 등록되지 않은 현금영수증 식별번호입니다.")
        } else if report.transaction == "CANCEL" {
            let left = report
                .original_issue_number
                .as_ref()
                .and_then(|number| state.remaining.get(number).copied());
            match left {
                None => rejected("NTS_ERROR", "[TSC] 취소할 원거래가 등록되어 있지 않습니다."),
                Some(left) if report.amount.checked_sub(left).is_ok_and(|over| over.is_positive()) => {
                    rejected("NTS_ERROR", "[TSG] 취소 금액이 원거래 금액을 넘습니다.")
                }
                Some(left) => {
                    let number = report.original_issue_number.clone().unwrap_or_default();
                    let rest = left.checked_sub(report.amount).unwrap_or(left);
                    state.remaining.insert(number, rest);
                    state.serial += 1;
                    ReportAnswer::Issued {
                        issue_number: format!("{:09}", state.serial),
                    }
                }
            }
        } else {
            state.serial += 1;
            let issue_number = format!("{:09}", state.serial);
            state.remaining.insert(issue_number.clone(), report.amount);
            ReportAnswer::Issued { issue_number }
        };
        state
            .answers
            .insert(report.reference.clone(), (report.clone(), answer.clone()));
        Ok(answer)
    }

    /// Every registered answer, for tests that reconcile paygate's receipts with the authority's records.
    pub fn answers(&self) -> Vec<(ReceiptReport, ReportAnswer)> {
        self.lock().answers.values().cloned().collect()
    }
}

#[async_trait::async_trait]
impl TaxAuthority for SandboxTaxAuthority {
    async fn report(&self, report: &ReceiptReport) -> Result<ReportAnswer, ConnectorError> {
        self.register(report)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn report(
        reference: &str,
        identity: &str,
        transaction: &'static str,
        amount: i64,
        original: Option<&str>,
    ) -> ReceiptReport {
        ReceiptReport {
            reference: reference.into(),
            business_number: "1208147521".into(),
            receipt_type: "INCOME_DEDUCTION",
            transaction,
            identity_number: identity.into(),
            amount: Money::krw(amount),
            tax_free: Money::krw(0),
            original_issue_number: original.map(str::to_owned),
            requested_at: UnixMillis::new(1),
        }
    }

    #[test]
    fn reports_are_registered_once_and_cancels_stay_within_their_issue() {
        let nts = SandboxTaxAuthority::new();
        let first = nts
            .register(&report("rcp_1", "01012345678", "CONFIRM", 10_000, None))
            .unwrap();
        let ReportAnswer::Issued { issue_number } = first.clone() else {
            panic!("{first:?}")
        };
        assert_eq!(
            nts.register(&report("rcp_1", "01012345678", "CONFIRM", 10_000, None))
                .unwrap(),
            first
        );
        let cancel = nts
            .register(&report("rcp_2", "01012345678", "CANCEL", 6_000, Some(&issue_number)))
            .unwrap();
        assert!(matches!(cancel, ReportAnswer::Issued { .. }));
        let over = nts
            .register(&report("rcp_3", "01012345678", "CANCEL", 6_000, Some(&issue_number)))
            .unwrap();
        assert!(matches!(over, ReportAnswer::Rejected { ref message, .. } if message.starts_with("[TSG]")));
        let orphan = nts
            .register(&report("rcp_4", "01012345678", "CANCEL", 1, Some("999999999")))
            .unwrap();
        assert!(matches!(orphan, ReportAnswer::Rejected { ref message, .. } if message.starts_with("[TSC]")));
        let unknown = nts
            .register(&report("rcp_5", "01012340000", "CONFIRM", 1, None))
            .unwrap();
        assert!(matches!(unknown, ReportAnswer::Rejected { ref code, .. } if code == "NTS_ERROR"));
    }

    #[test]
    fn an_identifier_ending_in_9999_fails_twice_then_registers() {
        let nts = SandboxTaxAuthority::new();
        let flaky = report("rcp_9", "01012349999", "CONFIRM", 1_000, None);
        assert!(nts.register(&flaky).is_err());
        assert!(nts.register(&flaky).is_err());
        assert!(matches!(nts.register(&flaky).unwrap(), ReportAnswer::Issued { .. }));
        assert_eq!(nts.answers().len(), 1);
    }
}
