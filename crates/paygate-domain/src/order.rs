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
    #[error(
        "orderName must not contain invisible formatting characters (bidirectional marks, overrides and isolates \
         U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069; zero-width and other invisible characters); \
         they can make a name read differently on payment pages and receipts"
    )]
    OrderNameInvisible,
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

    /// A name from a merchant: 1 to 100 characters after trimming, with no control characters (C0, C1) and no
    /// invisible formatting characters ([`is_invisible_format`]).
    pub fn parse(text: &str) -> Result<OrderName, OrderError> {
        let name = OrderName::from_stored(text)?;
        if name.0.chars().any(is_invisible_format) {
            return Err(OrderError::OrderNameInvisible);
        }
        Ok(name)
    }

    /// A name read back from the database, checked by the rules it was written under: names stored before
    /// invisible formatting characters were refused must stay readable.
    pub fn from_stored(text: &str) -> Result<OrderName, OrderError> {
        let trimmed = text.trim();
        let ok =
            !trimmed.is_empty() && trimmed.chars().count() <= Self::MAX_CHARS && !trimmed.chars().any(char::is_control);
        ok.then(|| OrderName(trimmed.to_owned())).ok_or(OrderError::OrderName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters that change how text around them is shown, or are not shown at all, so that a name can read
/// differently from what it is ("Trojan Source" reordering on a receipt). Zero-width joiner and non-joiner stay
/// allowed: emoji sequences and several scripts need them.
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' // Arabic letter mark
        | '\u{200B}' // zero-width space
        | '\u{200E}'..='\u{200F}' // left-to-right and right-to-left marks
        | '\u{2028}'..='\u{2029}' // line and paragraph separators
        | '\u{202A}'..='\u{202E}' // bidirectional embeddings and overrides
        | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}' // bidirectional isolates
        | '\u{206A}'..='\u{206F}' // deprecated format characters
        | '\u{FEFF}' // zero-width no-break space (byte order mark)
        | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
        | '\u{E0000}'..='\u{E007F}' // tags
    )
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

    #[test]
    fn order_names_refuse_controls_and_invisible_formatting() {
        use OrderError::{OrderName as Bad, OrderNameInvisible as Invisible};
        let cases: &[(&str, Result<&str, OrderError>)] = &[
            ("토스 티셔츠 외 2건", Ok("토스 티셔츠 외 2건")),
            ("  padded  ", Ok("padded")),
            ("café — 2 × 커피 ☕", Ok("café — 2 × 커피 ☕")),
            (
                "가족 👨\u{200D}👩\u{200D}👧 세트",
                Ok("가족 👨\u{200D}👩\u{200D}👧 세트"),
            ),
            ("می\u{200C}خواهم", Ok("می\u{200C}خواهم")),
            ("", Err(Bad)),
            ("   ", Err(Bad)),
            ("line\nbreak", Err(Bad)),
            ("tab\there", Err(Bad)),
            ("nul\u{0}", Err(Bad)),
            ("del\u{7F}", Err(Bad)),
            ("c1\u{85}next-line", Err(Bad)),
            ("c1\u{9B}csi", Err(Bad)),
            ("invoice\u{202E}fdp.exe", Err(Invisible)),
            ("\u{202A}ltr embedding", Err(Invisible)),
            ("\u{202B}rtl embedding", Err(Invisible)),
            ("\u{202C}pop", Err(Invisible)),
            ("\u{202D}ltr override", Err(Invisible)),
            ("\u{2066}isolate\u{2069}", Err(Invisible)),
            ("\u{2067}rtl isolate", Err(Invisible)),
            ("\u{2068}first strong", Err(Invisible)),
            ("mark\u{200E}", Err(Invisible)),
            ("mark\u{200F}", Err(Invisible)),
            ("arabic\u{061C}mark", Err(Invisible)),
            ("zero\u{200B}width", Err(Invisible)),
            ("word\u{2060}joiner", Err(Invisible)),
            ("\u{FEFF}bom", Err(Invisible)),
            ("line\u{2028}separator", Err(Invisible)),
            ("tag\u{E0041}smuggled", Err(Invisible)),
        ];
        for (input, expected) in cases {
            let got = OrderName::parse(input);
            assert_eq!(
                got.as_ref().map(OrderName::as_str).map_err(|e| *e),
                *expected,
                "{input:?}"
            );
        }
        assert!(OrderError::OrderNameInvisible.to_string().contains("U+202A"));
    }

    #[test]
    fn stored_order_names_from_before_the_rule_stay_readable() {
        assert_eq!(
            OrderName::from_stored("invoice\u{202E}fdp.exe").map(|n| n.as_str().to_owned()),
            Ok("invoice\u{202E}fdp.exe".to_owned())
        );
        assert_eq!(OrderName::from_stored("line\nbreak"), Err(OrderError::OrderName));
    }
}
