//! Time, behind a port so tests control it.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;

    /// Now as ISO-8601 with milliseconds and `Z`, the format SWB and the table use.
    fn now_iso(&self) -> String {
        iso_millis(self.now())
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock stopped at a fixed instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

/// `2024-05-01T12:00:00.000Z`.
pub fn iso_millis(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t
        .replace_nanosecond((t.nanosecond() / 1_000_000) * 1_000_000)
        .unwrap_or(t);
    let mut s = t.format(&Rfc3339).unwrap_or_default();
    // Rfc3339 drops trailing zero fractions; SWB always writes three digits.
    if let Some(pos) = s.rfind('Z') {
        let body = &s[..pos];
        let frac_len = body.rfind('.').map(|dot| body.len() - dot - 1);
        s = match frac_len {
            None => format!("{body}.000Z"),
            Some(n) if n < 3 => format!("{body}{}Z", "0".repeat(3 - n)),
            Some(_) => s,
        };
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn when_formatting_then_milliseconds_are_always_three_digits() {
        assert_eq!(
            iso_millis(datetime!(2024-05-01 12:00:00 UTC)),
            "2024-05-01T12:00:00.000Z"
        );
        assert_eq!(
            iso_millis(datetime!(2024-05-01 12:00:00.5 UTC)),
            "2024-05-01T12:00:00.500Z"
        );
        assert_eq!(
            iso_millis(datetime!(2024-05-01 12:00:00.123456 UTC)),
            "2024-05-01T12:00:00.123Z"
        );
    }
}
