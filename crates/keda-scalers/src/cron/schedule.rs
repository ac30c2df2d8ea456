//! Five-field cron schedules (minute hour day-of-month month day-of-week) with the semantics of the
//! Go `robfig/cron` standard parser KEDA uses: `*`/`?`, ranges, steps (`N/s` means `N-max/s`),
//! lists, month and weekday names; day-of-month and day-of-week are OR-ed unless either starts with
//! `*`/`?`. No seconds field and no `@` descriptors. Next times are computed in an IANA zone with
//! jiff: local times skipped by a DST jump never fire; local times repeated by a DST fall-back
//! fire once, at their first occurrence (as cronie does), so a window spanning the repeated hour is
//! not reopened by it.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// How far ahead a next time is searched (covers leap-day-only schedules).
const HORIZON_YEARS: i16 = 5;

/// A parsed schedule: one bit per allowed value of each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    // Either day field started with `*` or `?`: both must match instead of either.
    day_star: bool,
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
    // Index of the first name (months start at 1).
    names_from: u32,
}

const FIELDS: [Bounds; 5] = [
    Bounds {
        min: 0,
        max: 59,
        names: &[],
        names_from: 0,
    },
    Bounds {
        min: 0,
        max: 23,
        names: &[],
        names_from: 0,
    },
    Bounds {
        min: 1,
        max: 31,
        names: &[],
        names_from: 0,
    },
    Bounds {
        min: 1,
        max: 12,
        names: MONTHS,
        names_from: 1,
    },
    Bounds {
        min: 0,
        max: 6,
        names: WEEKDAYS,
        names_from: 0,
    },
];

impl Schedule {
    /// Parses a five-field expression; the error says which part is wrong.
    pub fn parse(expr: &str) -> Result<Self, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: {expr}",
                fields.len()
            ));
        }
        let mut bits = [0_u64; 5];
        let mut stars = [false; 5];
        for (i, (field, bounds)) in fields.iter().zip(FIELDS.iter()).enumerate() {
            let (b, star) = parse_field(field, bounds)?;
            bits[i] = b;
            stars[i] = star;
        }
        Ok(Self {
            minutes: bits[0],
            hours: bits[1],
            days_of_month: bits[2],
            months: bits[3],
            days_of_week: bits[4],
            day_star: stars[2] || stars[4],
        })
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = has(self.days_of_month, u32::from(date.day().unsigned_abs()));
        let dow = has(
            self.days_of_week,
            u32::from(date.weekday().to_sunday_zero_offset().unsigned_abs()),
        );
        if self.day_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first time strictly after `after` (at a whole minute) that matches, in `tz`.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let limit = after
            .to_zoned(tz.clone())
            .year()
            .saturating_add(HORIZON_YEARS);
        // Start at the next whole minute.
        let secs = after.as_second().div_euclid(60) * 60 + 60;
        let mut t = Timestamp::from_second(secs).ok()?;
        loop {
            let z = t.to_zoned(tz.clone());
            if z.year() > limit {
                return None;
            }
            let dt = z.datetime();
            if !has(self.months, u32::from(dt.month().unsigned_abs())) {
                let first = dt.date().first_of_month().checked_add(1.month()).ok()?;
                t = forward(t, first.to_datetime(jiff::civil::time(0, 0, 0, 0)), tz)?;
                continue;
            }
            if !self.day_matches(dt.date()) {
                let next = dt.date().tomorrow().ok()?;
                t = forward(t, next.to_datetime(jiff::civil::time(0, 0, 0, 0)), tz)?;
                continue;
            }
            if !has(self.hours, u32::from(dt.hour().unsigned_abs())) {
                // Real minutes to the next local hour; an offset change inside is re-checked.
                let left = 60 - i64::from(dt.minute());
                t = t.checked_add(left.minutes()).ok()?;
                continue;
            }
            if !has(self.minutes, u32::from(dt.minute().unsigned_abs())) {
                t = t.checked_add(1.minute()).ok()?;
                continue;
            }
            // The second occurrence of a repeated local time maps back to the first one.
            let first = dt.to_zoned(tz.clone()).ok()?.timestamp();
            if first != t {
                t = t.checked_add(1.minute()).ok()?;
                continue;
            }
            return Some(t);
        }
    }
}

/// The instant of local `target`, or one minute after `t` if that would not move forward (a
/// repeated local time can map back before `t`).
fn forward(t: Timestamp, target: DateTime, tz: &TimeZone) -> Option<Timestamp> {
    let z: Zoned = target.to_zoned(tz.clone()).ok()?;
    let next = z.timestamp();
    if next > t {
        Some(next)
    } else {
        t.checked_add(1.minute()).ok()
    }
}

fn has(bits: u64, value: u32) -> bool {
    value < 64 && bits & (1 << value) != 0
}

fn parse_field(field: &str, bounds: &Bounds) -> Result<(u64, bool), String> {
    let mut bits = 0;
    let mut star = false;
    for part in field.split(',') {
        let (b, s) = parse_range(part, bounds)?;
        bits |= b;
        star |= s;
    }
    Ok((bits, star))
}

fn parse_range(expr: &str, bounds: &Bounds) -> Result<(u64, bool), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step
        .first()
        .copied()
        .unwrap_or_default()
        .split('-')
        .collect();
    let single = low_high.len() == 1;
    let (start, mut end, mut star) = match low_high.as_slice() {
        ["*" | "?"] => (bounds.min, bounds.max, true),
        [one] => {
            let v = parse_value(one, bounds)?;
            (v, v, false)
        }
        [low, high] => (parse_value(low, bounds)?, parse_value(high, bounds)?, false),
        _ => return Err(format!("too many hyphens: {expr}")),
    };
    let step = match range_and_step.as_slice() {
        [_] => 1,
        [_, step] => {
            let step = parse_number(step)?;
            // `N/step` runs from N to the field's maximum.
            if single {
                end = bounds.max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < bounds.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            bounds.min
        ));
    }
    if end > bounds.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            bounds.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    let mut bits = 0_u64;
    let mut v = start;
    while v <= end {
        bits |= 1 << v;
        v += step;
    }
    Ok((bits, star))
}

fn parse_value(text: &str, bounds: &Bounds) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = bounds.names.iter().position(|n| *n == lower) {
        let i = u32::try_from(i).map_err(|_| format!("bad name {text}"))?;
        return Ok(i + bounds.names_from);
    }
    parse_number(text)
}

fn parse_number(text: &str) -> Result<u32, String> {
    let n: i64 = text
        .parse()
        .map_err(|_| format!("failed to parse int from {text}"))?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {text}"));
    }
    u32::try_from(n)
        .ok()
        .filter(|v| *v < 64)
        .ok_or_else(|| format!("number out of range: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(tz: &str, local: &str) -> Timestamp {
        let dt: DateTime = local.parse().unwrap();
        dt.to_zoned(TimeZone::get(tz).unwrap()).unwrap().timestamp()
    }

    fn next(expr: &str, tz: &str, local: &str) -> String {
        let zone = TimeZone::get(tz).unwrap();
        let t = Schedule::parse(expr)
            .unwrap()
            .next_after(at(tz, local), &zone)
            .unwrap();
        t.to_zoned(zone).strftime("%Y-%m-%dT%H:%M%:z").to_string()
    }

    #[test]
    fn accepted_and_rejected_expressions() {
        for ok in [
            "30-33 * * * *",
            "45-50 * * * *",
            "0 */2 * * *",
            "0 1-23/2 * * *",
            "0,30 * * * *",
            "0 0 * * Thu",
            "0 0 1 JAN,jul ?",
            "5/15 * * * *",
        ] {
            assert!(Schedule::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "-30 * * * *",
            "-50 * * * *",
            "50 * * -3 *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 7",
            "* * * *",
            "0 * * * * *",
            "@daily",
            "*/0 * * * *",
            "5-1 * * * *",
            "1-2-3 * * * *",
            "1/2/3 * * * *",
            "x * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_is_strictly_after_now() {
        assert_eq!(
            next("0 6 * * *", "Etc/UTC", "2026-03-01T06:00:00"),
            "2026-03-02T06:00+00:00"
        );
        assert_eq!(
            next("0 6 * * *", "Etc/UTC", "2026-03-01T05:59:59"),
            "2026-03-01T06:00+00:00"
        );
    }

    #[test]
    fn day_of_month_and_weekday_are_ored_unless_one_is_a_star() {
        // 2026-03-01 is a Sunday. "1st of the month or a Friday".
        assert_eq!(
            next("0 0 1 * 5", "Etc/UTC", "2026-03-01T12:00:00"),
            "2026-03-06T00:00+00:00"
        );
        // With a star weekday only the day of month counts.
        assert_eq!(
            next("0 0 1 * *", "Etc/UTC", "2026-03-01T12:00:00"),
            "2026-04-01T00:00+00:00"
        );
        // A stepped star clears the star: `*/2` weekdays are OR-ed with day 1.
        assert_eq!(
            next("0 0 1 * */2", "Etc/UTC", "2026-03-01T12:00:00"),
            "2026-03-03T00:00+00:00"
        );
    }

    #[test]
    fn leap_day_schedule() {
        assert_eq!(
            next("0 0 29 2 *", "Etc/UTC", "2026-03-01T00:00:00"),
            "2028-02-29T00:00+00:00"
        );
    }

    #[test]
    fn spring_forward_gap_is_skipped() {
        // Europe/Berlin jumps 02:00 → 03:00 on 2026-03-29: 02:30 does not exist that day.
        assert_eq!(
            next("30 2 * * *", "Europe/Berlin", "2026-03-29T00:00:00"),
            "2026-03-30T02:30+02:00"
        );
        // Hourly schedules go on across the gap.
        assert_eq!(
            next("0 * * * *", "Europe/Berlin", "2026-03-29T01:30:00"),
            "2026-03-29T03:00+02:00"
        );
    }

    #[test]
    fn fall_back_fires_repeated_local_times_once() {
        // Europe/Berlin repeats 02:00–02:59 on 2026-10-25 (first +02:00, then +01:00).
        assert_eq!(
            next("30 2 * * *", "Europe/Berlin", "2026-10-25T00:00:00"),
            "2026-10-25T02:30+02:00"
        );
        let zone = TimeZone::get("Europe/Berlin").unwrap();
        let first = Schedule::parse("30 2 * * *")
            .unwrap()
            .next_after(at("Europe/Berlin", "2026-10-25T00:00:00"), &zone)
            .unwrap();
        let second = Schedule::parse("30 2 * * *")
            .unwrap()
            .next_after(first, &zone)
            .unwrap();
        assert_eq!(
            second
                .to_zoned(zone)
                .strftime("%Y-%m-%dT%H:%M%:z")
                .to_string(),
            "2026-10-26T02:30+01:00"
        );
        // Hourly: 02:00 +01:00 repeats 02:00 +02:00 and is skipped; 03:00 follows.
        assert_eq!(
            next("0 * * * *", "Europe/Berlin", "2026-10-25T02:10:00"),
            "2026-10-25T03:00+01:00"
        );
    }

    #[test]
    fn half_hour_offset_zone() {
        assert_eq!(
            next("0 9 * * *", "Asia/Kolkata", "2026-03-01T09:00:00"),
            "2026-03-02T09:00+05:30"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parser_never_panics(expr in "[0-9*?/,a-zA-Z -]{0,30}") {
                let _ = Schedule::parse(&expr);
            }

            #[test]
            fn next_time_matches_and_is_after(
                minute in 0_u32..60, hour in 0_u32..24, secs in 0_i64..400_000_000,
                zone in proptest::sample::select(vec!["Etc/UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
            ) {
                let tz = TimeZone::get(zone).unwrap();
                let schedule = Schedule::parse(&format!("{minute} {hour} * * *")).unwrap();
                let now = Timestamp::from_second(1_700_000_000 + secs).unwrap();
                let next = schedule.next_after(now, &tz).unwrap();
                prop_assert!(next > now);
                let local = next.to_zoned(tz.clone());
                prop_assert_eq!(u32::from(local.minute().unsigned_abs()), minute);
                prop_assert_eq!(u32::from(local.hour().unsigned_abs()), hour);
                // Within two days (one skipped day at most, for a DST gap).
                prop_assert!(next.as_second() - now.as_second() <= 2 * 86_400 + 3_600);
            }
        }
    }
}
