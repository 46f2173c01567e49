//! Merchant order identifiers and names.

/// 6 to 64 characters of `[A-Za-z0-9-_.]`, unique per merchant and mode.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrderId(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("orderId must be 6 to 64 characters of A-Z, a-z, 0-9, '-', '_' and '.'")]
    OrderId,
    #[error("orderName must be 1 to 100 characters without control characters")]
    OrderName,
}

impl OrderId {
    pub fn parse(text: &str) -> Result<OrderId, OrderError> {
        let ok = (6..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        ok.then(|| OrderId(text.to_owned())).ok_or(OrderError::OrderId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the buyer sees as the purchase, e.g. "토스 티셔츠 외 2건".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderName(String);

impl OrderName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(text: &str) -> Result<OrderName, OrderError> {
        let trimmed = text.trim();
        let ok =
            !trimmed.is_empty() && trimmed.chars().count() <= Self::MAX_CHARS && !trimmed.chars().any(char::is_control);
        ok.then(|| OrderName(trimmed.to_owned())).ok_or(OrderError::OrderName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids() {
        let cases = [
            ("order-1", true),
            ("a.b_c-1", true),
            ("abcde", false),
            ("주문번호123", false),
            ("order 1", false),
        ];
        for (input, ok) in cases {
            assert_eq!(OrderId::parse(input).is_ok(), ok, "{input}");
        }
        assert!(OrderId::parse(&"x".repeat(64)).is_ok());
        assert!(OrderId::parse(&"x".repeat(65)).is_err());
        assert!(OrderName::parse("토스 티셔츠 외 2건").is_ok());
        assert!(OrderName::parse("  ").is_err());
        assert!(OrderName::parse(&"가".repeat(101)).is_err());
    }
}
