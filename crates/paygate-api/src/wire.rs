//! Conversions between domain values and their wire spelling.

use paygate_domain::time::UnixMillis;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Korea Standard Time, the offset Korean PG APIs print instants in.
const KST: UtcOffset = time::macros::offset!(+9);

pub use paygate_app::payments::wire::rfc3339;

/// Parses `2026-11-23T16:04:52+09:00` or a KST calendar date `2026-11-23` (its start, or with `end_of_day` the start
/// of the next day, so a date range is inclusive of its last day).
pub fn parse_instant(text: &str, end_of_day: bool) -> Option<UnixMillis> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return millis(at);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text, format).ok()?;
    let date = if end_of_day { date.next_day()? } else { date };
    millis(date.midnight().assume_offset(KST))
}

fn millis(at: OffsetDateTime) -> Option<UnixMillis> {
    let millis = at.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(millis).ok().map(UnixMillis::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_kst() {
        assert_eq!(rfc3339(UnixMillis::new(0)), "1970-01-01T09:00:00+09:00");
        assert_eq!(
            rfc3339(UnixMillis::new(1_795_449_892_123)),
            "2026-11-24T01:04:52.123+09:00"
        );
    }
}
