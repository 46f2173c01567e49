//! SQL text shared by both backends. Statements are written once, with SQLite's numbered placeholders (`?1`);
//! PostgreSQL gets the same text with `$1` from [`postgres`].

use std::borrow::Cow;

/// `?N` → `$N`. A `?` not followed by a digit (none of paygate's statements has one, and none quotes one inside a
/// string literal) is kept.
pub(crate) fn postgres(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders() {
        let cases = [
            ("SELECT 1", "SELECT 1"),
            ("a = ?1 AND b = ?12", "a = $1 AND b = $12"),
            ("x ? y", "x ? y"),
            ("(?1, ?2)", "($1, $2)"),
        ];
        for (sqlite, postgres) in cases {
            assert_eq!(super::postgres(sqlite), postgres, "{sqlite}");
        }
    }
}
