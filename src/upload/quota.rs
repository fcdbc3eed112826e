//! YouTube's quota day: it resets at midnight Pacific time (America/Los_Angeles, so 07:00 UTC
//! in summer and 08:00 UTC in winter). Pure functions of a given instant, so daylight-saving
//! changes are tested with fixed clocks.

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::America::Los_Angeles;

/// The Pacific date the instant belongs to (the ledger's key).
pub fn pacific_day(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&Los_Angeles).date_naive()
}

/// The next midnight Pacific time after `now`.
pub fn next_reset(now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = pacific_day(now)
        .checked_add_days(Days::new(1))
        .expect("dates this far out do not occur");
    let midnight = tomorrow.and_hms_opt(0, 0, 0).expect("midnight exists");
    // Los Angeles changes clocks at 02:00, so midnight is never skipped nor repeated; `earliest`
    // keeps this total anyway.
    Los_Angeles
        .from_local_datetime(&midnight)
        .earliest()
        .expect("midnight exists in Los Angeles")
        .with_timezone(&Utc)
}

/// `2026-03-09 07:00 UTC (00:00 PDT)`.
pub fn describe(at: DateTime<Utc>) -> String {
    format!(
        "{} ({})",
        at.format("%Y-%m-%d %H:%M UTC"),
        at.with_timezone(&Los_Angeles).format("%H:%M %Z")
    )
}

/// Uploads left today under the local limit.
pub fn left(used: u32, limit: u32) -> u32 {
    limit.saturating_sub(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn resets_at_pacific_midnight_across_daylight_saving_changes() {
        for (now, reset, day) in [
            // Winter (PST, UTC-8): midnight is 08:00 UTC.
            (
                utc(2026, 1, 15, 12, 0),
                utc(2026, 1, 16, 8, 0),
                (2026, 1, 15),
            ),
            // 07:59 UTC in winter is still the previous Pacific day.
            (
                utc(2026, 1, 16, 7, 59),
                utc(2026, 1, 16, 8, 0),
                (2026, 1, 15),
            ),
            // The evening before spring forward (Sun 2026-03-08 02:00 PST → 03:00 PDT): the next
            // midnight is still PST.
            (utc(2026, 3, 8, 7, 30), utc(2026, 3, 8, 8, 0), (2026, 3, 7)),
            // The day clocks spring forward: that night's midnight is PDT, 07:00 UTC.
            (utc(2026, 3, 8, 8, 0), utc(2026, 3, 9, 7, 0), (2026, 3, 8)),
            (utc(2026, 3, 8, 11, 0), utc(2026, 3, 9, 7, 0), (2026, 3, 8)),
            // Summer (PDT, UTC-7).
            (utc(2026, 7, 4, 6, 59), utc(2026, 7, 4, 7, 0), (2026, 7, 3)),
            // The day clocks fall back (Sun 2026-11-01 02:00 PDT → 01:00 PST): the day is 25 h
            // long and ends at 08:00 UTC.
            (
                utc(2026, 11, 1, 7, 0),
                utc(2026, 11, 2, 8, 0),
                (2026, 11, 1),
            ),
            (
                utc(2026, 11, 1, 6, 59),
                utc(2026, 11, 1, 7, 0),
                (2026, 10, 31),
            ),
        ] {
            assert_eq!(next_reset(now), reset, "after {now}");
            let (y, m, d) = day;
            assert_eq!(
                pacific_day(now),
                NaiveDate::from_ymd_opt(y, m, d).unwrap(),
                "{now}"
            );
            assert!(next_reset(now) > now);
        }
    }

    #[test]
    fn reset_times_are_told_in_utc_and_pacific() {
        assert_eq!(
            describe(utc(2026, 3, 9, 7, 0)),
            "2026-03-09 07:00 UTC (00:00 PDT)"
        );
        assert_eq!(
            describe(utc(2026, 1, 16, 8, 0)),
            "2026-01-16 08:00 UTC (00:00 PST)"
        );
        assert_eq!(left(3, 100), 97);
        assert_eq!(left(120, 100), 0);
    }
}
