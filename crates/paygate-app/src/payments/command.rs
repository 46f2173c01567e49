//! The typed inputs of the payment use cases. The edge (the HTTP API, the hosted form) turns what it received into
//! these commands with the parsers below; a use case never sees a raw string or an unchecked amount.
//!
//! What a command cannot know is checked by its use case: the configured amount ceiling, the SSRF policy for a
//! notification URL, the merchant's redirect origins, whether the caller's key may set a field.

use std::fmt;

use paygate_connectors::CardData;
use paygate_domain::card::{CardExpiry, CardNumber, CardPassword, IdentityNumber, Installment};
use paygate_domain::customer::CustomerEmail;
use paygate_domain::money::Money;
use paygate_domain::order::{OrderId, OrderName};
use paygate_domain::payment::{Metadata, OrderExtras};
use paygate_domain::vat::VatSplit;

/// Why a request field was refused. The HTTP layer maps each reason to its stable code in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldReason {
    /// The field is required here and was absent or empty.
    Missing,
    /// The value is not acceptable for the field.
    Invalid,
    /// The field must be a URL paygate accepts and is not.
    InvalidUrl,
    InvalidCardNumber,
    InvalidCardExpiration,
    /// The value can never match the payment it names (a confirm's `orderId` that is not even an order ID).
    OrderIdMismatch,
    /// Not a bank code (or name) of Toss's table, or a bank that does not issue virtual accounts.
    InvalidBank,
    /// `validHours` above the maximum.
    ExceedMaxValidHours,
    /// `dueDate` in the past or too far ahead.
    ExceedMaxDueDate,
    /// `dueDate` is not a date-time in either of Toss's forms.
    InvalidDate,
    /// `validHours` and `dueDate` both sent.
    ValidHoursWithDueDate,
    /// A cash receipt's identifier of a kind its type does not take.
    RegistrationNumberType,
}

/// A refused request field: which one (the API's camelCase spelling), why, and a message naming it (never
/// echoing its value).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub param: &'static str,
    pub reason: FieldReason,
    pub message: String,
}

impl FieldError {
    pub fn new(param: &'static str, reason: FieldReason, message: impl Into<String>) -> FieldError {
        FieldError {
            param,
            reason,
            message: message.into(),
        }
    }

    pub fn missing(param: &'static str) -> FieldError {
        FieldError::new(param, FieldReason::Missing, format!("`{param}` is required"))
    }

    pub fn invalid(param: &'static str, message: impl fmt::Display) -> FieldError {
        FieldError::new(param, FieldReason::Invalid, message.to_string())
    }
}

/// Longest URL paygate keeps (notification and redirect URLs).
pub const URL_LEN_MAX: usize = 2_048;
/// Longest customer name, in characters.
pub const CUSTOMER_NAME_CHARS_MAX: usize = 100;
/// Longest cancel reason, in characters.
pub const CANCEL_REASON_CHARS_MAX: usize = 200;

/// A positive amount of won. The configured ceiling (`payments.amount_max_minor`) is the use case's check.
pub fn positive_amount(amount_minor: i64, param: &'static str) -> Result<Money, FieldError> {
    if amount_minor <= 0 {
        return Err(FieldError::invalid(
            param,
            format!("`{param}` must be a positive amount"),
        ));
    }
    Ok(Money::krw(amount_minor))
}

/// The total split into tax-free amount, VAT and supplied amount, from `amount`, `taxFreeAmount` and `vat`.
pub fn amounts(amount_minor: i64, tax_free_minor: Option<i64>, vat_minor: Option<i64>) -> Result<VatSplit, FieldError> {
    let total = positive_amount(amount_minor, "amount")?;
    let tax_free = Money::krw(tax_free_minor.unwrap_or(0));
    let split = match vat_minor {
        Some(vat) => VatSplit::with_explicit_vat(total, tax_free, Money::krw(vat)),
        None => VatSplit::compute(total, tax_free),
    };
    split.map_err(|e| FieldError::invalid(if vat_minor.is_some() { "vat" } else { "taxFreeAmount" }, e))
}

pub fn order_id(text: &str) -> Result<OrderId, FieldError> {
    OrderId::parse(text).map_err(|e| FieldError::invalid("orderId", e))
}

pub fn order_name(text: &str) -> Result<OrderName, FieldError> {
    OrderName::parse(text).map_err(|e| FieldError::invalid("orderName", e))
}

pub fn installment(months: u8) -> Result<Installment, FieldError> {
    Installment::new(months).map_err(|e| FieldError::invalid("cardInstallmentPlan", e))
}

/// The buyer's name as the merchant gave it: at most [`CUSTOMER_NAME_CHARS_MAX`] characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerName(String);

impl CustomerName {
    pub fn parse(text: String) -> Result<CustomerName, FieldError> {
        if text.chars().count() > CUSTOMER_NAME_CHARS_MAX {
            return Err(FieldError::invalid("customerName", "`customerName` is too long"));
        }
        Ok(CustomerName(text))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Who pays, as far as the merchant told.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Customer {
    pub name: Option<CustomerName>,
    pub email: Option<CustomerEmail>,
}

impl Customer {
    /// An empty field means "not given" (Toss clients send `""` for optional fields they leave blank).
    pub fn parse(name: Option<String>, email: Option<String>) -> Result<Customer, FieldError> {
        Ok(Customer {
            name: name.filter(|n| !n.is_empty()).map(CustomerName::parse).transpose()?,
            email: email
                .filter(|e| !e.is_empty())
                .map(|email| CustomerEmail::parse(&email))
                .transpose()
                .map_err(|e| FieldError::invalid("customerEmail", e))?,
        })
    }
}

/// Shortest and longest buyer's mobile phone number, in digits.
pub const MOBILE_PHONE_DIGITS: std::ops::RangeInclusive<usize> = 8..=15;

/// What a merchant may send with a payment that paygate keeps and returns without acting on it:
/// `taxExemptionAmount` (0 to the taxable part), `metadata` (an object of at most 5 string values) and
/// `customerMobilePhone` (8–15 digits, hyphens allowed and dropped). An empty phone means "not given".
pub fn order_extras(
    amounts: &VatSplit,
    tax_exemption_minor: Option<i64>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
    mobile_phone: Option<String>,
) -> Result<OrderExtras, FieldError> {
    let tax_exemption_minor = tax_exemption_minor.unwrap_or(0);
    let taxable = amounts.total().amount_minor() - amounts.tax_free().amount_minor();
    if !(0..=taxable).contains(&tax_exemption_minor) {
        return Err(FieldError::invalid(
            "taxExemptionAmount",
            "`taxExemptionAmount` must be between 0 and the amount minus `taxFreeAmount`",
        ));
    }
    let metadata = metadata.map(parse_metadata).transpose()?;
    let customer_mobile_phone = match mobile_phone.filter(|p| !p.is_empty()) {
        None => None,
        Some(phone) => {
            let digits: String = phone.chars().filter(|c| *c != '-').collect();
            if !MOBILE_PHONE_DIGITS.contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FieldError::invalid(
                    "customerMobilePhone",
                    "`customerMobilePhone` must be 8 to 15 digits",
                ));
            }
            Some(digits)
        }
    };
    Ok(OrderExtras {
        tax_exemption_minor,
        metadata,
        customer_mobile_phone,
        free_installment: false,
    })
}

fn parse_metadata(map: serde_json::Map<String, serde_json::Value>) -> Result<Metadata, FieldError> {
    if map.len() > Metadata::PAIRS_MAX {
        return Err(FieldError::invalid(
            "metadata",
            format!("`metadata` holds at most {} keys", Metadata::PAIRS_MAX),
        ));
    }
    for (key, value) in &map {
        if key.is_empty() || key.chars().count() > Metadata::KEY_CHARS_MAX || key.contains(['[', ']']) {
            return Err(FieldError::invalid(
                "metadata",
                format!(
                    "a `metadata` key is 1 to {} characters without `[` or `]`",
                    Metadata::KEY_CHARS_MAX
                ),
            ));
        }
        let ok = value
            .as_str()
            .is_some_and(|text| text.chars().count() <= Metadata::VALUE_CHARS_MAX);
        if !ok {
            return Err(FieldError::invalid(
                "metadata",
                format!(
                    "a `metadata` value is a string of at most {} characters",
                    Metadata::VALUE_CHARS_MAX
                ),
            ));
        }
    }
    let json = serde_json::to_string(&map).map_err(|e| FieldError::invalid("metadata", e))?;
    Ok(Metadata::from_validated_json(json))
}

/// Where a payment's notification (노티) goes instead of the merchant's setting: a non-empty URL of at most
/// [`URL_LEN_MAX`] bytes. Whether paygate may send there (the SSRF guard) is checked by the use case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationUrl(String);

impl NotificationUrl {
    /// An empty or blank field means "not given".
    pub fn parse(url: Option<String>) -> Result<Option<NotificationUrl>, FieldError> {
        let Some(url) = url.filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        if url.len() > URL_LEN_MAX {
            return Err(FieldError::invalid(
                "notificationUrl",
                format!("`notificationUrl` is longer than {URL_LEN_MAX} characters"),
            ));
        }
        Ok(Some(NotificationUrl(url)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Where a browser may be sent: an absolute http(s) URL without whitespace or control characters (no
/// `javascript:` and the like). Whether its origin is the merchant's is the use case's check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectUrl(String);

impl RedirectUrl {
    /// An empty field means "not given".
    pub fn parse(url: Option<String>, param: &'static str) -> Result<Option<RedirectUrl>, FieldError> {
        let Some(url) = url.filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let lower = url.to_ascii_lowercase();
        let ok = (lower.starts_with("https://") || lower.starts_with("http://"))
            && url.len() <= URL_LEN_MAX
            && !url.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            return Err(FieldError::new(
                param,
                FieldReason::InvalidUrl,
                format!("`{param}` must be an absolute http(s) URL"),
            ));
        }
        Ok(Some(RedirectUrl(url)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A card sent in clear fields, parsed. Every part redacts itself in `Debug`.
#[derive(Clone, Debug)]
pub struct ClearCard {
    pub number: CardNumber,
    pub expiry: CardExpiry,
    pub password: Option<CardPassword>,
    pub identity: Option<IdentityNumber>,
}

/// A card's fields as text (a form, or the plaintext of an `encData`), before parsing.
pub struct CardText<'a> {
    pub number: &'a str,
    pub expiration_year: &'a str,
    pub expiration_month: &'a str,
    pub password: Option<&'a str>,
    pub identity_number: Option<&'a str>,
}

impl ClearCard {
    pub fn parse(text: CardText<'_>) -> Result<ClearCard, FieldError> {
        let number = CardNumber::parse(text.number)
            .map_err(|e| FieldError::new("cardNumber", FieldReason::InvalidCardNumber, e.to_string()))?;
        let expiry = CardExpiry::parse(text.expiration_year, text.expiration_month)
            .map_err(|e| FieldError::new("cardExpirationYear", FieldReason::InvalidCardExpiration, e.to_string()))?;
        let password = text
            .password
            .map(CardPassword::parse)
            .transpose()
            .map_err(|e| FieldError::invalid("cardPassword", e))?;
        let identity = text
            .identity_number
            .map(IdentityNumber::parse)
            .transpose()
            .map_err(|e| FieldError::invalid("customerIdentityNumber", e))?;
        Ok(ClearCard {
            number,
            expiry,
            password,
            identity,
        })
    }

    /// What the acquirer gets.
    pub(crate) fn card_data(&self) -> CardData {
        CardData {
            number: self.number.expose_digits().to_owned(),
            expiry_year: self.expiry.year(),
            expiry_month: self.expiry.month(),
            password_two_digits: self.password.as_ref().map(|p| p.expose_digits().to_owned()),
            identity_number: self.identity.as_ref().map(|i| i.expose_digits().to_owned()),
        }
    }
}

/// An `encData` blob as received: decrypted by the use case with the merchant's keys.
#[derive(Clone)]
pub struct EncData(String);

impl EncData {
    pub fn new(blob: String) -> EncData {
        EncData(blob)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EncData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncData([REDACTED])")
    }
}

/// Where a key-in's card comes from.
#[derive(Clone, Debug)]
pub enum CardSource {
    Clear(ClearCard),
    EncData(EncData),
}

/// A key-in (비인증) approval.
#[derive(Clone, Debug)]
pub struct KeyInCommand {
    pub amounts: VatSplit,
    pub order_id: OrderId,
    pub order_name: OrderName,
    pub card: CardSource,
    pub installment: Installment,
    pub customer: Customer,
    /// Overrides the merchant's notification URL for this payment.
    pub notification_url: Option<NotificationUrl>,
    pub extras: OrderExtras,
}

/// A virtual account to issue for a new payment (`POST /v1/virtual-accounts`).
#[derive(Clone, Debug)]
pub struct VirtualAccountCommand {
    pub amounts: VatSplit,
    pub order_id: OrderId,
    pub order_name: OrderName,
    /// Who is expected to deposit: required, unlike a card payment's.
    pub customer_name: CustomerName,
    pub customer_email: Option<CustomerEmail>,
    pub bank: paygate_domain::bank::Bank,
    pub validity: paygate_domain::bank::Validity,
    pub notification_url: Option<NotificationUrl>,
    pub extras: OrderExtras,
    /// The buyer's cash receipt (현금영수증), issued with the deposit; `None`: not asked for (`미발행`).
    pub cash_receipt: Option<CashReceiptAsked>,
}

/// A buyer's cash receipt asked for with a bank payment: its type and the identifier, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CashReceiptAsked {
    pub receipt_type: paygate_domain::cash_receipt::ReceiptType,
    pub identity: paygate_domain::cash_receipt::CustomerIdentity,
}

impl CashReceiptAsked {
    /// Toss's `cashReceipt` (`type`: `소득공제`, `지출증빙` or `미발행`; `registrationNumber` — or, on paygate's page,
    /// the buyer's number — for the first two). `param` names the fields in errors.
    pub fn parse(
        kind: &str,
        number: Option<&str>,
        param_type: &'static str,
        param_number: &'static str,
    ) -> Result<Option<CashReceiptAsked>, FieldError> {
        use paygate_domain::cash_receipt::{CustomerIdentity, ReceiptType};
        if kind.trim().is_empty() || kind == "미발행" {
            return Ok(None);
        }
        let receipt_type = ReceiptType::from_korean(kind).ok_or_else(|| {
            FieldError::invalid(
                param_type,
                "the cash receipt's `type` is `소득공제`, `지출증빙` or `미발행`",
            )
        })?;
        let number = number.map(str::trim).filter(|n| !n.is_empty()).ok_or_else(|| {
            FieldError::new(
                param_number,
                FieldReason::Missing,
                "a cash receipt needs the buyer's phone, business registration or cash-receipt card number",
            )
        })?;
        let identity = CustomerIdentity::parse(number, receipt_type)
            .map_err(|e| FieldError::new(param_number, FieldReason::Invalid, e.to_string()))?;
        Ok(Some(CashReceiptAsked { receipt_type, identity }))
    }
}

impl VirtualAccountCommand {
    /// The bank, by code or name, among those that issue virtual accounts.
    pub fn bank(text: &str) -> Result<paygate_domain::bank::Bank, FieldError> {
        paygate_domain::bank::Bank::parse(text.trim())
            .filter(paygate_domain::bank::Bank::issues_virtual_accounts)
            .ok_or_else(|| {
                FieldError::new(
                    "bank",
                    FieldReason::InvalidBank,
                    "`bank` must be the code or name of a bank that issues virtual accounts (docs/bank-methods.md)",
                )
            })
    }

    /// `validHours` or `dueDate` (one of them at most; 168 hours when neither is sent). The deadline's range is
    /// checked against the clock by the use case.
    pub fn validity(
        valid_hours: Option<u32>,
        due_date: Option<&str>,
    ) -> Result<paygate_domain::bank::Validity, FieldError> {
        use paygate_domain::bank::Validity;
        match (valid_hours, due_date.filter(|d| !d.is_empty())) {
            (Some(_), Some(_)) => Err(FieldError::new(
                "validHours",
                FieldReason::ValidHoursWithDueDate,
                "send `validHours` or `dueDate`, not both",
            )),
            (Some(hours), None) => {
                if hours == 0 || hours > Validity::HOURS_MAX {
                    return Err(FieldError::new(
                        "validHours",
                        FieldReason::ExceedMaxValidHours,
                        format!("`validHours` must be between 1 and {}", Validity::HOURS_MAX),
                    ));
                }
                Ok(Validity::Hours(hours))
            }
            (None, Some(text)) => crate::instant::parse_deadline(text)
                .map(Validity::Until)
                .ok_or_else(|| {
                    FieldError::new(
                        "dueDate",
                        FieldReason::InvalidDate,
                        "`dueDate` must be a date-time such as 2026-12-31T23:59:59 (Korea time) or with an offset",
                    )
                }),
            (None, None) => Ok(Validity::Hours(Validity::HOURS_DEFAULT)),
        }
    }
}

/// A checkout payment for the buyer to authenticate.
#[derive(Clone, Debug)]
pub struct CreateCommand {
    pub amounts: VatSplit,
    pub order_id: OrderId,
    pub order_name: OrderName,
    pub customer: Customer,
    /// Overrides the merchant's notification URL for this payment.
    pub notification_url: Option<NotificationUrl>,
    pub extras: OrderExtras,
    /// Where the browser goes after the buyer paid (then the merchant confirms) or gave up. Required with a client
    /// key (the browser SDK), optional with a secret key.
    pub success_url: Option<RedirectUrl>,
    pub fail_url: Option<RedirectUrl>,
    /// The method the merchant asked for (`method`); `None`: the buyer picks one on paygate's page.
    pub method: Option<paygate_domain::payment::PaymentMethod>,
}

/// The buyer's card for a checkout: number and expiry (no password digits or identity number: the buyer's
/// authentication replaces them).
#[derive(Clone, Debug)]
pub struct AuthenticateCommand {
    pub card: ClearCard,
    pub installment: Installment,
}

/// The merchant's confirm of an authenticated checkout payment: what it expects the payment to be.
#[derive(Clone, Debug)]
pub struct ConfirmCommand {
    pub order_id: OrderId,
    pub amount: Money,
}

impl ConfirmCommand {
    pub fn parse(order_id: &str, amount_minor: i64) -> Result<ConfirmCommand, FieldError> {
        // An orderId that is not even well-formed cannot be this payment's.
        let order_id = OrderId::parse(order_id).map_err(|_| {
            FieldError::new(
                "orderId",
                FieldReason::OrderIdMismatch,
                "the orderId does not match the payment",
            )
        })?;
        Ok(ConfirmCommand {
            order_id,
            amount: positive_amount(amount_minor, "amount")?,
        })
    }
}

/// Why a cancel is made: 1 to [`CANCEL_REASON_CHARS_MAX`] characters, trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelReason(String);

impl CancelReason {
    pub fn parse(text: &str) -> Result<CancelReason, FieldError> {
        let reason = text.trim();
        if reason.is_empty() || reason.chars().count() > CANCEL_REASON_CHARS_MAX {
            return Err(FieldError::invalid(
                "cancelReason",
                format!("`cancelReason` must be 1 to {CANCEL_REASON_CHARS_MAX} characters"),
            ));
        }
        Ok(CancelReason(reason.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A cancel, full (no amount) or partial.
#[derive(Clone, Debug)]
pub struct CancelCommand {
    pub reason: CancelReason,
    /// None cancels the whole remaining balance.
    pub amount: Option<Money>,
    /// The balance the merchant believes the payment has; the cancel is refused if it differs.
    pub expected_balance: Option<Money>,
    /// Whether that balance came as Toss's `refundableAmount` (a mismatch answers Toss's code) rather than
    /// paygate's `expectedBalance`.
    pub balance_as_refundable: bool,
    /// The tax-free part of the cancelled amount (`taxFreeAmount`, default 0); the payment's rules check it
    /// against what is left of its tax-free amount.
    pub tax_free: Money,
    /// Where a paid virtual account's refund goes (Toss's `refundReceiveAccount`); card payments ignore it.
    pub refund_account: Option<paygate_domain::virtual_account::RefundAccount>,
}

/// Longest refund account number, in digits (Toss: at most 20, digits only).
pub const REFUND_ACCOUNT_DIGITS: std::ops::RangeInclusive<usize> = 6..=20;
/// Longest refund account holder's name, in characters.
pub const REFUND_HOLDER_CHARS_MAX: usize = 60;

impl CancelCommand {
    /// Adds Toss's `refundReceiveAccount` (`bank` as a code or a name, `accountNumber` digits only,
    /// `holderName`).
    pub fn with_refund_account(
        mut self,
        bank: &str,
        account_number: &str,
        holder_name: &str,
    ) -> Result<CancelCommand, FieldError> {
        let bank = paygate_domain::bank::Bank::parse(bank.trim()).ok_or_else(|| {
            FieldError::new(
                "refundReceiveAccount.bank",
                FieldReason::InvalidBank,
                "`refundReceiveAccount.bank` must be a bank code or name of Toss's table",
            )
        })?;
        if !REFUND_ACCOUNT_DIGITS.contains(&account_number.len()) || !account_number.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(FieldError::invalid(
                "refundReceiveAccount.accountNumber",
                "`refundReceiveAccount.accountNumber` must be 6 to 20 digits, without hyphens",
            ));
        }
        let holder = holder_name.trim();
        if holder.is_empty() || holder.chars().count() > REFUND_HOLDER_CHARS_MAX {
            return Err(FieldError::invalid(
                "refundReceiveAccount.holderName",
                "`refundReceiveAccount.holderName` must be 1 to 60 characters",
            ));
        }
        self.refund_account = Some(paygate_domain::virtual_account::RefundAccount {
            bank,
            account_number: account_number.to_owned(),
            holder_name: holder.to_owned(),
        });
        Ok(self)
    }

    /// Adds Toss's `refundableAmount`: the same guard as `expectedBalance`; sent together, they must agree.
    pub fn with_refundable_amount(mut self, refundable_minor: Option<i64>) -> Result<CancelCommand, FieldError> {
        let Some(refundable) = refundable_minor.map(Money::krw) else {
            return Ok(self);
        };
        if self.expected_balance.is_some_and(|expected| expected != refundable) {
            return Err(FieldError::invalid(
                "refundableAmount",
                "`refundableAmount` and `expectedBalance` differ; send one of them",
            ));
        }
        self.expected_balance = Some(refundable);
        self.balance_as_refundable = true;
        Ok(self)
    }

    pub fn parse(
        reason: &str,
        amount_minor: Option<i64>,
        expected_balance_minor: Option<i64>,
        tax_free_minor: Option<i64>,
    ) -> Result<CancelCommand, FieldError> {
        let amount = amount_minor.map(|a| positive_amount(a, "cancelAmount")).transpose()?;
        let tax_free_minor = tax_free_minor.unwrap_or(0);
        let over_amount = amount.is_some_and(|a| tax_free_minor > a.amount_minor());
        if tax_free_minor < 0 || over_amount {
            return Err(FieldError::invalid(
                "taxFreeAmount",
                "`taxFreeAmount` must be between 0 and `cancelAmount`",
            ));
        }
        Ok(CancelCommand {
            reason: CancelReason::parse(reason)?,
            amount,
            expected_balance: expected_balance_minor.map(Money::krw),
            balance_as_refundable: false,
            tax_free: Money::krw(tax_free_minor),
            refund_account: None,
        })
    }
}
