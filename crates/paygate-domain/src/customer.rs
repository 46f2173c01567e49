//! What paygate keeps about the buyer, checked before it reaches a page, a receipt or a notification.

use crate::order::is_invisible_format;

/// A buyer's email address, checked for plausible syntax (not deliverability): one `@`; a local part of 1 to 64
/// characters; a domain of dot-separated labels of letters, digits and `-`, with at least one dot; at most 254
/// characters in all; no spaces, control or invisible formatting characters, and none of the characters that only
/// quoted local parts may hold (`"(),:;<>[\]`). Surrounding whitespace is trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerEmail(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("customerEmail must be an email address like buyer@example.com (at most 254 characters)")]
pub struct EmailError;

impl CustomerEmail {
    pub const MAX_CHARS: usize = 254;
    pub const LOCAL_MAX_CHARS: usize = 64;

    pub fn parse(text: &str) -> Result<CustomerEmail, EmailError> {
        let text = text.trim();
        if text.chars().count() > Self::MAX_CHARS {
            return Err(EmailError);
        }
        let (local, domain) = text.split_once('@').ok_or(EmailError)?;
        let local_ok = (1..=Self::LOCAL_MAX_CHARS).contains(&local.chars().count())
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(allowed_in_local);
        let domain_ok = domain.contains('.') && domain.split('.').all(is_domain_label);
        (local_ok && domain_ok)
            .then(|| CustomerEmail(text.to_owned()))
            .ok_or(EmailError)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

fn allowed_in_local(c: char) -> bool {
    !c.is_whitespace()
        && !c.is_control()
        && !is_invisible_format(c)
        && !matches!(
            c,
            '@' | '"' | '(' | ')' | ',' | ':' | ';' | '<' | '>' | '[' | '\\' | ']'
        )
}

/// 1 to 63 letters (any script, for internationalised domains), digits or `-`, not starting or ending with `-`.
fn is_domain_label(label: &str) -> bool {
    (1..=63).contains(&label.chars().count())
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.chars().all(|c| c.is_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        let long_local = format!("{}@example.com", "a".repeat(64));
        let too_long_local = format!("{}@example.com", "a".repeat(65));
        let longest = format!(
            "{}@{}.{}.{}.com",
            "a".repeat(64),
            "b".repeat(60),
            "c".repeat(60),
            "d".repeat(63)
        );
        let too_long = format!(
            "{}@{}.{}.{}.comm",
            "a".repeat(64),
            "b".repeat(60),
            "c".repeat(60),
            "d".repeat(63)
        );
        assert_eq!(longest.chars().count(), 254);
        let cases: Vec<(&str, bool)> = vec![
            ("buyer@example.com", true),
            ("first.last+tag@mail.example.co.kr", true),
            ("o'brien_99@example.com", true),
            ("  padded@example.com ", true),
            ("구매자@예시.한국", true),
            (&long_local, true),
            (&longest, true),
            ("", false),
            ("buyer", false),
            ("buyer@", false),
            ("@example.com", false),
            ("buyer@localhost", false),
            ("buyer@@example.com", false),
            ("a@b@example.com", false),
            ("bu yer@example.com", false),
            ("buyer@exa mple.com", false),
            ("buyer\t@example.com", false),
            ("buyer\n@example.com", false),
            ("buyer\u{0}@example.com", false),
            ("buyer\u{202E}moc@example.com", false),
            ("buyer\u{200B}@example.com", false),
            ("\"quoted\"@example.com", false),
            ("<buyer@example.com>", false),
            ("a,b@example.com", false),
            (".buyer@example.com", false),
            ("buyer.@example.com", false),
            ("bu..yer@example.com", false),
            ("buyer@example..com", false),
            ("buyer@.example.com", false),
            ("buyer@example.com.", false),
            ("buyer@-example.com", false),
            ("buyer@example_x.com", false),
            (&too_long_local, false),
            (&too_long, false),
        ];
        for (input, ok) in cases {
            assert_eq!(CustomerEmail::parse(input).is_ok(), ok, "{input:?}");
        }
        assert_eq!(
            CustomerEmail::parse(" buyer@example.com ").map(CustomerEmail::into_string),
            Ok("buyer@example.com".to_owned())
        );
    }
}
