//! How instants are printed wherever a merchant reads them: API responses, webhook events, notifications.
//!
//! RFC 3339 in Korea Standard Time with exactly three fractional digits, `2026-11-23T16:04:52.120+09:00`, whatever
//! the milliseconds are (`.000` included): the same width every time, like Korean PG APIs print them, so a
//! merchant's parser or a fixed-width log column never meets a shorter form.

use paygate_domain::time::UnixMillis;
use time::format_description::BorrowedFormatItem;
use time::{OffsetDateTime, UtcOffset};

/// Korea Standard Time, the offset Korean PG APIs (Toss included) print instants in.
const KST: UtcOffset = time::macros::offset!(+9);

/// RFC 3339 with the seconds' fraction always three digits (`time`'s `Rfc3339` drops trailing zeros).
const FORMAT: &[BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3][offset_hour sign:mandatory]:[offset_minute]"
);

/// `2026-11-23T16:04:52.123+09:00`; `.000` for a whole second. Empty for an instant outside years 0000–9999.
pub fn rfc3339(at: UnixMillis) -> String {
    format_kst(at, FORMAT)
}

/// The instant in KST with `format`; empty outside years 0000–9999.
fn format_kst(at: UnixMillis, format: &[BorrowedFormatItem<'_>]) -> String {
    let nanos = i128::from(at.as_millis()) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .map(|t| t.to_offset(KST))
        .filter(|t| (0..=9999).contains(&t.year()))
        .and_then(|t| t.format(format).ok())
        .unwrap_or_default()
}

/// KST local time with six fractional digits and no offset: `2026-11-23T16:04:52.123000`. This is how Toss
/// Payments writes a webhook's `createdAt`; paygate writes it there (and only there) so that a Toss webhook
/// handler decodes it, and sends the instant with its offset as `timestamp` beside it.
pub fn toss_webhook_local(at: UnixMillis) -> String {
    const LOCAL: &[BorrowedFormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]");
    format_kst(at, LOCAL)
}

/// A deadline as Toss takes it (`dueDate`): KST local time without offset, `2026-11-30T15:17:19`, or RFC 3339 with
/// an offset (what Toss's answers print). `None` if it is neither.
pub fn parse_deadline(text: &str) -> Option<UnixMillis> {
    const LOCAL: &[BorrowedFormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let at = match time::PrimitiveDateTime::parse(text, LOCAL) {
        Ok(local) => local.assume_offset(KST),
        Err(_) => OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?,
    };
    let millis = at.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(millis).ok().map(UnixMillis::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_read_in_both_of_toss_forms() {
        let second = 1_795_417_492_000;
        assert_eq!(parse_deadline("2026-11-23T16:04:52"), Some(UnixMillis::new(second)));
        assert_eq!(
            parse_deadline("2026-11-23T16:04:52+09:00"),
            Some(UnixMillis::new(second))
        );
        assert_eq!(
            parse_deadline("2026-11-23T07:04:52.5Z"),
            Some(UnixMillis::new(second + 500))
        );
        for bad in [
            "2026-11-23",
            "2026-11-23 16:04:52",
            "tomorrow",
            "2026-13-01T00:00:00",
            "",
        ] {
            assert_eq!(parse_deadline(bad), None, "{bad}");
        }
    }

    #[test]
    fn always_three_fractional_digits_in_kst() {
        // 2026-11-23T07:04:52Z, a whole second.
        let second = 1_795_417_492_000;
        let cases: &[(i64, &str)] = &[
            (second, "2026-11-23T16:04:52.000+09:00"),
            (second + 100, "2026-11-23T16:04:52.100+09:00"),
            (second + 120, "2026-11-23T16:04:52.120+09:00"),
            (second + 123, "2026-11-23T16:04:52.123+09:00"),
            (second + 1, "2026-11-23T16:04:52.001+09:00"),
            (second + 999, "2026-11-23T16:04:52.999+09:00"),
            (0, "1970-01-01T09:00:00.000+09:00"),
            (-1, "1970-01-01T08:59:59.999+09:00"),
            // 15:00Z is midnight in KST: the date is KST's.
            (1_795_446_000_000, "2026-11-24T00:00:00.000+09:00"),
            (1_795_449_892_123, "2026-11-24T01:04:52.123+09:00"),
        ];
        for &(millis, expected) in cases {
            assert_eq!(rfc3339(UnixMillis::new(millis)), expected, "{millis} ms");
        }
    }

    #[test]
    fn toss_webhook_time_is_kst_local_with_microseconds() {
        assert_eq!(
            toss_webhook_local(UnixMillis::new(1_795_449_892_123)),
            "2026-11-24T01:04:52.123000"
        );
        assert_eq!(toss_webhook_local(UnixMillis::new(0)), "1970-01-01T09:00:00.000000");
    }

    #[test]
    fn the_same_width_for_every_millisecond() {
        for millis in 0..1_000 {
            let text = rfc3339(UnixMillis::new(1_795_417_492_000 + millis));
            assert_eq!(text.len(), "2026-11-23T16:04:52.000+09:00".len(), "{text}");
            assert_eq!(text.get(20..23), Some(format!("{millis:03}").as_str()), "{text}");
        }
    }

    #[test]
    fn out_of_range_instants_print_empty() {
        assert_eq!(rfc3339(UnixMillis::new(i64::MAX)), "");
        assert_eq!(rfc3339(UnixMillis::new(i64::MIN)), "");
    }
}
