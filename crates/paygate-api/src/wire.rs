//! Conversions between domain values and their wire spelling.

use paygate_domain::time::UnixMillis;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Korea Standard Time, the offset Korean PG APIs print instants in.
const KST: UtcOffset = time::macros::offset!(+9);

pub use paygate_app::instant::rfc3339;

/// Parses an RFC 3339 instant (`2026-11-23T16:04:52.120+09:00`; the fraction is optional), a KST local date-time
/// without offset `2026-11-23T16:04:52` (Toss's documented form for `startDate`/`endDate`, optionally with a
/// fraction), or a KST calendar date `2026-11-23` (its start, or with `end_of_day` the start of the next day, so a
/// date range is inclusive of its last day).
pub fn parse_instant(text: &str, end_of_day: bool) -> Option<UnixMillis> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return millis(at);
    }
    let local = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    if let Ok(at) = time::PrimitiveDateTime::parse(text, local) {
        return millis(at.assume_offset(KST));
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
    fn formats_in_kst_with_three_fractional_digits() {
        let cases: &[(i64, &str)] = &[
            (0, "1970-01-01T09:00:00.000+09:00"),
            (1_795_449_892_000, "2026-11-24T01:04:52.000+09:00"),
            (1_795_449_892_100, "2026-11-24T01:04:52.100+09:00"),
            (1_795_449_892_120, "2026-11-24T01:04:52.120+09:00"),
            (1_795_449_892_123, "2026-11-24T01:04:52.123+09:00"),
        ];
        for &(millis, expected) in cases {
            assert_eq!(rfc3339(UnixMillis::new(millis)), expected);
        }
    }

    #[test]
    fn what_it_prints_parses_back() {
        for millis in [0, 1_795_449_892_000, 1_795_449_892_120, 1_795_449_892_123] {
            let text = rfc3339(UnixMillis::new(millis));
            assert_eq!(parse_instant(&text, false), Some(UnixMillis::new(millis)), "{text}");
        }
        assert_eq!(
            parse_instant("2026-11-24T01:04:52+09:00", false),
            Some(UnixMillis::new(1_795_449_892_000))
        );
        assert_eq!(
            parse_instant("2026-11-24", false),
            Some(UnixMillis::new(1_795_446_000_000))
        );
    }

    #[test]
    fn parses_instants_dates_and_kst_local_date_times() {
        let midnight_kst = Some(UnixMillis::new(1_640_962_800_000)); // 2022-01-01T00:00:00+09:00
        let cases: &[(&str, bool, Option<UnixMillis>)] = &[
            ("2022-01-01T00:00:00+09:00", false, midnight_kst),
            ("2021-12-31T15:00:00Z", false, midnight_kst),
            ("2022-01-01T00:00:00", false, midnight_kst),
            ("2022-01-01T00:00:00", true, midnight_kst),
            (
                "2022-01-01T00:00:00.250",
                false,
                Some(UnixMillis::new(1_640_962_800_250)),
            ),
            ("2022-01-01", false, midnight_kst),
            ("2021-12-31", true, midnight_kst),
            ("2022-01-01T00:00", false, None),
            ("2022-01-01 00:00:00", false, None),
            ("2022-13-01T00:00:00", false, None),
            ("yesterday", false, None),
        ];
        for (text, end_of_day, expected) in cases {
            assert_eq!(
                parse_instant(text, *end_of_day),
                *expected,
                "{text} end_of_day={end_of_day}"
            );
        }
    }
}
