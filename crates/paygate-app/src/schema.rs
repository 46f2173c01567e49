//! Pieces of the OpenAPI document that the wire types need: enums spelled from the domain's own lists (a new
//! status shows in the document the moment it exists), Toss's always-`null` fields, and instants.
//!
//! The document itself is assembled by the HTTP edge (`paygate_api::openapi`).

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::Object;

/// A string that is one of `values`.
pub fn string_enum(values: impl IntoIterator<Item = &'static str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .build()
}

/// A string that is one of `values`, or `null`.
pub fn nullable_string_enum(values: impl IntoIterator<Item = &'static str>) -> Object {
    let mut values: Vec<serde_json::Value> = values.into_iter().map(serde_json::Value::from).collect();
    values.push(serde_json::Value::Null);
    ObjectBuilder::new()
        .schema_type([Type::String, Type::Null].into_iter().collect::<SchemaType>())
        .enum_values(Some(values))
        .build()
}

/// A field Toss defines for a method paygate does not offer (yet): always present, always `null`.
pub fn always_null() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Null)
        .description(Some(
            "Always `null` in paygate: the payment method it describes is not offered yet.",
        ))
        .build()
}

fn instant_described(nullable: bool) -> Object {
    let kind: SchemaType = if nullable {
        [Type::String, Type::Null].into_iter().collect()
    } else {
        Type::String.into()
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .description(Some("ISO 8601 in KST with milliseconds, as Toss writes it."))
        .examples(["2026-11-23T16:04:52.123+09:00"])
        .build()
}

/// An instant, `2026-11-23T16:04:52.123+09:00`.
pub fn instant() -> Object {
    instant_described(false)
}

/// An instant or `null`.
pub fn nullable_instant() -> Object {
    instant_described(true)
}

/// Toss's Korean spelling of the methods paygate offers.
pub fn method() -> Object {
    string_enum(paygate_domain::payment::PaymentMethod::ALL.map(|m| m.korean()))
}

/// `test` or `live`.
pub fn mode() -> Object {
    string_enum(paygate_domain::api_key::Mode::ALL.map(|m| m.as_str()))
}

/// Toss's card type (`신용`, `체크`, `기프트`, `미확인`).
pub fn card_type() -> Object {
    string_enum(paygate_domain::card::CardType::ALL.map(|t| t.korean()))
}

/// Toss's owner type (`개인`, `법인`, `미확인`).
pub fn owner_type() -> Object {
    string_enum(paygate_domain::card::OwnerType::ALL.map(|t| t.korean()))
}

/// A currency code.
pub fn currency() -> Object {
    string_enum(paygate_domain::money::Currency::ALL.map(|c| c.code()))
}
