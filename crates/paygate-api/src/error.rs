//! The one error type of the HTTP boundary and its wire form.
//!
//! Every failure a client can see is an [`ApiError`] with a stable UPPER_SNAKE_CASE `code`, an HTTP status and a
//! human message. Internal details are logged under the request ID and never sent. The body is
//! `{"code", "message", "requestId", "param"?, "reason"?}`; the request ID is filled in by the outermost middleware.
//! Bad input answers Toss's `INVALID_REQUEST`; paygate's finer reason (`MISSING_FIELD`, `INVALID_FIELD_TYPE`,
//! `INVALID_FIELD_VALUE`, `MALFORMED_JSON`, `INVALID_URL`) rides in `reason`, a field Toss does not use.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use paygate_app::billing::BillingError;
use paygate_app::payments::{DeclineCode, FieldError, FieldReason, PaymentError};
use paygate_domain::billing::BillingRuleError;
use paygate_domain::payment::PaymentRuleError;
use serde::Serialize;

/// The catalogue of error codes. `docs/errors.md` lists the same table; a test keeps them in step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    NotFound,
    MethodNotAllowed,
    MalformedJson,
    MissingField,
    InvalidFieldType,
    InvalidFieldValue,
    UnsupportedMediaType,
    PayloadTooLarge,
    InvalidIdempotencyKey,
    IdempotencyKeyReused,
    IdempotentRequestProcessing,
    UnauthorizedKey,
    InvalidApiKey,
    RevokedApiKey,
    ClientKeyNotAllowed,
    MerchantNotActive,
    TooManyRequests,
    RequestTimeout,
    ServiceOverloaded,
    ServiceUnavailable,
    FailedInternalSystemProcessing,
    InvalidCardNumber,
    InvalidCardExpiration,
    InvalidEncData,
    UnknownEncKeyVersion,
    EncDataDecryptionFailed,
    DuplicatedOrderId,
    NotFoundPayment,
    AmountMismatch,
    OrderIdMismatch,
    NotFoundPaymentSession,
    InvalidPaymentStatus,
    AlreadyProcessedPayment,
    AlreadyCanceledPayment,
    AlreadyProcessingRequest,
    NotCancelablePayment,
    NotCancelableAmount,
    BalanceMismatch,
    NotMatchesRefundableAmount,
    RejectCardPayment,
    InvalidCardLostOrStolen,
    InvalidCardPassword,
    CardAuthenticationRequired,
    RejectCardCompany,
    AcquirerUnavailable,
    NoAcquirerRoute,
    CancelRefused,
    InvalidUrl,
    NotFoundWebhook,
    NotFoundEvent,
    TooManyWebhooks,
    InvalidDate,
    NotFoundBilling,
    InvalidBillKeyRequest,
    NotMatchesCustomerKey,
    InvalidBillingAuth,
    InvalidBank,
    ExceedMaxValidHours,
    ExceedMaxDueDate,
    InvalidValidHoursWithDueDate,
    BankUnavailable,
    InvalidRefundAccountInfo,
    InvalidRefundAccountNumber,
    RefundRejected,
    NotAllowedPartialRefundWaitingDeposit,
    RejectAccountPayment,
    InvalidAuthorizeAuth,
    NotFoundCashReceipt,
    DuplicatedCashReceipt,
    InvalidBusinessNumber,
    InvalidCashReceiptInfo,
    InvalidRegistrationNumberType,
    ExceedMaxQueryLimit,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 73] = [
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::MalformedJson,
        ErrorCode::MissingField,
        ErrorCode::InvalidFieldType,
        ErrorCode::InvalidFieldValue,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::PayloadTooLarge,
        ErrorCode::InvalidIdempotencyKey,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::IdempotentRequestProcessing,
        ErrorCode::UnauthorizedKey,
        ErrorCode::InvalidApiKey,
        ErrorCode::RevokedApiKey,
        ErrorCode::ClientKeyNotAllowed,
        ErrorCode::MerchantNotActive,
        ErrorCode::TooManyRequests,
        ErrorCode::RequestTimeout,
        ErrorCode::ServiceOverloaded,
        ErrorCode::ServiceUnavailable,
        ErrorCode::FailedInternalSystemProcessing,
        ErrorCode::InvalidCardNumber,
        ErrorCode::InvalidCardExpiration,
        ErrorCode::InvalidEncData,
        ErrorCode::UnknownEncKeyVersion,
        ErrorCode::EncDataDecryptionFailed,
        ErrorCode::DuplicatedOrderId,
        ErrorCode::NotFoundPayment,
        ErrorCode::AmountMismatch,
        ErrorCode::OrderIdMismatch,
        ErrorCode::NotFoundPaymentSession,
        ErrorCode::InvalidPaymentStatus,
        ErrorCode::AlreadyProcessedPayment,
        ErrorCode::AlreadyCanceledPayment,
        ErrorCode::AlreadyProcessingRequest,
        ErrorCode::NotCancelablePayment,
        ErrorCode::NotCancelableAmount,
        ErrorCode::BalanceMismatch,
        ErrorCode::NotMatchesRefundableAmount,
        ErrorCode::RejectCardPayment,
        ErrorCode::InvalidCardLostOrStolen,
        ErrorCode::InvalidCardPassword,
        ErrorCode::CardAuthenticationRequired,
        ErrorCode::RejectCardCompany,
        ErrorCode::AcquirerUnavailable,
        ErrorCode::NoAcquirerRoute,
        ErrorCode::CancelRefused,
        ErrorCode::InvalidUrl,
        ErrorCode::NotFoundWebhook,
        ErrorCode::NotFoundEvent,
        ErrorCode::TooManyWebhooks,
        ErrorCode::InvalidDate,
        ErrorCode::NotFoundBilling,
        ErrorCode::InvalidBillKeyRequest,
        ErrorCode::NotMatchesCustomerKey,
        ErrorCode::InvalidBillingAuth,
        ErrorCode::InvalidBank,
        ErrorCode::ExceedMaxValidHours,
        ErrorCode::ExceedMaxDueDate,
        ErrorCode::InvalidValidHoursWithDueDate,
        ErrorCode::BankUnavailable,
        ErrorCode::InvalidRefundAccountInfo,
        ErrorCode::InvalidRefundAccountNumber,
        ErrorCode::RefundRejected,
        ErrorCode::NotAllowedPartialRefundWaitingDeposit,
        ErrorCode::RejectAccountPayment,
        ErrorCode::InvalidAuthorizeAuth,
        ErrorCode::NotFoundCashReceipt,
        ErrorCode::DuplicatedCashReceipt,
        ErrorCode::InvalidBusinessNumber,
        ErrorCode::InvalidCashReceiptInfo,
        ErrorCode::InvalidRegistrationNumberType,
        ErrorCode::ExceedMaxQueryLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::MalformedJson
            | ErrorCode::MissingField
            | ErrorCode::InvalidFieldType
            | ErrorCode::InvalidFieldValue
            | ErrorCode::InvalidUrl => "INVALID_REQUEST",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::InvalidIdempotencyKey => "INVALID_IDEMPOTENCY_KEY",
            ErrorCode::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ErrorCode::IdempotentRequestProcessing => "IDEMPOTENT_REQUEST_PROCESSING",
            ErrorCode::UnauthorizedKey => "UNAUTHORIZED_KEY",
            ErrorCode::InvalidApiKey => "INVALID_API_KEY",
            ErrorCode::RevokedApiKey => "REVOKED_API_KEY",
            ErrorCode::ClientKeyNotAllowed => "CLIENT_KEY_NOT_ALLOWED",
            ErrorCode::MerchantNotActive => "MERCHANT_NOT_ACTIVE",
            ErrorCode::TooManyRequests => "TOO_MANY_REQUESTS",
            ErrorCode::RequestTimeout => "REQUEST_TIMEOUT",
            ErrorCode::ServiceOverloaded => "SERVICE_OVERLOADED",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::FailedInternalSystemProcessing => "FAILED_INTERNAL_SYSTEM_PROCESSING",
            ErrorCode::InvalidCardNumber => "INVALID_CARD_NUMBER",
            ErrorCode::InvalidCardExpiration => "INVALID_CARD_EXPIRATION",
            ErrorCode::InvalidEncData => "INVALID_ENC_DATA",
            ErrorCode::UnknownEncKeyVersion => "UNKNOWN_ENC_KEY_VERSION",
            ErrorCode::EncDataDecryptionFailed => "ENC_DATA_DECRYPTION_FAILED",
            ErrorCode::DuplicatedOrderId => "DUPLICATED_ORDER_ID",
            ErrorCode::NotFoundPayment => "NOT_FOUND_PAYMENT",
            ErrorCode::AmountMismatch => "AMOUNT_MISMATCH",
            ErrorCode::OrderIdMismatch => "ORDER_ID_MISMATCH",
            ErrorCode::NotFoundPaymentSession => "NOT_FOUND_PAYMENT_SESSION",
            ErrorCode::InvalidPaymentStatus => "INVALID_PAYMENT_STATUS",
            ErrorCode::AlreadyProcessedPayment => "ALREADY_PROCESSED_PAYMENT",
            ErrorCode::AlreadyCanceledPayment => "ALREADY_CANCELED_PAYMENT",
            ErrorCode::AlreadyProcessingRequest => "ALREADY_PROCESSING_REQUEST",
            ErrorCode::NotCancelablePayment => "NOT_CANCELABLE_PAYMENT",
            ErrorCode::NotCancelableAmount => "NOT_CANCELABLE_AMOUNT",
            ErrorCode::BalanceMismatch => "BALANCE_MISMATCH",
            ErrorCode::NotMatchesRefundableAmount => "NOT_MATCHES_REFUNDABLE_AMOUNT",
            ErrorCode::RejectCardPayment => "REJECT_CARD_PAYMENT",
            ErrorCode::InvalidCardLostOrStolen => "INVALID_CARD_LOST_OR_STOLEN",
            ErrorCode::InvalidCardPassword => "INVALID_CARD_PASSWORD",
            ErrorCode::CardAuthenticationRequired => "CARD_AUTHENTICATION_REQUIRED",
            ErrorCode::RejectCardCompany => "REJECT_CARD_COMPANY",
            ErrorCode::AcquirerUnavailable => "ACQUIRER_UNAVAILABLE",
            ErrorCode::NoAcquirerRoute => "NO_ACQUIRER_ROUTE",
            ErrorCode::CancelRefused => "CANCEL_REFUSED",
            ErrorCode::NotFoundWebhook => "NOT_FOUND_WEBHOOK",
            ErrorCode::NotFoundEvent => "NOT_FOUND_EVENT",
            ErrorCode::TooManyWebhooks => "TOO_MANY_WEBHOOKS",
            ErrorCode::InvalidDate => "INVALID_DATE",
            ErrorCode::NotFoundBilling => "NOT_FOUND_BILLING",
            ErrorCode::InvalidBillKeyRequest => "INVALID_BILL_KEY_REQUEST",
            ErrorCode::NotMatchesCustomerKey => "NOT_MATCHES_CUSTOMER_KEY",
            ErrorCode::InvalidBillingAuth => "INVALID_BILLING_AUTH",
            ErrorCode::InvalidBank => "INVALID_BANK",
            ErrorCode::ExceedMaxValidHours => "EXCEED_MAX_VALID_HOURS",
            ErrorCode::ExceedMaxDueDate => "EXCEED_MAX_DUE_DATE",
            ErrorCode::InvalidValidHoursWithDueDate => "INVALID_VALID_HOURS_WITH_DUE_DATE_AND_SINGLE",
            ErrorCode::BankUnavailable => "BANK_UNAVAILABLE",
            ErrorCode::InvalidRefundAccountInfo => "INVALID_REFUND_ACCOUNT_INFO",
            ErrorCode::InvalidRefundAccountNumber => "INVALID_REFUND_ACCOUNT_NUMBER",
            ErrorCode::RefundRejected => "REFUND_REJECTED",
            ErrorCode::NotAllowedPartialRefundWaitingDeposit => "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT",
            ErrorCode::RejectAccountPayment => "REJECT_ACCOUNT_PAYMENT",
            ErrorCode::InvalidAuthorizeAuth => "INVALID_AUTHORIZE_AUTH",
            ErrorCode::NotFoundCashReceipt => "NOT_FOUND_CASH_RECEIPT",
            ErrorCode::DuplicatedCashReceipt => "DUPLICATED_CASH_RECEIPT",
            ErrorCode::InvalidBusinessNumber => "INVALID_BUSINESS_NUMBER",
            ErrorCode::InvalidCashReceiptInfo => "INVALID_CASH_RECEIPT_INFO",
            ErrorCode::InvalidRegistrationNumberType => "INVALID_REGISTRATION_NUMBER_TYPE",
            ErrorCode::ExceedMaxQueryLimit => "EXCEED_MAX_QUERY_LIMIT",
        }
    }

    /// paygate's finer spelling of an `INVALID_REQUEST`, sent as `reason`.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            ErrorCode::MalformedJson => Some("MALFORMED_JSON"),
            ErrorCode::MissingField => Some("MISSING_FIELD"),
            ErrorCode::InvalidFieldType => Some("INVALID_FIELD_TYPE"),
            ErrorCode::InvalidFieldValue => Some("INVALID_FIELD_VALUE"),
            ErrorCode::InvalidUrl => Some("INVALID_URL"),
            _ => None,
        }
    }

    /// The most precise spelling: the `reason` of an `INVALID_REQUEST`, else the code.
    pub fn detail(self) -> &'static str {
        self.reason().unwrap_or(self.as_str())
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MalformedJson
            | ErrorCode::MissingField
            | ErrorCode::InvalidFieldType
            | ErrorCode::InvalidFieldValue
            | ErrorCode::InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::IdempotentRequestProcessing => StatusCode::CONFLICT,
            ErrorCode::UnauthorizedKey | ErrorCode::InvalidApiKey | ErrorCode::RevokedApiKey => {
                StatusCode::UNAUTHORIZED
            }
            ErrorCode::ClientKeyNotAllowed | ErrorCode::MerchantNotActive => StatusCode::FORBIDDEN,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RequestTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::ServiceOverloaded | ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::FailedInternalSystemProcessing => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InvalidCardNumber => StatusCode::BAD_REQUEST,
            ErrorCode::InvalidCardExpiration => StatusCode::BAD_REQUEST,
            ErrorCode::InvalidEncData => StatusCode::BAD_REQUEST,
            ErrorCode::UnknownEncKeyVersion => StatusCode::BAD_REQUEST,
            ErrorCode::EncDataDecryptionFailed => StatusCode::BAD_REQUEST,
            ErrorCode::DuplicatedOrderId => StatusCode::BAD_REQUEST,
            ErrorCode::NotFoundPayment => StatusCode::NOT_FOUND,
            ErrorCode::AmountMismatch => StatusCode::BAD_REQUEST,
            ErrorCode::OrderIdMismatch => StatusCode::BAD_REQUEST,
            ErrorCode::NotFoundPaymentSession => StatusCode::NOT_FOUND,
            ErrorCode::InvalidPaymentStatus => StatusCode::CONFLICT,
            ErrorCode::AlreadyProcessedPayment | ErrorCode::AlreadyCanceledPayment => StatusCode::BAD_REQUEST,
            ErrorCode::AlreadyProcessingRequest => StatusCode::CONFLICT,
            ErrorCode::NotCancelablePayment => StatusCode::FORBIDDEN,
            ErrorCode::NotCancelableAmount => StatusCode::FORBIDDEN,
            ErrorCode::BalanceMismatch => StatusCode::CONFLICT,
            ErrorCode::NotMatchesRefundableAmount => StatusCode::BAD_REQUEST,
            ErrorCode::RejectCardPayment => StatusCode::FORBIDDEN,
            ErrorCode::InvalidCardLostOrStolen => StatusCode::BAD_REQUEST,
            ErrorCode::InvalidCardPassword => StatusCode::BAD_REQUEST,
            ErrorCode::CardAuthenticationRequired => StatusCode::BAD_REQUEST,
            ErrorCode::RejectCardCompany => StatusCode::FORBIDDEN,
            ErrorCode::AcquirerUnavailable => StatusCode::BAD_GATEWAY,
            ErrorCode::NoAcquirerRoute => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::CancelRefused => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidUrl => StatusCode::BAD_REQUEST,
            ErrorCode::NotFoundWebhook => StatusCode::NOT_FOUND,
            ErrorCode::NotFoundEvent => StatusCode::NOT_FOUND,
            ErrorCode::TooManyWebhooks => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidDate => StatusCode::BAD_REQUEST,
            ErrorCode::NotFoundBilling => StatusCode::NOT_FOUND,
            ErrorCode::InvalidBillKeyRequest | ErrorCode::NotMatchesCustomerKey | ErrorCode::InvalidBillingAuth => {
                StatusCode::BAD_REQUEST
            }
            ErrorCode::InvalidBank
            | ErrorCode::ExceedMaxValidHours
            | ErrorCode::ExceedMaxDueDate
            | ErrorCode::InvalidValidHoursWithDueDate => StatusCode::BAD_REQUEST,
            ErrorCode::BankUnavailable => StatusCode::BAD_GATEWAY,
            ErrorCode::InvalidRefundAccountInfo | ErrorCode::InvalidRefundAccountNumber | ErrorCode::RefundRejected => {
                StatusCode::BAD_REQUEST
            }
            ErrorCode::NotAllowedPartialRefundWaitingDeposit => StatusCode::FORBIDDEN,
            ErrorCode::RejectAccountPayment => StatusCode::FORBIDDEN,
            ErrorCode::InvalidAuthorizeAuth => StatusCode::BAD_REQUEST,
            ErrorCode::NotFoundCashReceipt => StatusCode::NOT_FOUND,
            ErrorCode::DuplicatedCashReceipt
            | ErrorCode::InvalidBusinessNumber
            | ErrorCode::InvalidCashReceiptInfo
            | ErrorCode::InvalidRegistrationNumberType
            | ErrorCode::ExceedMaxQueryLimit => StatusCode::BAD_REQUEST,
        }
    }
}

/// A client-visible failure.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// The offending request field, in the API's camelCase spelling.
    pub param: Option<String>,
    /// Seconds to wait, for 429 and 503.
    pub retry_after_secs: Option<u64>,
    /// Rarely present, so boxed to keep `Result<_, ApiError>` small.
    pub details: Option<Box<ErrorDetails>>,
}

/// Extra fields of some errors.
#[derive(Clone, Debug, Default)]
pub struct ErrorDetails {
    /// For declines: the acquirer's own code and message, beside paygate's stable `code`.
    pub acquirer_code: Option<String>,
    pub acquirer_message: Option<String>,
    /// The payment the failure concerns, when one was recorded (e.g. a declined key-in is ABORTED, not lost).
    pub payment_key: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            param: None,
            retry_after_secs: None,
            details: None,
        }
    }

    pub fn with_details(mut self, details: ErrorDetails) -> ApiError {
        self.details = Some(Box::new(details));
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> ApiError {
        self.param = Some(param.into());
        self
    }

    /// An unexpected failure: the cause is logged here, the client sees only a generic message.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(
            ErrorCode::FailedInternalSystemProcessing,
            "an internal error occurred; retrying later is safe",
        )
    }

    pub fn unavailable(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::warn!(error = %cause, "dependency unavailable");
        let mut error = ApiError::new(ErrorCode::ServiceUnavailable, "the service is temporarily unavailable");
        error.retry_after_secs = Some(1);
        error
    }
}

impl From<paygate_store::StoreError> for ApiError {
    fn from(error: paygate_store::StoreError) -> ApiError {
        use paygate_store::StoreError;
        match error {
            StoreError::Unavailable(_) | StoreError::Overloaded(_) | StoreError::StaleVaultKey(_) => {
                ApiError::unavailable(&error)
            }
            other => ApiError::internal(&other),
        }
    }
}

/// The wire form, rendered by the outermost middleware once the request ID is known.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acquirer_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acquirer_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_key: Option<String>,
}

impl ApiError {
    /// The wire form, before the outermost layer adds the request ID.
    pub fn body(&self) -> ErrorBody {
        let details = self.details.as_deref().cloned().unwrap_or_default();
        ErrorBody {
            code: self.code.as_str(),
            message: self.message.clone(),
            param: self.param.clone(),
            reason: self.code.reason(),
            request_id: None,
            acquirer_code: details.acquirer_code,
            acquirer_message: details.acquirer_message,
            payment_key: details.payment_key,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut response = (self.code.status(), axum::Json(body.clone())).into_response();
        if let Some(seconds) = self.retry_after_secs {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
            }
        }
        // The outermost middleware re-renders the body with the request ID from this extension.
        response.extensions_mut().insert(body);
        response
    }
}

// The use cases' errors, mapped onto stable codes: the one place a payment failure gets its code, for live
// answers and for the answers stored under an `Idempotency-Key` alike.

/// A refused request field: its reason decides the code, the field is the `param`.
pub fn field_error(error: &FieldError) -> ApiError {
    let code = match error.reason {
        FieldReason::Missing => ErrorCode::MissingField,
        FieldReason::Invalid => ErrorCode::InvalidFieldValue,
        FieldReason::InvalidUrl => ErrorCode::InvalidUrl,
        FieldReason::InvalidCardNumber => ErrorCode::InvalidCardNumber,
        FieldReason::InvalidCardExpiration => ErrorCode::InvalidCardExpiration,
        FieldReason::OrderIdMismatch => ErrorCode::OrderIdMismatch,
        FieldReason::InvalidBank => ErrorCode::InvalidBank,
        FieldReason::ExceedMaxValidHours => ErrorCode::ExceedMaxValidHours,
        FieldReason::ExceedMaxDueDate => ErrorCode::ExceedMaxDueDate,
        FieldReason::InvalidDate => ErrorCode::InvalidDate,
        FieldReason::ValidHoursWithDueDate => ErrorCode::InvalidValidHoursWithDueDate,
        FieldReason::RegistrationNumberType => ErrorCode::InvalidRegistrationNumberType,
    };
    ApiError::new(code, error.message.clone()).with_param(error.param)
}

/// paygate's stable code for an acquirer's decline reason.
pub fn decline_code(code: DeclineCode) -> ErrorCode {
    match code {
        DeclineCode::RejectCardPayment => ErrorCode::RejectCardPayment,
        DeclineCode::LostOrStolenCard => ErrorCode::InvalidCardLostOrStolen,
        DeclineCode::InvalidPassword => ErrorCode::InvalidCardPassword,
        DeclineCode::InvalidCardExpiration => ErrorCode::InvalidCardExpiration,
        DeclineCode::InvalidCardNumber => ErrorCode::InvalidCardNumber,
        DeclineCode::AuthenticationRequired => ErrorCode::CardAuthenticationRequired,
        DeclineCode::RejectCardCompany => ErrorCode::RejectCardCompany,
    }
}

/// A use case's internal failure. Data sealed under a data key a rotation retired meanwhile is transient (this process
/// reloads its keys within `vault.refresh_interval_ms`): the client may retry; everything else is a bug.
fn internal_error(internal: &paygate_app::payments::InternalError) -> ApiError {
    match internal {
        paygate_app::payments::InternalError::Store(paygate_store::StoreError::StaleVaultKey(_)) => {
            ApiError::unavailable(internal)
        }
        other => ApiError::internal(other),
    }
}

fn not_found_billing() -> ApiError {
    ApiError::new(
        ErrorCode::NotFoundBilling,
        "no such billing key for this merchant and mode",
    )
}

fn billing_rule_error(rule: BillingRuleError) -> ApiError {
    match rule {
        BillingRuleError::Deleted => ApiError::new(
            ErrorCode::InvalidBillKeyRequest,
            "the billing key was deleted; nothing was charged",
        ),
        BillingRuleError::CustomerKeyMismatch => ApiError::new(
            ErrorCode::NotMatchesCustomerKey,
            "the customerKey is not the one the billing key was issued to; nothing was charged",
        )
        .with_param("customerKey"),
    }
}

/// Maps the billing-key use cases' errors (issue, look up, delete) onto stable codes.
pub fn billing_error_ref(error: &BillingError) -> ApiError {
    match error.clone_for_answer() {
        BillingError::Field(field) => field_error(&field),
        BillingError::NotFound => not_found_billing(),
        BillingError::Declined {
            code,
            message,
            acquirer_code,
        } => ApiError::new(
            decline_code(code),
            "the issuer refused the card; no billing key was issued",
        )
        .with_details(ErrorDetails {
            acquirer_code: Some(acquirer_code),
            acquirer_message: Some(message),
            payment_key: None,
        }),
        BillingError::AcquirerUnavailable => ApiError::new(
            ErrorCode::AcquirerUnavailable,
            "the card could not be checked with its issuer; nothing was registered, retrying is safe",
        ),
        BillingError::NoRoute => ApiError::new(
            ErrorCode::NoAcquirerRoute,
            "no acquirer serves this card for this merchant and mode",
        ),
        BillingError::Forbidden => ApiError::new(
            ErrorCode::ClientKeyNotAllowed,
            "billing keys are managed with the secret key, on your server",
        ),
        BillingError::InvalidAuth => ApiError::new(
            ErrorCode::InvalidBillingAuth,
            "the authKey cannot be exchanged: it expired, or the buyer did not finish the registration",
        )
        .with_param("authKey"),
        BillingError::CustomerKeyMismatch => ApiError::new(
            ErrorCode::NotMatchesCustomerKey,
            "the customerKey is not the one the registration was started for",
        )
        .with_param("customerKey"),
        BillingError::Concurrent => ApiError::new(
            ErrorCode::AlreadyProcessingRequest,
            "another request is changing this billing key; retry shortly",
        ),
        BillingError::Idempotency(refusal) => idempotency_error(refusal),
        BillingError::Internal(internal) => internal_error(&internal),
    }
}

/// Maps the use cases' errors onto stable codes.
pub fn payment_error(error: PaymentError) -> ApiError {
    payment_error_ref(&error)
}

/// Maps the use cases' errors onto stable codes (the same mapping renders live and stored answers).
pub fn payment_error_ref(error: &PaymentError) -> ApiError {
    match error.clone_for_answer() {
        PaymentError::Field(field) => field_error(&field),
        PaymentError::DuplicateOrderId => {
            ApiError::new(ErrorCode::DuplicatedOrderId, "this orderId was already used").with_param("orderId")
        }
        PaymentError::NotFound => ApiError::new(ErrorCode::NotFoundPayment, "no such payment"),
        PaymentError::Rule(rule) => rule_error(rule),
        PaymentError::BillingKeyNotFound => not_found_billing(),
        PaymentError::Billing(rule) => billing_rule_error(rule),
        PaymentError::Concurrent => ApiError::new(
            ErrorCode::AlreadyProcessingRequest,
            "another request is changing this payment; retry shortly and read the result",
        ),
        PaymentError::Declined {
            payment,
            code,
            message,
            acquirer_code,
        } => {
            let code = decline_code(code);
            ApiError::new(code, "the card was declined").with_details(ErrorDetails {
                acquirer_code,
                acquirer_message: Some(message),
                payment_key: Some(payment.id.to_string()),
            })
        }
        PaymentError::AcquirerUnavailable { payment } => ApiError::new(
            ErrorCode::AcquirerUnavailable,
            "the acquirer could not process the request; nothing was charged or refunded",
        )
        .with_details(ErrorDetails {
            payment_key: payment.map(|p| p.id.to_string()),
            ..ErrorDetails::default()
        }),
        PaymentError::NoRoute => ApiError::new(
            ErrorCode::NoAcquirerRoute,
            "no acquirer serves this card for this merchant and mode",
        ),
        PaymentError::BankUnavailable { message } => {
            tracing::warn!(%message, "bank unavailable");
            ApiError::new(
                ErrorCode::BankUnavailable,
                "the bank could not process the request; nothing was recorded, retrying is safe",
            )
        }
        PaymentError::RefundRefused { code } => {
            let (error, message) = match code {
                "HOLDER_MISMATCH" => (
                    ErrorCode::InvalidRefundAccountInfo,
                    "the refund account's holder name does not match the account; nothing was refunded",
                ),
                "UNKNOWN_ACCOUNT" | "ACCOUNT_CLOSED" => (
                    ErrorCode::InvalidRefundAccountNumber,
                    "the bank knows no open account with this number; nothing was refunded",
                ),
                _ => (
                    ErrorCode::RefundRejected,
                    "the bank refused the refund; nothing was refunded",
                ),
            };
            ApiError::new(error, message).with_param("refundReceiveAccount")
        }
        PaymentError::TransferRefused { payment, code } => {
            let (error, message) = match code {
                "INSUFFICIENT_FUNDS" => (
                    ErrorCode::RejectAccountPayment,
                    "the buyer's account balance does not cover the payment; nothing was debited",
                ),
                _ => (
                    ErrorCode::InvalidAuthorizeAuth,
                    "the bank no longer accepts the buyer's authorization of this transfer; nothing was debited",
                ),
            };
            ApiError::new(error, message).with_details(ErrorDetails {
                acquirer_code: Some(code.to_owned()),
                acquirer_message: None,
                payment_key: Some(payment.id.to_string()),
            })
        }
        PaymentError::PartialCancelWhileWaiting => ApiError::new(
            ErrorCode::NotAllowedPartialRefundWaitingDeposit,
            "a virtual account waiting for its deposit is cancelled whole: leave `cancelAmount` out",
        )
        .with_param("cancelAmount"),
        PaymentError::CancelRefused { message, acquirer_code } => {
            ApiError::new(ErrorCode::CancelRefused, "the acquirer refused the cancel").with_details(ErrorDetails {
                acquirer_code: Some(acquirer_code),
                acquirer_message: Some(message),
                payment_key: None,
            })
        }
        PaymentError::EncData(enc) => enc_error(enc),
        PaymentError::Forbidden => ApiError::new(
            ErrorCode::ClientKeyNotAllowed,
            "client keys can only start payments from a browser; use a secret key on your server",
        ),
        PaymentError::NotCancelable { status } => ApiError::new(
            if status == paygate_domain::payment::PaymentStatus::Canceled {
                ErrorCode::AlreadyCanceledPayment
            } else {
                ErrorCode::NotCancelablePayment
            },
            format!("the payment is {} and has nothing left to cancel", status.as_str()),
        ),
        PaymentError::RefundableMismatch { actual } => ApiError::new(
            ErrorCode::NotMatchesRefundableAmount,
            format!("the balance is {}; nothing was cancelled", actual.amount_minor()),
        )
        .with_param("refundableAmount"),
        PaymentError::Idempotency(refusal) => idempotency_error(refusal),
        PaymentError::Internal(internal) => internal_error(&internal),
    }
}

/// 409 while the first request under a key runs, 422 for another request under a used key.
pub fn idempotency_error(refusal: paygate_app::idempotency::IdempotencyRefusal) -> ApiError {
    use paygate_app::idempotency::IdempotencyRefusal;
    match refusal {
        IdempotencyRefusal::InFlight => {
            let mut error = ApiError::new(ErrorCode::IdempotentRequestProcessing, refusal.to_string());
            error.retry_after_secs = Some(1);
            error
        }
        IdempotencyRefusal::Reused => ApiError::new(ErrorCode::IdempotencyKeyReused, refusal.to_string()),
    }
}

pub fn enc_error(error: paygate_app::encdata::EncDataError) -> ApiError {
    use paygate_app::encdata::EncDataError;
    let (code, message) = match &error {
        EncDataError::UnknownKeyVersion(_) => (ErrorCode::UnknownEncKeyVersion, error.to_string()),
        EncDataError::DecryptionFailed => (ErrorCode::EncDataDecryptionFailed, error.to_string()),
        EncDataError::Encryption | EncDataError::InvalidKey => return ApiError::internal(&error),
        _ => (ErrorCode::InvalidEncData, error.to_string()),
    };
    ApiError::new(code, message).with_param("encData")
}

pub fn rule_error(rule: PaymentRuleError) -> ApiError {
    use paygate_domain::payment::CancelError;
    match rule {
        PaymentRuleError::Transition(t) => {
            use paygate_domain::payment::{PaymentEvent, PaymentStatus};
            let code = match (t.event, t.from) {
                (PaymentEvent::PartiallyCanceled | PaymentEvent::FullyCanceled, PaymentStatus::Canceled) => {
                    ErrorCode::AlreadyCanceledPayment
                }
                (PaymentEvent::PartiallyCanceled | PaymentEvent::FullyCanceled, _) => ErrorCode::NotCancelablePayment,
                // Its deadline passed (the expiry worker already moved it): Toss's code for a confirm too late.
                (_, PaymentStatus::Expired) => ErrorCode::NotFoundPaymentSession,
                // Approved, cancelled or failed already: a second confirm or authentication.
                (
                    _,
                    PaymentStatus::Done
                    | PaymentStatus::PartialCanceled
                    | PaymentStatus::Canceled
                    | PaymentStatus::Aborted,
                ) => ErrorCode::AlreadyProcessedPayment,
                _ => ErrorCode::InvalidPaymentStatus,
            };
            ApiError::new(code, format!("the payment is {}", t.from.as_str()))
        }
        PaymentRuleError::Cancel(CancelError::ExceedsBalance { balance, .. }) => ApiError::new(
            ErrorCode::NotCancelableAmount,
            format!("the cancellable balance is {}", balance.amount_minor()),
        )
        .with_param("cancelAmount"),
        PaymentRuleError::Cancel(other) => {
            ApiError::new(ErrorCode::InvalidFieldValue, other.to_string()).with_param("cancelAmount")
        }
        PaymentRuleError::ApprovalInProgress => ApiError::new(
            ErrorCode::AlreadyProcessingRequest,
            "the payment's approval is already being processed",
        ),
        PaymentRuleError::Expired => ApiError::new(ErrorCode::NotFoundPaymentSession, "the payment expired"),
        PaymentRuleError::AmountMismatch => {
            ApiError::new(ErrorCode::AmountMismatch, "the amount does not match the payment").with_param("amount")
        }
        PaymentRuleError::OrderMismatch => {
            ApiError::new(ErrorCode::OrderIdMismatch, "the orderId does not match the payment").with_param("orderId")
        }
        PaymentRuleError::BalanceMismatch { actual, .. } => ApiError::new(
            ErrorCode::BalanceMismatch,
            format!("the balance is {}; nothing was cancelled", actual.amount_minor()),
        )
        .with_param("expectedBalance"),
        PaymentRuleError::CancelTaxFreeExceeded { left } => ApiError::new(
            ErrorCode::InvalidFieldValue,
            format!(
                "`taxFreeAmount` exceeds `cancelAmount` or the tax-free amount left to cancel ({})",
                left.amount_minor()
            ),
        )
        .with_param("taxFreeAmount"),
    }
}

#[cfg(test)]
mod tests {
    use paygate_domain::payment::{PaymentEvent, PaymentStatus, TransitionError};

    use super::*;

    #[test]
    fn each_field_reason_and_decline_has_one_code() {
        let reasons = [
            (FieldReason::Missing, ErrorCode::MissingField),
            (FieldReason::Invalid, ErrorCode::InvalidFieldValue),
            (FieldReason::InvalidUrl, ErrorCode::InvalidUrl),
            (FieldReason::InvalidCardNumber, ErrorCode::InvalidCardNumber),
            (FieldReason::InvalidCardExpiration, ErrorCode::InvalidCardExpiration),
            (FieldReason::OrderIdMismatch, ErrorCode::OrderIdMismatch),
        ];
        for (reason, code) in reasons {
            let error = field_error(&FieldError::new("someField", reason, "`someField` is wrong"));
            assert_eq!(
                (error.code, error.param.as_deref()),
                (code, Some("someField")),
                "{reason:?}"
            );
            assert_eq!(error.code.status(), StatusCode::BAD_REQUEST, "{reason:?}");
        }
        for decline in DeclineCode::ALL {
            // The decline's own spelling is paygate's stable code for it.
            assert_eq!(decline_code(decline).as_str(), decline.as_str());
            // Toss's statuses: 403 for a refusal by the card company, 400 for the card's data.
            let status = decline_code(decline).status();
            assert!(
                status == StatusCode::BAD_REQUEST || status == StatusCode::FORBIDDEN,
                "{decline:?}"
            );
        }
    }

    fn transition(from: PaymentStatus, event: PaymentEvent) -> PaymentError {
        PaymentError::Rule(PaymentRuleError::Transition(TransitionError { from, event }))
    }

    #[test]
    fn payment_errors_map_to_stable_codes_and_transient_ones_are_never_stored() {
        use paygate_app::idempotency::IdempotencyRefusal;
        use paygate_app::payments::InternalError;
        let field = FieldError::invalid("amount", "`amount` must be between 1 and 10");
        let cases: Vec<(PaymentError, ErrorCode, bool)> = vec![
            (PaymentError::Field(field), ErrorCode::InvalidFieldValue, false),
            (PaymentError::DuplicateOrderId, ErrorCode::DuplicatedOrderId, false),
            (PaymentError::NotFound, ErrorCode::NotFoundPayment, false),
            (
                PaymentError::Rule(PaymentRuleError::Expired),
                ErrorCode::NotFoundPaymentSession,
                false,
            ),
            (
                PaymentError::Rule(PaymentRuleError::AmountMismatch),
                ErrorCode::AmountMismatch,
                false,
            ),
            // A step refused because the expiry worker already moved the payment: Toss's NOT_FOUND_PAYMENT_SESSION,
            // as errors.md promises (the in-process harness drives the expiry itself).
            (
                transition(PaymentStatus::Expired, PaymentEvent::Approved),
                ErrorCode::NotFoundPaymentSession,
                false,
            ),
            (
                transition(PaymentStatus::Expired, PaymentEvent::BuyerAuthenticated),
                ErrorCode::NotFoundPaymentSession,
                false,
            ),
            (
                transition(PaymentStatus::Done, PaymentEvent::Approved),
                ErrorCode::AlreadyProcessedPayment,
                false,
            ),
            (
                transition(PaymentStatus::Canceled, PaymentEvent::FullyCanceled),
                ErrorCode::AlreadyCanceledPayment,
                false,
            ),
            (
                PaymentError::NotCancelable {
                    status: PaymentStatus::Canceled,
                },
                ErrorCode::AlreadyCanceledPayment,
                false,
            ),
            (
                transition(PaymentStatus::Ready, PaymentEvent::Approved),
                ErrorCode::InvalidPaymentStatus,
                false,
            ),
            (
                transition(PaymentStatus::Aborted, PaymentEvent::FullyCanceled),
                ErrorCode::NotCancelablePayment,
                false,
            ),
            (PaymentError::NoRoute, ErrorCode::NoAcquirerRoute, false),
            (
                PaymentError::AcquirerUnavailable { payment: None },
                ErrorCode::AcquirerUnavailable,
                false,
            ),
            (
                PaymentError::CancelRefused {
                    message: "no".into(),
                    acquirer_code: "NO_APPROVAL".into(),
                },
                ErrorCode::CancelRefused,
                false,
            ),
            (PaymentError::Forbidden, ErrorCode::ClientKeyNotAllowed, false),
            (PaymentError::Concurrent, ErrorCode::AlreadyProcessingRequest, true),
            (
                PaymentError::Idempotency(IdempotencyRefusal::InFlight),
                ErrorCode::IdempotentRequestProcessing,
                true,
            ),
            (
                PaymentError::Internal(InternalError::Invariant("boom".into())),
                ErrorCode::FailedInternalSystemProcessing,
                true,
            ),
        ];
        for (error, code, transient) in cases {
            assert_eq!(payment_error_ref(&error).code, code, "{error:?}");
            assert_eq!(payment_error_ref(&error.clone_for_answer()).code, code, "{error:?}");
            assert_eq!(error.is_transient(), transient, "{error:?}");
        }
        let amount = payment_error(PaymentError::Field(FieldError::invalid("amount", "x")));
        assert_eq!(amount.param.as_deref(), Some("amount"));
    }

    #[test]
    fn errors_md_lists_every_code() {
        let doc = include_str!("../../../docs/errors.md");
        for code in ErrorCode::ALL {
            let row = match code.reason() {
                Some(reason) => format!("| ↳ `reason: {reason}` | {} |", code.status().as_u16()),
                None => format!("| `{}` | {} |", code.as_str(), code.status().as_u16()),
            };
            assert!(doc.contains(&row), "docs/errors.md has no row {row}");
        }
    }

    #[test]
    fn codes_are_unique_upper_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.detail();
            assert!(seen.insert(text), "duplicate {text}");
            assert!(text.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{text}");
            assert!(
                code.status().is_client_error() || code.status().is_server_error(),
                "{text}"
            );
        }
    }
}
