//! Civil dates and RFC 3339 UTC timestamps, hand-written (Howard Hinnant's day algorithms)
//! so that the runtime and the network crate need no date crate.

/// How many fraction digits a timestamp carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Whole seconds: `2024-01-02T03:04:05Z` (image configs, network `Created`).
    Seconds,
    /// Nine fraction digits, always: `2024-01-02T03:04:05.000000007Z` (Docker's container
    /// and event times, the OCI runtime's state).
    Nanos,
}

/// The proleptic Gregorian (year, month 1-12, day 1-31) of `days` since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of the proleptic Gregorian date `y`-`m`-`d` (month 1-12); the
/// inverse of [`civil_from_days`].
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let (m, d) = (i64::from(m), i64::from(d));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats a unix time (`secs`, `nanos`) as RFC 3339 UTC with the given precision; `nanos`
/// is ignored for [`Precision::Seconds`].
pub fn rfc3339(secs: i64, nanos: u32, precision: Precision) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let (h, mi, s) = (sod / 3600, sod % 3600 / 60, sod % 60);
    match precision {
        Precision::Seconds => format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
        Precision::Nanos => format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{nanos:09}Z"),
    }
}

/// Now as (seconds, nanoseconds) since the epoch; the epoch itself if the clock is before it.
pub fn now_unix() -> (i64, u32) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos())
}

/// A Go duration: `1h2m3s`, `500ms`, `1.5s`, `10us`, `0`. Returns nanoseconds; the error
/// is worded as Go's `time.ParseDuration`.
pub fn parse_go_duration(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(0);
    }
    let mut total = 0f64;
    let mut rest = t;
    if rest.is_empty() {
        return Err(format!("invalid duration {s:?}"));
    }
    while !rest.is_empty() {
        let ne = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {s:?}"))?;
        let n: f64 = rest[..ne]
            .parse()
            .map_err(|_| format!("time: invalid duration {s:?}"))?;
        rest = &rest[ne..];
        let ue = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mul = match &rest[..ue] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            u => return Err(format!("time: unknown unit {u:?} in duration {s:?}")),
        };
        total += n * mul;
        rest = &rest[ue..];
    }
    Ok(total as i64)
}

/// A point in time as docker's `--since`/`--until` and the `until` filter take it, as
/// unix seconds with nanoseconds (`"secs.nnnnnnnnn"`, or whole seconds as given): unix
/// seconds (`1700000000`, `1700000000.5`), a Go duration back from `now_ns` (`10m`,
/// `1h30m`), RFC 3339, or a date (`2024-01-02`, midnight UTC). `None` for anything else.
pub fn docker_timestamp(s: &str, now_ns: i64) -> Option<String> {
    if s.parse::<f64>().is_ok() {
        return Some(s.to_string());
    }
    if let Ok(ns) = parse_go_duration(s) {
        let t = now_ns - ns;
        return Some(format!(
            "{}.{:09}",
            t.div_euclid(1_000_000_000),
            t.rem_euclid(1_000_000_000)
        ));
    }
    if let Some((secs, nanos)) = parse_rfc3339(s) {
        return Some(format!("{secs}.{nanos:09}"));
    }
    if s.len() == 10 {
        if let Some((secs, _)) = parse_rfc3339(&format!("{s}T00:00:00Z")) {
            return Some(secs.to_string());
        }
    }
    None
}

/// Now as RFC 3339 UTC with the given precision.
pub fn now_rfc3339(precision: Precision) -> String {
    let (s, n) = now_unix();
    rfc3339(s, n, precision)
}

/// Parses RFC 3339 (`2024-01-02T03:04:05.123Z`, a space for the `T`, `+01:00` offsets, no
/// zone meaning UTC) to a unix time (seconds, nanoseconds); fraction digits past nine are
/// cut. `None` for anything else, out-of-range fields included.
pub fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b'T' && b[10] != b't' && b[10] != b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<u32> {
        let f = s.get(r)?;
        if !f.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        f.parse().ok()
    };
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, se) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // 60: a leap second, as RFC 3339 allows.
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(f) = rest.strip_prefix('.') {
        let end = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
        if end == 0 {
            return None;
        }
        let mut padded: String = f[..end].chars().take(9).collect();
        while padded.len() < 9 {
            padded.push('0');
        }
        nanos = padded.parse().ok()?;
        rest = &f[end..];
    }
    let off = match rest.as_bytes() {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]
            if [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) =>
        {
            let digit = |c: &u8| i64::from(c - b'0');
            let o = (digit(h1) * 10 + digit(h2)) * 3600 + (digit(m1) * 10 + digit(m2)) * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(se) - off;
    Some((secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates_both_precisions() {
        assert_eq!(
            rfc3339(0, 0, Precision::Nanos),
            "1970-01-01T00:00:00.000000000Z"
        );
        assert_eq!(rfc3339(0, 9, Precision::Seconds), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(951_782_400, 5, Precision::Nanos),
            "2000-02-29T00:00:00.000000005Z"
        );
        assert_eq!(
            rfc3339(951_782_400, 5, Precision::Seconds),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(1_700_000_000, 0, Precision::Nanos),
            "2023-11-14T22:13:20.000000000Z"
        );
        assert_eq!(
            rfc3339(1_796_276_096, 0, Precision::Seconds),
            "2026-12-03T05:34:56Z"
        );
        // Before the epoch: the day and the time of day still count forwards.
        assert_eq!(rfc3339(-1, 0, Precision::Seconds), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn civil_round_trips() {
        for days in [-800_000, -1, 0, 59, 60, 11_016, 19_675, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert!(
                (1..=12).contains(&m) && (1..=31).contains(&d),
                "{days}: {y}-{m}-{d}"
            );
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(days_from_civil(2024, 3, 1), 19_783);
    }

    #[test]
    fn parse_round_trips_and_rejects() {
        for (secs, nanos) in [(0, 0), (951_782_400, 5), (1_700_000_000, 123_456_789)] {
            for p in [Precision::Nanos, Precision::Seconds] {
                let want = if p == Precision::Nanos { nanos } else { 0 };
                assert_eq!(parse_rfc3339(&rfc3339(secs, nanos, p)), Some((secs, want)));
            }
        }
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20.5+01:00"),
            Some((1_700_000_000, 500_000_000))
        );
        assert_eq!(
            parse_rfc3339("2023-11-14 21:13:20-01:00"),
            Some((1_700_000_000, 0))
        );
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:00.1234567891Z"),
            Some((0, 123_456_789))
        );
        for bad in [
            "",
            "yesterday",
            "2023-13-01T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+1:00",
            "2023-11-14T22:13:20Q",
            "+023-11-14T22:13:20Z",
            "2023/11/14T22:13:20Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn docker_timestamps_of_every_form() {
        let now = 1_700_000_000_500_000_000i64;
        assert_eq!(
            docker_timestamp("1600000000", now).as_deref(),
            Some("1600000000")
        );
        assert_eq!(docker_timestamp("1.5", now).as_deref(), Some("1.5"));
        assert_eq!(
            docker_timestamp("1h30m", now).as_deref(),
            Some("1699994600.500000000")
        );
        assert_eq!(
            docker_timestamp("2024-01-02T03:04:05.25Z", now).as_deref(),
            Some("1704164645.250000000")
        );
        assert_eq!(
            docker_timestamp("2024-01-02", now).as_deref(),
            Some("1704153600")
        );
        for bad in ["", "soon", "5y", "2024-13-02", "1h-"] {
            assert_eq!(docker_timestamp(bad, now), None, "{bad:?}");
        }
        assert!(parse_go_duration("10").is_err(), "a duration needs a unit");
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
    }

    #[test]
    fn now_is_after_this_code_was_written() {
        let now = now_rfc3339(Precision::Nanos);
        assert_eq!(now.len(), "2026-12-03T00:00:00.000000000Z".len(), "{now}");
        assert!(now.as_str() > "2026-01-01", "{now}");
    }
}
