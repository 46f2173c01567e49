//! The OpenAPI 3.1 document (`GET /v1/openapi.json`) and the API reference page (`/docs`).
//!
//! The router and the document come from the same [`OpenApiRouter`]: a handler is routed only through its
//! `#[utoipa::path]` annotation, so an endpoint cannot exist without being documented, nor be documented at a path
//! it is not served on. Schemas come from the wire types themselves (`ToSchema`), their enums from the domain's
//! own lists. What annotations cannot say well is added here, in one pass over the generated document:
//! - every operation's error answers, by status, one example per code (from [`operation_errors`]), with the
//!   `when` column of `docs/errors.md` as each example's summary;
//! - the `Idempotency-Key` header on every `POST` under `/v1`;
//! - the security schemes (Toss's Basic `secretKey:`, or Bearer);
//! - `required` on every field of an answer: paygate, like Toss, always sends every key (`null` where it does not
//!   apply), except the few named in [`OPTIONAL_ANSWER_FIELDS`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use paygate_domain::event::EventType;

use crate::error::ErrorCode;
use crate::routes::{
    billing, billing_pages, cash_receipts, encryption_keys, health, hosted, merchants, payments, virtual_accounts,
    webhooks,
};
use crate::AppState;

/// The API under `/v1` (authenticated by the caller's layers), as a router that also carries its document.
pub fn v1_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(merchants::me))
        .routes(routes!(encryption_keys::get))
        .routes(routes!(encryption_keys::rotate))
        .routes(routes!(encryption_keys::checkout_key))
        .routes(routes!(webhooks::get_settings, webhooks::set_settings))
        .routes(routes!(payments::create, payments::list))
        .routes(routes!(payments::key_in))
        .routes(routes!(payments::confirm))
        .routes(routes!(payments::get_by_order))
        .routes(routes!(payments::get))
        .routes(routes!(payments::cancel))
        .routes(routes!(payments::authenticate))
        .routes(routes!(payments::transactions))
        .routes(routes!(virtual_accounts::issue))
        .routes(routes!(cash_receipts::issue, cash_receipts::list))
        .routes(routes!(cash_receipts::get))
        .routes(routes!(cash_receipts::cancel))
        .routes(routes!(billing::issue_card))
        .routes(routes!(billing_pages::issue))
        .routes(routes!(billing_pages::start))
        .routes(routes!(billing::list))
        .routes(routes!(billing::charge, billing::get, billing::delete))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::get, webhooks::patch, webhooks::delete))
        .routes(routes!(webhooks::roll_secret))
        .routes(routes!(webhooks::endpoint_deliveries))
        .routes(routes!(webhooks::list_events))
        .routes(routes!(webhooks::get_event))
        .routes(routes!(webhooks::resend))
}

/// The documented routes outside `/v1`'s authentication: operations' probes and the document itself.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(virtual_accounts::bank_notification))
}

/// The hosted pages (HTML for the buyer) and the assets the gateway serves itself: documented, outside `/v1`.
pub fn pages_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(hosted::entry))
        .routes(routes!(hosted::show))
        .routes(routes!(hosted::pay))
        .routes(routes!(hosted::cash_receipt_page))
        .routes(routes!(hosted::virtual_account))
        .routes(routes!(hosted::abandon))
        .routes(routes!(hosted::transfer, hosted::transfer_return))
        .routes(routes!(hosted::challenge_page, hosted::challenge))
        .routes(routes!(hosted::receipt))
        .routes(routes!(billing_pages::show))
        .routes(routes!(billing_pages::card))
        .routes(routes!(billing_pages::challenge_page, billing_pages::challenge))
        .routes(routes!(hosted::stylesheet))
        .routes(routes!(hosted::receipt_script))
        .routes(routes!(hosted::favicon))
        .routes(routes!(hosted::sdk))
        .routes(routes!(hosted::sdk_toss_path))
}

/// The reference page: Swagger UI, its assets compiled into the binary (no CDN), reading `/v1/openapi.json`.
pub fn reference_page() -> axum::Router<AppState> {
    let config = utoipa_swagger_ui::Config::new(["/v1/openapi.json"])
        // Swagger UI would otherwise send the document to swagger.io's online validator.
        .validator_url("none")
        .display_operation_id(true)
        .try_it_out_enabled(false)
        .persist_authorization(false);
    utoipa_swagger_ui::SwaggerUi::new("/docs").config(config).into()
}

/// The document, as served.
pub fn document() -> OpenApi {
    let (_, v1) = v1_router().split_for_parts();
    let (_, public) = public_router().split_for_parts();
    let (_, pages) = pages_router().split_for_parts();
    let mut doc = base();
    doc.merge(v1);
    doc.merge(public);
    doc.merge(pages);
    add_webhooks(&mut doc);
    finish(&mut doc);
    doc
}

/// The document's JSON (compact: about 180 KB, 330 KB pretty-printed), built once per process.
pub fn document_json() -> &'static [u8] {
    static JSON: OnceLock<Vec<u8>> = OnceLock::new();
    JSON.get_or_init(|| serde_json::to_vec(&document()).unwrap_or_default())
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "openapi", tag = "Operations",
    summary = "This OpenAPI 3.1 document", security(()),
    responses((status = 200, description = "The document", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], document_json())
}

const DESCRIPTION: &str = "\
paygate's merchant API. It follows Toss Payments' v1 API: a merchant's Toss code works by changing the base URL and \
the keys (docs/toss-compat.md lists every difference).\n\n\
**Keys.** Send the secret key (`test_sk_…`, `live_sk_…`) as `Authorization: Basic base64(secretKey + \":\")`, as Toss \
does, or as `Authorization: Bearer secretKey`. The client key (`*_ck_…`) may only start payments from a browser. The \
key's mode (test or live) decides which data a call sees.\n\n\
**Amounts** are integers in the currency's minor unit (won). **Instants** are ISO 8601 in KST with milliseconds.\n\n\
**Retries.** Every `POST` takes an `Idempotency-Key` header: a retry with the same key and body answers the stored \
answer (`Idempotent-Replayed: true`) and changes nothing.\n\n\
**Errors** are `{code, message, requestId}` objects (docs/errors.md); `code` is stable. A `202` answer means the \
acquirer's answer is not known yet: the result follows by lookup or webhook, never guessed.";

fn base() -> OpenApi {
    use utoipa::openapi::tag::TagBuilder;
    use utoipa::openapi::{InfoBuilder, LicenseBuilder, OpenApiBuilder};
    let tag = |name: &str, description: &str| TagBuilder::new().name(name).description(Some(description)).build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("paygate")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(DESCRIPTION))
                .license(Some(
                    LicenseBuilder::new()
                        .name("Apache-2.0")
                        .identifier(Some("Apache-2.0"))
                        .build(),
                ))
                .build(),
        )
        .tags(Some([
            tag(
                "Payments",
                "Card payments: key-in, paygate's checkout page, confirm, lookups, cancels, transactions",
            ),
            tag(
                "Billing",
                "Billing keys (빌링키): register a card once, charge it later",
            ),
            tag(
                "Virtual accounts",
                "Virtual accounts (가상계좌): issue one for a payment; the bank's deposit notifications pay it",
            ),
            tag(
                "Cash receipts",
                "Cash receipts (현금영수증): issue, cancel and list; each is reported to the tax authority",
            ),
            tag("Webhooks", "Webhook endpoints, events and their deliveries"),
            tag("Merchant", "The merchant's own settings and keys"),
            tag("Operations", "Probes, metrics and this document: no key needed"),
            tag(
                "Hosted pages",
                "paygate's pages for the buyer (HTML) and the assets it serves itself: no key needed",
            ),
        ]))
        .build()
}

/// The operations that may be called with the client key (the browser SDK and paygate's pages).
const CLIENT_KEY_OPERATIONS: [&str; 3] = ["createPayment", "authenticateCheckout", "startBillingAuth"];

/// Answer fields that are left out rather than sent as `null` (`skip_serializing_if`), per schema.
pub const OPTIONAL_ANSWER_FIELDS: [(&str, &str); 3] = [
    ("WebhookEndpoint", "secret"),
    ("Delivery", "attemptLog"),
    ("Event", "deliveries"),
];

/// What a card decline can answer.
const DECLINES: [ErrorCode; 6] = [
    ErrorCode::RejectCardPayment,
    ErrorCode::InvalidCardLostOrStolen,
    ErrorCode::InvalidCardPassword,
    ErrorCode::CardAuthenticationRequired,
    ErrorCode::RejectCardCompany,
    ErrorCode::InvalidCardExpiration,
];

/// The errors particular to each operation; [`errors_of`] adds the ones every call can meet.
pub fn operation_errors(operation_id: &str) -> Vec<ErrorCode> {
    use ErrorCode as E;
    let mut codes: Vec<ErrorCode> = match operation_id {
        "keyIn" => vec![
            E::InvalidCardNumber,
            E::InvalidCardExpiration,
            E::InvalidUrl,
            E::InvalidEncData,
            E::UnknownEncKeyVersion,
            E::EncDataDecryptionFailed,
            E::DuplicatedOrderId,
            E::AcquirerUnavailable,
            E::NoAcquirerRoute,
            E::AlreadyProcessingRequest,
        ],
        "createPayment" => vec![E::InvalidUrl, E::DuplicatedOrderId],
        "authenticateCheckout" => vec![
            E::NotFoundPayment,
            E::InvalidCardNumber,
            E::InvalidCardExpiration,
            E::NotFoundPaymentSession,
            E::AlreadyProcessedPayment,
            E::InvalidPaymentStatus,
            E::AlreadyProcessingRequest,
            E::AcquirerUnavailable,
            E::NoAcquirerRoute,
        ],
        "confirmPayment" => vec![
            E::NotFoundPayment,
            E::AmountMismatch,
            E::OrderIdMismatch,
            E::NotFoundPaymentSession,
            E::AlreadyProcessedPayment,
            E::InvalidPaymentStatus,
            E::AlreadyProcessingRequest,
            E::AcquirerUnavailable,
            // Bank methods chosen on the hosted page: the bank refused a transfer's debit, or could not be asked.
            E::RejectAccountPayment,
            E::InvalidAuthorizeAuth,
            E::BankUnavailable,
        ],
        "getPayment" | "getPaymentByOrder" => vec![E::NotFoundPayment],
        "listPayments" => vec![E::InvalidDate],
        "issueCashReceipt" => vec![
            E::DuplicatedCashReceipt,
            E::InvalidBusinessNumber,
            E::InvalidCashReceiptInfo,
            E::InvalidRegistrationNumberType,
            E::AlreadyProcessingRequest,
        ],
        "cancelCashReceipt" => vec![
            E::NotFoundCashReceipt,
            E::NotCancelableAmount,
            E::AlreadyProcessingRequest,
        ],
        "getCashReceipt" => vec![E::NotFoundCashReceipt],
        "listCashReceipts" => vec![E::InvalidDate, E::ExceedMaxQueryLimit],
        "cancelPayment" => vec![
            E::NotFoundPayment,
            E::AlreadyCanceledPayment,
            E::NotCancelablePayment,
            E::NotCancelableAmount,
            E::BalanceMismatch,
            E::NotMatchesRefundableAmount,
            E::CancelRefused,
            E::AcquirerUnavailable,
            E::AlreadyProcessingRequest,
            E::InvalidBank,
            E::InvalidRefundAccountInfo,
            E::InvalidRefundAccountNumber,
            E::RefundRejected,
            E::NotAllowedPartialRefundWaitingDeposit,
        ],
        "listTransactions" => vec![E::InvalidDate],
        "issueBillingKeyByCard" => vec![
            E::InvalidCardNumber,
            E::InvalidCardExpiration,
            E::AcquirerUnavailable,
            E::NoAcquirerRoute,
            E::AlreadyProcessingRequest,
        ],
        "issueBillingKeyByAuthKey" => vec![
            E::InvalidBillingAuth,
            E::NotMatchesCustomerKey,
            E::NotFoundBilling,
            E::AlreadyProcessingRequest,
        ],
        "startBillingAuth" => vec![E::InvalidUrl],
        "chargeBillingKey" => vec![
            E::NotFoundBilling,
            E::InvalidBillKeyRequest,
            E::NotMatchesCustomerKey,
            E::DuplicatedOrderId,
            E::AcquirerUnavailable,
            E::NoAcquirerRoute,
            E::AlreadyProcessingRequest,
        ],
        "getBillingKey" => vec![E::NotFoundBilling],
        "deleteBillingKey" => vec![E::NotFoundBilling, E::AlreadyProcessingRequest],
        "createWebhookEndpoint" => vec![E::InvalidUrl, E::TooManyWebhooks],
        "updateWebhookEndpoint" => vec![E::NotFoundWebhook, E::InvalidUrl, E::AlreadyProcessingRequest],
        "getWebhookEndpoint" | "deleteWebhookEndpoint" | "listWebhookDeliveries" => vec![E::NotFoundWebhook],
        "rollWebhookSecret" => vec![E::NotFoundWebhook, E::AlreadyProcessingRequest],
        "getEvent" | "resendEvent" | "listEvents" => vec![E::NotFoundEvent],
        "updateMerchantSettings" => vec![E::InvalidUrl],
        "rotateEncryptionKey" => vec![E::AlreadyProcessingRequest],
        "issueVirtualAccount" => vec![
            E::InvalidBank,
            E::ExceedMaxValidHours,
            E::ExceedMaxDueDate,
            E::InvalidDate,
            E::InvalidValidHoursWithDueDate,
            E::InvalidUrl,
            E::DuplicatedOrderId,
            E::BankUnavailable,
        ],
        "bankDepositNotification" => vec![
            E::NotFound,
            E::UnauthorizedKey,
            E::NotFoundPayment,
            E::AlreadyProcessingRequest,
        ],
        _ => vec![],
    };
    if matches!(
        operation_id,
        "keyIn" | "authenticateCheckout" | "confirmPayment" | "issueBillingKeyByCard" | "chargeBillingKey"
    ) {
        codes.extend(DECLINES);
    }
    codes
}

/// Every error an operation can answer: its own, plus those of the layers in front of it.
fn errors_of(path: &str, method: &str, operation: &Operation) -> BTreeSet<ErrorCodeKey> {
    use ErrorCode as E;
    let id = operation.operation_id.as_deref().unwrap_or_default();
    if is_page(operation) {
        // A page answers its own errors as HTML pages (documented on it); only the edge's bounds answer JSON.
        return [E::RequestTimeout, E::ServiceOverloaded]
            .into_iter()
            .map(ErrorCodeKey)
            .collect();
    }
    let mut codes: Vec<ErrorCode> = operation_errors(id);
    // Every call: the edge's bounds and internal failures.
    codes.extend([
        E::RequestTimeout,
        E::ServiceOverloaded,
        E::ServiceUnavailable,
        E::FailedInternalSystemProcessing,
    ]);
    if path.starts_with("/v1/") && id != "openapi" {
        codes.extend([
            E::UnauthorizedKey,
            E::InvalidApiKey,
            E::RevokedApiKey,
            E::MerchantNotActive,
            E::TooManyRequests,
        ]);
        if !CLIENT_KEY_OPERATIONS.contains(&id) {
            codes.push(E::ClientKeyNotAllowed);
        }
    }
    if operation.request_body.is_some() {
        codes.extend([
            E::MalformedJson,
            E::MissingField,
            E::InvalidFieldType,
            E::InvalidFieldValue,
            E::UnsupportedMediaType,
            E::PayloadTooLarge,
        ]);
    }
    let has_query = operation.parameters.iter().flatten().any(|p| match p {
        RefOr::T(p) => p.parameter_in == ParameterIn::Query,
        RefOr::Ref(_) => false,
    });
    if has_query {
        codes.extend([E::MissingField, E::InvalidFieldType, E::InvalidFieldValue]);
    }
    if method == "post" && path.starts_with("/v1/") {
        codes.extend([
            E::InvalidIdempotencyKey,
            E::IdempotencyKeyReused,
            E::IdempotentRequestProcessing,
        ]);
    }
    codes.into_iter().map(ErrorCodeKey).collect()
}

fn is_page(operation: &Operation) -> bool {
    operation.tags.iter().flatten().any(|t| t == "Hosted pages")
}

/// Orders codes by their most precise spelling, so examples come out in a stable order.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ErrorCodeKey(ErrorCode);

impl Ord for ErrorCodeKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.detail().cmp(other.0.detail())
    }
}

impl PartialOrd for ErrorCodeKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// `docs/errors.md`'s `when` column, by the code's most precise spelling.
fn error_descriptions() -> BTreeMap<&'static str, &'static str> {
    let doc = include_str!("../../../docs/errors.md");
    let mut found = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // `| code | status | when |` splits into ["", code, status, when, ""].
        let [_, code, _, when, _] = cells.as_slice() else {
            continue;
        };
        let code = code
            .trim_start_matches("↳ ")
            .trim_matches('`')
            .trim_start_matches("reason: ");
        if !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            found.insert(code, *when);
        }
    }
    found
}

fn error_schema() -> Object {
    let mut codes: Vec<&'static str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    codes.dedup();
    let codes: BTreeSet<&'static str> = codes.into_iter().collect();
    let reasons: Vec<&'static str> = ErrorCode::ALL.iter().filter_map(|c| c.reason()).collect();
    let text = |description: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
            .build()
    };
    ObjectBuilder::new()
        .description(Some("Every failure's answer (docs/errors.md)."))
        .property(
            "code",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(codes))
                .description(Some(
                    "Stable; code against it, not against `message`. New codes may be added.",
                )),
        )
        .required("code")
        .property("message", text("For people; may change."))
        .required("message")
        .property(
            "requestId",
            text("Matches the `X-Request-Id` header; quote it when asking for support."),
        )
        .required("requestId")
        .property(
            "param",
            text("The offending request field (camelCase), when there is one."),
        )
        .property(
            "reason",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(reasons))
                .description(Some("paygate's finer kind of an `INVALID_REQUEST`.")),
        )
        .property(
            "acquirerCode",
            text("A decline's or refused cancel's code from the acquirer."),
        )
        .property("acquirerMessage", text("The acquirer's own words."))
        .property(
            "paymentKey",
            text("The payment a declined request recorded (as `ABORTED`, with its `failure`)."),
        )
        .build()
}

fn finish(doc: &mut OpenApi) {
    let descriptions = error_descriptions();
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert("Error".into(), RefOr::T(Schema::Object(error_schema())));
    components.security_schemes.insert(
        "basicAuth".into(),
        RefOr::T(SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Basic)
                .description(Some("Toss's form: the secret key as the user name, an empty password."))
                .build(),
        )),
    );
    components.security_schemes.insert(
        "bearerAuth".into(),
        RefOr::T(SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("The secret (or client) key as a bearer token."))
                .build(),
        )),
    );
    doc.security = Some(vec![
        SecurityRequirement::new("basicAuth", Vec::<String>::new()),
        SecurityRequirement::new("bearerAuth", Vec::<String>::new()),
    ]);
    add_links(doc);
    let request_schemas = request_schemas(doc);
    let mut examples = BTreeMap::new();
    for (path, item) in doc.paths.paths.iter_mut() {
        let methods = [
            ("get", item.get.as_mut()),
            ("post", item.post.as_mut()),
            ("patch", item.patch.as_mut()),
            ("delete", item.delete.as_mut()),
        ];
        for (method, operation) in methods {
            let Some(operation) = operation else { continue };
            add_errors(path, method, operation, &descriptions, &mut examples);
            if method == "post" && path.starts_with("/v1/") {
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(RefOr::T(idempotency_header()));
            }
        }
    }
    if let Some(components) = doc.components.as_mut() {
        components.examples.extend(examples);
        for (name, schema) in components.schemas.iter_mut() {
            if name == "Error" || request_schemas.contains(name) {
                continue;
            }
            if let RefOr::T(Schema::Object(object)) = schema {
                let optional: Vec<&str> = OPTIONAL_ANSWER_FIELDS
                    .iter()
                    .filter(|(schema, _)| schema == name)
                    .map(|(_, field)| *field)
                    .collect();
                object.required = object
                    .properties
                    .keys()
                    .filter(|field| !optional.contains(&field.as_str()))
                    .cloned()
                    .collect();
            }
        }
    }
}

/// Which answer's fields feed which operation's path parameter: OpenAPI links, for readers and for the fuzzer's
/// sequences (create, then look up, change and cancel what was created).
const LINKS: [(&str, &str, &str, &str); 16] = [
    // (from operation, to operation, path parameter, field of the `200` answer)
    ("keyIn", "getPayment", "paymentKey", "paymentKey"),
    ("keyIn", "cancelPayment", "paymentKey", "paymentKey"),
    ("keyIn", "getPaymentByOrder", "orderId", "orderId"),
    ("createPayment", "getPayment", "paymentKey", "paymentKey"),
    ("createPayment", "authenticateCheckout", "paymentKey", "paymentKey"),
    ("chargeBillingKey", "getPayment", "paymentKey", "paymentKey"),
    ("chargeBillingKey", "cancelPayment", "paymentKey", "paymentKey"),
    ("issueBillingKeyByCard", "getBillingKey", "billingKey", "billingKey"),
    ("issueBillingKeyByCard", "chargeBillingKey", "billingKey", "billingKey"),
    ("issueBillingKeyByCard", "deleteBillingKey", "billingKey", "billingKey"),
    ("issueBillingKeyByAuthKey", "getBillingKey", "billingKey", "billingKey"),
    ("createWebhookEndpoint", "getWebhookEndpoint", "id", "id"),
    ("createWebhookEndpoint", "updateWebhookEndpoint", "id", "id"),
    ("createWebhookEndpoint", "deleteWebhookEndpoint", "id", "id"),
    ("createWebhookEndpoint", "rollWebhookSecret", "id", "id"),
    ("createWebhookEndpoint", "listWebhookDeliveries", "id", "id"),
];

fn add_links(doc: &mut OpenApi) {
    use utoipa::openapi::link::LinkBuilder;
    for item in doc.paths.paths.values_mut() {
        for operation in [&mut item.get, &mut item.post, &mut item.patch, &mut item.delete]
            .into_iter()
            .flatten()
        {
            let id = operation.operation_id.clone().unwrap_or_default();
            let Some(RefOr::T(ok)) = operation.responses.responses.get_mut("200") else {
                continue;
            };
            for (_, to, parameter, field) in LINKS.iter().filter(|(from, ..)| *from == id) {
                let link = LinkBuilder::new()
                    .operation_id(*to)
                    .parameter(*parameter, format!("$response.body#/{field}"))
                    .description(format!("`{field}` of the answer is `{parameter}` of `{to}`"))
                    .build();
                ok.links.insert((*to).to_owned(), RefOr::T(link));
            }
        }
    }
}

/// The object an event's `data` is.
fn event_data_schema(event: EventType) -> &'static str {
    match event {
        EventType::PaymentStatusChanged => "Payment",
        EventType::BillingIssued => "Billing",
        EventType::BillingDeleted => "BillingDeletedData",
        EventType::WebhookEndpointDisabled => "EndpointDisabledData",
        EventType::DepositCallback => "DepositCallbackData",
        EventType::CashReceiptStatusChanged => "CashReceipt",
    }
}

fn event_summary(event: EventType) -> &'static str {
    match event {
        EventType::PaymentStatusChanged => "A payment's status changed (approved, cancelled, failed, expired…)",
        EventType::BillingIssued => "A billing key was issued (paygate's; Toss sends no such event)",
        EventType::BillingDeleted => "A billing key was deleted",
        EventType::WebhookEndpointDisabled => {
            "A webhook endpoint was disabled after failing too long (sent to the merchant's other endpoints)"
        }
        EventType::DepositCallback => {
            "A virtual account's payment changed status (issued, deposited, expired, cancelled): `data`'s fields are also at the top level, as Toss sends them"
        }
        EventType::CashReceiptStatusChanged => {
            "A cash receipt was requested, or the tax authority registered or refused it (paygate's event)"
        }
    }
}

/// The webhooks paygate sends (OpenAPI 3.1's `webhooks`): one per event type, the envelope with its `data`, the
/// Standard Webhooks headers that sign it.
fn add_webhooks(doc: &mut OpenApi) {
    use paygate_app::billing::wire::BillingDeletedData;
    use paygate_app::outbox::{DepositCallbackData, EndpointDisabledData, WebhookEnvelope};
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
    use utoipa::openapi::request_body::RequestBodyBuilder;
    use utoipa::openapi::schema::AllOfBuilder;
    use utoipa::openapi::PathsBuilder;
    use utoipa::{PartialSchema, ToSchema};
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, schema) in [
        (WebhookEnvelope::name(), WebhookEnvelope::schema()),
        (EndpointDisabledData::name(), EndpointDisabledData::schema()),
        (BillingDeletedData::name(), BillingDeletedData::schema()),
        (DepositCallbackData::name(), DepositCallbackData::schema()),
    ] {
        components.schemas.insert(name.into_owned(), schema);
    }
    let header = |name: &str, description: &str| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Header)
            .required(Required::True)
            .description(Some(description))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build()
    };
    let mut paths = PathsBuilder::new();
    for event in EventType::ALL {
        let body = AllOfBuilder::new()
            .item(Ref::from_schema_name("WebhookEnvelope"))
            .item(ObjectBuilder::new().property("data", Ref::from_schema_name(event_data_schema(event))));
        let operation = OperationBuilder::new()
            .operation_id(Some(event.as_str()))
            .tag("Webhooks")
            .summary(Some(event_summary(event)))
            .description(Some(
                "POSTed to every enabled endpoint subscribed to the event type, signed with the endpoint's secret \
                 (Standard Webhooks: verify `webhook-signature` over `{webhook-id}.{webhook-timestamp}.{body}`; \
                 docs/webhooks.md). Any 2xx answer within the timeout acknowledges it; anything else is retried on \
                 `outbox.webhook_retry_schedule_secs`, with the same `webhook-id`.",
            ))
            .parameter(header(
                "webhook-id",
                "The event's ID, the same on every retry: deduplicate on it.",
            ))
            .parameter(header(
                "webhook-timestamp",
                "Unix seconds of this attempt: refuse old ones.",
            ))
            .parameter(header(
                "webhook-signature",
                "Space-separated `v1,<base64 HMAC-SHA256>`: one per signing secret (two while one is rolled).",
            ))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content("application/json", ContentBuilder::new().schema(Some(body)).build())
                    .build(),
            ))
            .response(
                "2XX",
                ResponseBuilder::new()
                    .description("Acknowledged: not sent again")
                    .build(),
            )
            .build();
        paths = paths.path(event.as_str(), PathItem::new(HttpMethod::Post, operation));
    }
    doc.webhooks = Some(paths.build());
}

fn idempotency_header() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "1 to 255 printable ASCII characters. A retry with the same key and body answers the first answer \
             (`Idempotent-Replayed: true`); another request under a used key answers `IDEMPOTENCY_KEY_REUSED`. \
             Kept 24 hours.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(255))
                .pattern(Some("^[\\x21-\\x7E]+$"))
                .examples(["order-20261123-0001-keyin"]),
        ))
        .build()
}

/// The names of the schemas request bodies use, and everything they refer to.
fn request_schemas(doc: &OpenApi) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for item in doc.paths.paths.values() {
        for operation in [&item.get, &item.post, &item.patch, &item.delete, &item.put]
            .into_iter()
            .flatten()
        {
            if let Some(RefOr::T(body)) = &operation.request_body {
                for content in body.content.values() {
                    collect_refs(&serde_json::to_value(content).unwrap_or_default(), &mut names);
                }
            }
        }
    }
    let schemas = doc.components.as_ref().map(|c| &c.schemas);
    let mut queue: Vec<String> = names.iter().cloned().collect();
    while let Some(name) = queue.pop() {
        let Some(schema) = schemas.and_then(|s| s.get(&name)) else {
            continue;
        };
        let mut found = BTreeSet::new();
        collect_refs(&serde_json::to_value(schema).unwrap_or_default(), &mut found);
        for name in found {
            if names.insert(name.clone()) {
                queue.push(name);
            }
        }
    }
    names
}

fn collect_refs(value: &serde_json::Value, names: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if key == "$ref" {
                    if let Some(name) = value.as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
                        names.insert(name.to_owned());
                    }
                } else {
                    collect_refs(value, names);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, names)),
        _ => {}
    }
}

/// Adds an operation's error answers. Each code's example is written once, in `components.examples`, and
/// referred to from every operation that can answer it.
fn add_errors(
    path: &str,
    method: &str,
    operation: &mut Operation,
    descriptions: &BTreeMap<&str, &str>,
    examples: &mut BTreeMap<String, RefOr<utoipa::openapi::example::Example>>,
) {
    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for ErrorCodeKey(code) in errors_of(path, method, operation) {
        by_status.entry(code.status().as_u16()).or_default().push(code);
    }
    for (status, codes) in by_status {
        let listed: Vec<String> = codes.iter().map(|c| format!("`{}`", c.detail())).collect();
        let mut refs = Vec::new();
        for code in &codes {
            let name = code.detail();
            examples.entry(name.to_owned()).or_insert_with(|| {
                let when = descriptions.get(name).copied().unwrap_or_default();
                let mut value = serde_json::json!({
                    "code": code.as_str(),
                    "message": when.replace('`', ""),
                    "requestId": "req_01KAR3Q4ZC8V6N2M0T7Y5B1D9F",
                });
                if let Some(reason) = code.reason() {
                    value["reason"] = reason.into();
                }
                RefOr::T(ExampleBuilder::new().summary(when).value(Some(value)).build())
            });
            refs.push((name, RefOr::Ref(Ref::new(format!("#/components/examples/{name}")))));
        }
        let content = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Error")))
            .examples_from_iter(refs);
        let mut response = ResponseBuilder::new()
            .description(format!("{}: {}", reason_phrase(status), listed.join(", ")))
            .content("application/json", content.build());
        if matches!(status, 429 | 503) {
            response = response.header(
                "Retry-After",
                utoipa::openapi::HeaderBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                    .description(Some("Seconds to wait before retrying."))
                    .build(),
            );
        }
        operation
            .responses
            .responses
            .insert(status.to_string(), RefOr::T(response.build()));
    }
}

fn reason_phrase(status: u16) -> &'static str {
    axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn operations(doc: &OpenApi) -> Vec<(String, &'static str, &Operation)> {
        let mut all = Vec::new();
        for (path, item) in &doc.paths.paths {
            for (method, operation) in [
                ("get", &item.get),
                ("post", &item.post),
                ("patch", &item.patch),
                ("delete", &item.delete),
            ] {
                if let Some(operation) = operation {
                    all.push((path.clone(), method, operation));
                }
            }
        }
        all
    }

    #[test]
    fn every_error_code_is_in_the_document() {
        let doc = document();
        let json = serde_json::to_string(&doc).unwrap();
        let mut answered = BTreeSet::new();
        for (path, method, operation) in operations(&doc) {
            for ErrorCodeKey(code) in errors_of(&path, method, operation) {
                answered.insert(code.detail());
            }
        }
        for code in ErrorCode::ALL {
            // Unrouted requests have no operation to list them under; the Error schema's enum names them.
            if matches!(code, ErrorCode::NotFound | ErrorCode::MethodNotAllowed) {
                assert!(json.contains(&format!("\"{}\"", code.as_str())), "{code:?}");
                continue;
            }
            assert!(
                answered.contains(code.detail()),
                "no operation answers {}",
                code.detail()
            );
        }
    }

    #[test]
    fn every_error_code_has_a_description_in_errors_md() {
        let descriptions = error_descriptions();
        for code in ErrorCode::ALL {
            assert!(descriptions.contains_key(code.detail()), "{}", code.detail());
        }
    }

    #[test]
    fn every_operation_has_an_id_a_summary_a_tag_and_an_example_per_error() {
        let doc = document();
        let mut ids = BTreeSet::new();
        for (path, method, operation) in operations(&doc) {
            let id = operation.operation_id.clone().unwrap_or_default();
            assert!(!id.is_empty(), "{method} {path}");
            assert!(ids.insert(id.clone()), "duplicate operationId {id}");
            assert!(operation.summary.is_some(), "{id}");
            assert!(operation.tags.as_ref().is_some_and(|t| !t.is_empty()), "{id}");
            let success = operation.responses.responses.keys().any(|s| s.starts_with('2'));
            assert!(success, "{id} documents no success answer");
            if let Some(RefOr::T(body)) = operation.request_body.as_ref().filter(|_| !is_page(operation)) {
                let json = serde_json::to_value(body).unwrap();
                assert!(
                    json.to_string().contains("\"example\""),
                    "{id}'s request body has no example"
                );
            }
        }
        assert!(ids.len() >= 30, "{ids:?}");
        for (from, to, ..) in LINKS {
            assert!(ids.contains(from) && ids.contains(to), "link {from} -> {to}");
        }
    }

    #[test]
    fn answers_always_carry_every_field_and_requests_keep_theirs_optional() {
        let doc = document();
        let schemas = &doc.components.as_ref().unwrap().schemas;
        let object = |name: &str| match schemas.get(name) {
            Some(RefOr::T(Schema::Object(object))) => object.clone(),
            _ => panic!("{name} is not an object schema"),
        };
        let payment = object("Payment");
        for field in [
            "card",
            "cancels",
            "virtualAccount",
            "failure",
            "approvedAt",
            "lastTransactionKey",
        ] {
            assert!(payment.required.iter().any(|r| r == field), "Payment.{field}");
        }
        let endpoint = object("WebhookEndpoint");
        assert!(!endpoint.required.iter().any(|r| r == "secret"));
        let key_in = object("KeyInBody");
        assert!(key_in.required.iter().any(|r| r == "amount"));
        assert!(
            !key_in.required.iter().any(|r| r == "cardNumber"),
            "encData may replace it"
        );
    }

    #[test]
    fn enums_are_spelled_from_the_domain() {
        let json = String::from_utf8(document_json().to_vec()).unwrap();
        for status in paygate_domain::payment::PaymentStatus::ALL {
            assert!(json.contains(&format!("\"{}\"", status.as_str())), "{status:?}");
        }
        assert!(json.contains("\"카드\""));
        assert!(json.contains("\"PARTIAL_CANCELED\""));
        assert!(json.contains("\"BILLING_DELETED\""));
    }

    #[test]
    fn every_event_type_is_a_webhook_of_the_document() {
        let doc = document();
        let webhooks = doc.webhooks.as_ref().unwrap();
        for event in EventType::ALL {
            let item = webhooks.paths.get(event.as_str()).unwrap();
            let body = serde_json::to_string(&item.post.as_ref().unwrap().request_body).unwrap();
            assert!(body.contains(event_data_schema(event)), "{event:?}");
        }
    }
}
