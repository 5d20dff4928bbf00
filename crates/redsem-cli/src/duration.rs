//! Durations on the command line: `500ms`, `10s`, `1.5s`, `2m`, `1h`.

use std::time::Duration;

/// Parses `<number><unit>` with unit `ms`, `s`, `m` or `h`; the number may
/// have a decimal fraction (`1.5s`). A bare `0` is accepted (zero needs no
/// unit); other numbers need one, so `--wait 10` is not silently read as
/// 10 ms or 10 hours.
pub(crate) fn parse_duration(input: &str) -> Result<Duration, String> {
    let text = input.trim();
    if text.is_empty() {
        return Err("empty duration; use for example 500ms, 10s, 2m or 1h".to_owned());
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let nanos_per_unit: u128 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        "" if !number.is_empty() && number.chars().all(|c| c == '0' || c == '.') => 1,
        "" => {
            return Err(format!(
                "`{input}` has no unit; write for example {number}s or {number}ms"
            ))
        }
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{input}`; use ms, s, m or h (500ms, 10s, 2m, 1h)"
            ))
        }
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(format!(
            "`{input}` is not a duration; use for example 500ms, 10s, 2m or 1h"
        ));
    }
    let too_long = || format!("`{input}` is too long a duration");
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_long())?
    };
    let mut nanos = whole.checked_mul(nanos_per_unit).ok_or_else(too_long)?;
    // The fraction, digit by digit, down to the nanosecond.
    let mut scale = nanos_per_unit;
    for digit in fraction.chars() {
        scale /= 10;
        let d = u128::from(digit.to_digit(10).unwrap_or(0));
        nanos = nanos.checked_add(d * scale).ok_or_else(too_long)?;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| too_long())?;
    // The remainder is below 10^9 and fits a u32.
    let sub = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, sub))
}

/// `1.25s`, `500ms`, `2m05s`: short, for status lines.
pub(crate) fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{}.{:01}s", ms / 1_000, (ms % 1_000) / 100)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1_000)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration(" 3s ").unwrap(), Duration::from_secs(3));
    }

    #[test]
    fn fractions() {
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0.25m").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration(".5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2.s").unwrap(), Duration::from_secs(2));
        assert_eq!(
            parse_duration("1.5ms").unwrap(),
            Duration::from_micros(1500)
        );
    }

    #[test]
    fn zero_needs_no_unit() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0.0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn bad_input_says_what_to_write() {
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
        assert!(parse_duration("10x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("10 s").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("").unwrap_err().contains("empty"));
        assert!(parse_duration("s").unwrap_err().contains("not a duration"));
        assert!(parse_duration("1.2.3s")
            .unwrap_err()
            .contains("not a duration"));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999999999999999999999999h")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn shown_short() {
        assert_eq!(show(Duration::from_millis(420)), "420ms");
        assert_eq!(show(Duration::from_millis(8_420)), "8.4s");
        assert_eq!(show(Duration::from_secs(125)), "2m05s");
        assert_eq!(show(Duration::from_secs(3_720)), "1h02m");
    }
}
