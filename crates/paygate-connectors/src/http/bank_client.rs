//! [`HttpBank`]: the [`BankConnector`] that speaks BANK-PROTOCOL.md over HTTP to a bank in its own process
//! (`paygate bank-sim`). Transport failures map as [`HttpAcquirer`](super::HttpAcquirer)'s do (nothing sent,
//! timeout, lost answer, system error), so paygate knows whether the request may have been applied; the bank's
//! `REFUSED {code}` answers are its refusals.

use paygate_domain::bank::Bank;
use paygate_domain::money::{Currency, Money};
use paygate_domain::time::UnixMillis;
use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::client::{build_client, exchange, HttpAcquirerConfig, HttpAcquirerError, MAX_ANSWER_BYTES};
use crate::bank::{
    BankConnector, BankRefusal, BeginTransfer, Debit, DebitAnswer, Deposit, IssueAccount, IssuedAccount, Refund,
    RefundAnswer, TransferSession,
};
use crate::ConnectorError;

/// Largest deposit-feed page read, in bytes (1,000 deposits of a few hundred bytes each).
const MAX_FEED_BYTES: usize = 4 * 1024 * 1024;

/// A bank reached over the sandbox bank's HTTP protocol at `{base_url}/bank/…`.
#[derive(Clone, Debug)]
pub struct HttpBank {
    base: String,
    banks: Vec<Bank>,
    client: reqwest::Client,
}

/// The bank's answer: its `result`, and the fields the result carries.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    result: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    account_number: Option<String>,
    #[serde(default)]
    bank_code: Option<String>,
    #[serde(default)]
    issued_at: Option<i64>,
    #[serde(default)]
    refund_id: Option<String>,
    #[serde(default)]
    refunded_at: Option<i64>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    authorize_url: Option<String>,
    #[serde(default)]
    debit_id: Option<String>,
    #[serde(default)]
    holder_name: Option<String>,
    #[serde(default)]
    debited_at: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FeedPage {
    deposits: Vec<FeedDeposit>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FeedDeposit {
    seq: u64,
    deposit_id: String,
    #[serde(default)]
    merchant_id: Option<String>,
    account_number: String,
    bank_code: String,
    amount: i64,
    currency: String,
    depositor_name: String,
    deposited_at: i64,
}

fn unreadable(what: &str) -> ConnectorError {
    ConnectorError::LostAnswer(format!("the bank's answer lacks {what}"))
}

fn bank_of(code: Option<&str>) -> Result<Bank, ConnectorError> {
    code.and_then(|c| Bank::parse(c).filter(|b| b.code() == c))
        .ok_or_else(|| unreadable("a bank code"))
}

fn refusal(answer: &Answer) -> Result<BankRefusal, ConnectorError> {
    answer
        .code
        .as_deref()
        .and_then(BankRefusal::parse)
        .ok_or_else(|| unreadable("a known refusal code"))
}

impl HttpBank {
    /// `base_url` is the simulator's root, e.g. `http://127.0.0.1:9200`; `banks` the codes it serves.
    pub fn new(base_url: &str, banks: Vec<Bank>, config: HttpAcquirerConfig) -> Result<HttpBank, HttpAcquirerError> {
        let url = Url::parse(base_url).map_err(|error| HttpAcquirerError::InvalidBaseUrl(error.to_string()))?;
        if url.scheme() != "http" || url.host_str().is_none() || url.query().is_some() {
            return Err(HttpAcquirerError::InvalidBaseUrl(
                "expected an http:// URL with a host and no query".to_owned(),
            ));
        }
        let client = build_client(config)?;
        Ok(HttpBank {
            base: url.as_str().trim_end_matches('/').to_owned(),
            banks,
            client,
        })
    }

    async fn post<B: Serialize, R: DeserializeOwned>(&self, path: &str, body: &B) -> Result<R, ConnectorError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|_| ConnectorError::Unreachable("could not encode the request".to_owned()))?;
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes);
        exchange(request, MAX_ANSWER_BYTES).await
    }

    fn refund_answer(answer: &Answer) -> Result<Result<RefundAnswer, BankRefusal>, ConnectorError> {
        match answer.result.as_str() {
            "DONE" => Ok(Ok(RefundAnswer::Done {
                refund_id: answer.refund_id.clone().ok_or_else(|| unreadable("refundId"))?,
                refunded_at: UnixMillis::new(answer.refunded_at.ok_or_else(|| unreadable("refundedAt"))?),
            })),
            "FAILED" => Ok(Ok(RefundAnswer::Failed {
                refusal: refusal(answer)?,
            })),
            "REFUSED" => Ok(Err(refusal(answer)?)),
            _ => Err(unreadable("a known result")),
        }
    }

    fn debit_answer(answer: &Answer) -> Result<Result<DebitAnswer, BankRefusal>, ConnectorError> {
        match answer.result.as_str() {
            "DEBITED" => Ok(Ok(DebitAnswer::Done {
                debit_id: answer.debit_id.clone().ok_or_else(|| unreadable("debitId"))?,
                bank_code: bank_of(answer.bank_code.as_deref())?,
                account_number: answer
                    .account_number
                    .clone()
                    .ok_or_else(|| unreadable("accountNumber"))?,
                holder_name: answer.holder_name.clone().ok_or_else(|| unreadable("holderName"))?,
                debited_at: UnixMillis::new(answer.debited_at.ok_or_else(|| unreadable("debitedAt"))?),
            })),
            "FAILED" => Ok(Ok(DebitAnswer::Failed {
                refusal: refusal(answer)?,
            })),
            "REFUSED" => Ok(Err(refusal(answer)?)),
            _ => Err(unreadable("a known result")),
        }
    }
}

fn money_fields(amount: Money) -> (i64, &'static str) {
    (amount.amount_minor(), amount.currency().code())
}

#[async_trait::async_trait]
impl BankConnector for HttpBank {
    fn serves(&self, bank: Bank) -> bool {
        self.banks.contains(&bank)
    }

    fn banks(&self) -> Vec<Bank> {
        self.banks.clone()
    }

    async fn issue_account(
        &self,
        request: &IssueAccount,
    ) -> Result<Result<IssuedAccount, BankRefusal>, ConnectorError> {
        let (amount, currency) = money_fields(request.amount);
        let body = serde_json::json!({
            "reference": request.reference, "merchantId": request.merchant_id, "bankCode": request.bank_code.code(),
            "amount": amount, "currency": currency, "holderName": request.holder_name,
            "expiresAt": request.expires_at.as_millis(),
        });
        let answer: Answer = self.post("/bank/virtual-accounts", &body).await?;
        match answer.result.as_str() {
            "ISSUED" => Ok(Ok(IssuedAccount {
                account_number: answer
                    .account_number
                    .clone()
                    .ok_or_else(|| unreadable("accountNumber"))?,
                bank_code: bank_of(answer.bank_code.as_deref())?,
                issued_at: UnixMillis::new(answer.issued_at.ok_or_else(|| unreadable("issuedAt"))?),
            })),
            "REFUSED" => Ok(Err(refusal(&answer)?)),
            _ => Err(unreadable("a known result")),
        }
    }

    async fn close_account(
        &self,
        merchant_id: &str,
        account_number: &str,
    ) -> Result<Result<(), BankRefusal>, ConnectorError> {
        let body = serde_json::json!({"merchantId": merchant_id, "accountNumber": account_number});
        let answer: Answer = self.post("/bank/virtual-accounts/close", &body).await?;
        match answer.result.as_str() {
            "CLOSED" => Ok(Ok(())),
            "REFUSED" => Ok(Err(refusal(&answer)?)),
            _ => Err(unreadable("a known result")),
        }
    }

    async fn refund(&self, request: &Refund) -> Result<Result<RefundAnswer, BankRefusal>, ConnectorError> {
        let (amount, currency) = money_fields(request.amount);
        let body = serde_json::json!({
            "reference": request.reference, "merchantId": request.merchant_id, "bankCode": request.bank_code.code(),
            "accountNumber": request.account_number, "holderName": request.holder_name, "amount": amount,
            "currency": currency,
        });
        let answer: Answer = self.post("/bank/refunds", &body).await?;
        HttpBank::refund_answer(&answer)
    }

    async fn deposits_after(&self, after_seq: u64, limit: usize) -> Result<Vec<Deposit>, ConnectorError> {
        let url = format!("{}/bank/deposits?afterSeq={after_seq}&limit={limit}", self.base);
        let page: FeedPage = exchange(self.client.get(url), MAX_FEED_BYTES).await?;
        page.deposits
            .into_iter()
            .map(|d| {
                let currency: Currency = d.currency.parse().map_err(|_| unreadable("a known currency"))?;
                Ok(Deposit {
                    seq: d.seq,
                    deposit_id: d.deposit_id,
                    merchant_id: d.merchant_id.unwrap_or_default(),
                    account_number: d.account_number,
                    bank_code: bank_of(Some(&d.bank_code))?,
                    amount: Money::new(d.amount, currency),
                    depositor_name: d.depositor_name,
                    deposited_at: UnixMillis::new(d.deposited_at),
                })
            })
            .collect()
    }

    async fn return_deposit(
        &self,
        merchant_id: &str,
        reference: &str,
        deposit_id: &str,
    ) -> Result<Result<RefundAnswer, BankRefusal>, ConnectorError> {
        let body = serde_json::json!({"merchantId": merchant_id, "reference": reference, "depositId": deposit_id});
        let answer: Answer = self.post("/bank/deposits/return", &body).await?;
        HttpBank::refund_answer(&answer)
    }

    async fn begin_transfer(
        &self,
        request: &BeginTransfer,
    ) -> Result<Result<TransferSession, BankRefusal>, ConnectorError> {
        let (amount, currency) = money_fields(request.amount);
        let body = serde_json::json!({
            "reference": request.reference, "merchantId": request.merchant_id, "bankCode": request.bank_code.code(),
            "amount": amount, "currency": currency, "returnUrl": request.return_url,
        });
        let answer: Answer = self.post("/bank/transfers", &body).await?;
        match answer.result.as_str() {
            "OPENED" => {
                let path = answer.authorize_url.clone().ok_or_else(|| unreadable("authorizeUrl"))?;
                // The bank answers a path on its own host: the buyer's browser goes there.
                let authorize_url = if path.starts_with('/') {
                    format!("{}{path}", self.base)
                } else {
                    path
                };
                Ok(Ok(TransferSession {
                    session_id: answer.session_id.clone().ok_or_else(|| unreadable("sessionId"))?,
                    authorize_url,
                }))
            }
            "REFUSED" => Ok(Err(refusal(&answer)?)),
            _ => Err(unreadable("a known result")),
        }
    }

    async fn debit(&self, request: &Debit) -> Result<Result<DebitAnswer, BankRefusal>, ConnectorError> {
        let (amount, currency) = money_fields(request.amount);
        let body = serde_json::json!({
            "reference": request.reference, "merchantId": request.merchant_id,
            "authorization": request.authorization, "amount": amount, "currency": currency,
        });
        let answer: Answer = self.post("/bank/transfers/debit", &body).await?;
        HttpBank::debit_answer(&answer)
    }

    async fn inquire_debit(&self, merchant_id: &str, reference: &str) -> Result<Option<DebitAnswer>, ConnectorError> {
        let body = serde_json::json!({"merchantId": merchant_id, "reference": reference});
        let answer: Answer = self.post("/bank/transfers/inquire", &body).await?;
        if answer.result == "NOT_FOUND" {
            return Ok(None);
        }
        match HttpBank::debit_answer(&answer)? {
            Ok(answer) => Ok(Some(answer)),
            Err(_) => Err(unreadable("a debit's answer")),
        }
    }
}
