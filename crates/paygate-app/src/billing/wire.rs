//! The JSON shape of a billing key: Toss Payments' v1 Billing object field for field (docs/toss-compat.md), plus
//! paygate's extras under names Toss does not use. Shared by the API answers and the `BILLING_ISSUED` event.

use paygate_domain::billing::BillingKey;
use serde::Serialize;
use utoipa::ToSchema;

use crate::instant::rfc3339;
use crate::schema;

/// A billing key as Toss's Billing object shapes it. Every field is always present; `null` where it does not apply.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Billing)]
pub struct BillingBody {
    #[schema(example = "mid_01M8XAPDMNSGF2TRAAG3F8PKT7")]
    m_id: String,
    #[schema(example = "customer-1042")]
    customer_key: String,
    /// When the issuer verified the card.
    #[schema(schema_with = schema::instant)]
    authenticated_at: String,
    #[schema(schema_with = schema::method)]
    method: &'static str,
    /// The key to charge; unguessable, bound to the merchant, the mode and the `customerKey`.
    #[schema(example = "bil_01M8XB3D2K7W9Q5T1E4R8Y6V3H")]
    billing_key: String,
    card: BillingCardBody,
    /// The issuer's Korean short name (`국민`, `하나`…), as Toss's API version 2022-11-16 sends it.
    #[schema(example = "국민")]
    card_company: &'static str,
    /// The masked card number again, as Toss's `cardNumber`.
    #[schema(example = "433000******0003")]
    card_number: String,
    // paygate's own fields.
    /// `ACTIVE`, or `DELETED` (charges refused, card erased).
    #[schema(schema_with = billing_key_status)]
    billing_key_status: &'static str,
    #[schema(schema_with = schema::nullable_instant)]
    deleted_at: Option<String>,
    /// `KEY_IN` (the merchant sent the card) or `AUTHENTICATED` (the buyer registered it on paygate's page).
    #[schema(schema_with = registration)]
    registration: &'static str,
    #[schema(schema_with = schema::mode)]
    mode: &'static str,
    customer_name: Option<String>,
    customer_email: Option<String>,
}

fn billing_key_status() -> utoipa::openapi::Object {
    schema::string_enum(paygate_domain::billing::BillingKeyStatus::ALL.map(|s| s.as_str()))
}

fn registration() -> utoipa::openapi::Object {
    schema::string_enum(paygate_domain::billing::Registration::ALL.map(|r| r.as_str()))
}

/// A billing key's card.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = BillingCard)]
struct BillingCardBody {
    #[schema(example = "11")]
    issuer_code: String,
    #[schema(example = "11")]
    acquirer_code: String,
    /// Masked: first six and last four digits.
    #[schema(example = "433000******0003")]
    number: String,
    #[schema(schema_with = schema::card_type)]
    card_type: &'static str,
    #[schema(schema_with = schema::owner_type)]
    owner_type: &'static str,
}

impl BillingBody {
    pub fn new(key: &BillingKey) -> BillingBody {
        BillingBody {
            m_id: key.merchant_id.to_string(),
            customer_key: key.customer_key.as_str().to_owned(),
            authenticated_at: rfc3339(key.authenticated_at),
            method: "카드",
            billing_key: key.id.to_string(),
            card: BillingCardBody {
                issuer_code: key.facts.issuer_code.clone(),
                acquirer_code: key.facts.acquirer_code.clone(),
                number: key.card.masked.clone(),
                card_type: key.facts.card_type.korean(),
                owner_type: key.facts.owner_type.korean(),
            },
            card_company: card_company_name(&key.facts.issuer_code),
            card_number: key.card.masked.clone(),
            billing_key_status: key.status.as_str(),
            deleted_at: key.deleted_at.map(rfc3339),
            registration: key.registration.as_str(),
            mode: key.mode.as_str(),
            customer_name: key.customer_name.clone(),
            customer_email: key.customer_email.clone(),
        }
    }
}

/// The `data` of a `BILLING_DELETED` event, as Toss sends it: the key and why.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingDeletedData {
    #[schema(example = "bil_01M8XB3D2K7W9Q5T1E4R8Y6V3H")]
    billing_key: String,
    /// `삭제 API 요청` when the merchant called `DELETE /v1/billing/{billingKey}`.
    #[schema(example = "삭제 API 요청")]
    reason: Option<String>,
}

impl BillingDeletedData {
    pub fn new(key: &BillingKey, reason: Option<&str>) -> BillingDeletedData {
        BillingDeletedData {
            billing_key: key.id.to_string(),
            reason: reason.map(str::to_owned),
        }
    }
}

/// Toss's Korean short name of a card company, by its code (Toss's code table, docs/toss-reference.md §7).
pub fn card_company_name(code: &str) -> &'static str {
    match code {
        "3K" => "기업비씨",
        "46" => "광주",
        "71" => "롯데",
        "30" => "산업",
        "31" => "BC",
        "51" => "삼성",
        "38" => "새마을",
        "41" => "신한",
        "62" => "신협",
        "36" => "씨티",
        "33" | "W1" => "우리",
        "37" => "우체국",
        "39" => "저축",
        "35" => "전북",
        "42" => "제주",
        "15" => "카카오뱅크",
        "3A" => "케이뱅크",
        "24" => "토스뱅크",
        "21" => "하나",
        "61" => "현대",
        "11" => "국민",
        "91" => "농협",
        "34" => "수협",
        _ => "미확인",
    }
}
