//! Request extractors that fail with the API's error object instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// A JSON body. Errors name the offending field (`param`) without echoing its value, so a card number sent in
/// the wrong field never comes back in an error message or a log line.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .eq_ignore_ascii_case("application/json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
            } else {
                ApiError::new(ErrorCode::MalformedJson, "the request body could not be read")
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        json_error(&path, error.inner())
    })?;
    deserializer
        .end()
        .map_err(|_| ApiError::new(ErrorCode::MalformedJson, "the body has data after the JSON value"))?;
    Ok(value)
}

fn json_error(path: &str, error: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let at = |line: usize, column: usize| format!("the body is not valid JSON (line {line}, column {column})");
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::new(ErrorCode::MalformedJson, at(error.line(), error.column()))
        }
        Category::Data => {
            let message = error.to_string();
            let base = if path == "." { String::new() } else { path.to_owned() };
            if let Some(field) = between_backticks(&message, "missing field `") {
                let param = if base.is_empty() {
                    field.to_owned()
                } else {
                    format!("{base}.{field}")
                };
                return ApiError::new(ErrorCode::MissingField, format!("`{param}` is required")).with_param(param);
            }
            if let Some(field) = between_backticks(&message, "unknown field `") {
                // For unknown fields the path already ends with the field itself.
                let param = if base.is_empty() { field.to_owned() } else { base };
                return ApiError::new(ErrorCode::InvalidFieldValue, format!("`{param}` is not a known field"))
                    .with_param(param);
            }
            let param = if base.is_empty() { "body".to_owned() } else { base };
            // A top-level array where an object is expected reports "invalid length"; it is a type error.
            if param == "body" && message.starts_with("invalid length") {
                return ApiError::new(ErrorCode::InvalidFieldType, "the body must be a JSON object").with_param(param);
            }
            if message.starts_with("invalid type") {
                // serde's message is "invalid type: <what was sent, with its value>, expected <what>"; keep only
                // the expectation so the value is never echoed.
                let expected = message.split(", expected ").nth(1).unwrap_or("another type");
                let expected = expected.split(" at line").next().unwrap_or(expected);
                return ApiError::new(ErrorCode::InvalidFieldType, format!("`{param}` must be {expected}"))
                    .with_param(param);
            }
            let expected = message
                .split(", expected ")
                .nth(1)
                .map(|e| e.split(" at line").next().unwrap_or(e));
            let text = match expected {
                Some(expected) => format!("`{param}` has an invalid value; expected {expected}"),
                None => format!("`{param}` has an invalid value"),
            };
            ApiError::new(ErrorCode::InvalidFieldValue, text).with_param(param)
        }
    }
}

/// A query string. Like [`ApiJson`], errors name the parameter (`param`) and never echo its value; axum's `Query`
/// answered a bad one with a plain-text 400 without a code.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        query_error(&path, &error.inner().to_string())
    })
}

fn query_error(path: &str, message: &str) -> ApiError {
    if let Some(param) = between_backticks(message, "missing field `") {
        return ApiError::new(ErrorCode::MissingField, format!("`{param}` is required")).with_param(param);
    }
    if let Some(param) = between_backticks(message, "unknown field `") {
        return ApiError::new(
            ErrorCode::InvalidFieldValue,
            format!("`{param}` is not a known query parameter"),
        )
        .with_param(param);
    }
    if let Some(param) = between_backticks(message, "duplicate field `") {
        return ApiError::new(
            ErrorCode::InvalidFieldValue,
            format!("`{param}` is given more than once"),
        )
        .with_param(param);
    }
    let param = if path == "." || path.is_empty() {
        "query".to_owned()
    } else {
        path.to_owned()
    };
    // Values arrive as text; the only errors left are the standard parsers' (`ParseIntError`, `ParseBoolError`),
    // whose messages say what went wrong without the value.
    if message.starts_with("invalid digit") || message.starts_with("cannot parse integer") {
        return ApiError::new(
            ErrorCode::InvalidFieldType,
            format!("`{param}` must be a non-negative integer"),
        )
        .with_param(param);
    }
    if message.starts_with("number too large") || message.starts_with("number too small") {
        return ApiError::new(ErrorCode::InvalidFieldValue, format!("`{param}` is out of range")).with_param(param);
    }
    if message.starts_with("provided string was not `true` or `false`") {
        return ApiError::new(ErrorCode::InvalidFieldType, format!("`{param}` must be true or false"))
            .with_param(param);
    }
    ApiError::new(ErrorCode::InvalidFieldValue, format!("`{param}` has an invalid value")).with_param(param)
}

fn between_backticks<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let start = message.find(prefix)? + prefix.len();
    let rest = &message[start..];
    rest.find('`').map(|end| &rest[..end])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        amount: i64,
        order_name: String,
        card: Option<Card>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Card {
        number: String,
    }

    #[test]
    fn errors_name_the_field_and_never_the_value() {
        let cases: &[(&str, ErrorCode, Option<&str>)] = &[
            ("{", ErrorCode::MalformedJson, None),
            ("{\"amount\": 1,}", ErrorCode::MalformedJson, None),
            ("{\"orderName\": \"x\"}", ErrorCode::MissingField, Some("amount")),
            (
                "{\"amount\": \"4330000000000003\", \"orderName\": \"x\"}",
                ErrorCode::InvalidFieldType,
                Some("amount"),
            ),
            (
                "{\"amount\": 1, \"orderName\": \"x\", \"card\": {}}",
                ErrorCode::MissingField,
                Some("card.number"),
            ),
            (
                "{\"amount\": 1, \"orderName\": \"x\", \"card\": {\"number\": 4330000000000003}}",
                ErrorCode::InvalidFieldType,
                Some("card.number"),
            ),
            (
                "{\"amount\": 1, \"orderName\": \"x\", \"cardNumber\": \"4330000000000003\"}",
                ErrorCode::InvalidFieldValue,
                Some("cardNumber"),
            ),
            ("[]", ErrorCode::InvalidFieldType, Some("body")),
            (
                "{\"amount\": 1, \"orderName\": \"x\"} trailing",
                ErrorCode::MalformedJson,
                None,
            ),
        ];
        for (input, code, param) in cases {
            let error = parse_json::<Body>(input.as_bytes()).unwrap_err();
            assert_eq!(error.code, *code, "{input}");
            assert_eq!(error.param.as_deref(), *param, "{input}");
            assert!(
                !error.message.contains("4330000000000003"),
                "{input}: {}",
                error.message
            );
        }
        assert!(parse_json::<Body>(br#"{"amount": 1, "orderName": "x"}"#).is_ok());
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Page {
        start_date: String,
        starting_after: Option<String>,
        limit: Option<u32>,
        verbose: Option<bool>,
    }

    #[test]
    fn query_errors_name_the_parameter_and_never_the_value() {
        let cases: &[(&str, ErrorCode, &str)] = &[
            ("limit=10", ErrorCode::MissingField, "startDate"),
            (
                "startDate=x&limit=abc4330000000000003",
                ErrorCode::InvalidFieldType,
                "limit",
            ),
            ("startDate=x&limit=-1", ErrorCode::InvalidFieldType, "limit"),
            ("startDate=x&limit=", ErrorCode::InvalidFieldType, "limit"),
            (
                "startDate=x&limit=4330000000000003",
                ErrorCode::InvalidFieldValue,
                "limit",
            ),
            (
                "startDate=x&verbose=4330000000000003",
                ErrorCode::InvalidFieldType,
                "verbose",
            ),
            (
                "startDate=x&cardNumber=4330000000000003",
                ErrorCode::InvalidFieldValue,
                "cardNumber",
            ),
            ("startDate=x&limit=1&limit=2", ErrorCode::InvalidFieldValue, "limit"),
        ];
        for (query, code, param) in cases {
            let error = parse_query::<Page>(query).unwrap_err();
            assert_eq!(error.code, *code, "{query}: {}", error.message);
            assert_eq!(error.param.as_deref(), Some(*param), "{query}");
            assert!(
                !error.message.contains("4330000000000003"),
                "{query}: {}",
                error.message
            );
        }
        assert_eq!(
            parse_query::<Page>("startDate=2022-01-01T00%3A00%3A00&limit=5").unwrap(),
            Page {
                start_date: "2022-01-01T00:00:00".into(),
                starting_after: None,
                limit: Some(5),
                verbose: None,
            }
        );
    }
}
