//! The amounts a retention policy is given: counts (`7`, `unlimited`) and
//! calendar spans (`1y6m7d12h`), as restic spells them.

use chrono::{DateTime, Months, TimeDelta, Utc};

/// How many of something to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Last(u32),
    Unlimited,
}

impl std::str::FromStr for Count {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text.trim() {
            "unlimited" => Ok(Count::Unlimited),
            n => n
                .parse()
                .map(Count::Last)
                .map_err(|_| format!("{n:?} is not a count or \"unlimited\"")),
        }
    }
}

/// A count as a number, or `"unlimited"` (or a number in a string), as
/// a Lambda event gives it.
impl<'de> serde::Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Given {
            Number(u32),
            Text(String),
        }
        match Given::deserialize(d)? {
            Given::Number(n) => Ok(Count::Last(n)),
            Given::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A span of calendar time: `2y5m7d3h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
}

impl std::str::FromStr for Span {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        // A bare 0 needs no unit: none at all.
        if text.trim() == "0" {
            return Ok(Span::default());
        }
        let mut span = Span::default();
        let mut number = String::new();
        for c in text.trim().chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let n: u32 = number
                .parse()
                .map_err(|_| format!("{text:?} is not a span such as 1y6m7d12h"))?;
            number.clear();
            match c {
                'y' => span.years += n,
                'm' => span.months += n,
                'd' => span.days += n,
                'h' => span.hours += n,
                _ => return Err(format!("{text:?}: {c:?} is not y, m, d or h")),
            }
        }
        // "0h" is a span (no grace); "" and "7" are not.
        if !number.is_empty() || text.trim().is_empty() {
            return Err(format!("{text:?} is not a span such as 1y6m7d12h"));
        }
        Ok(span)
    }
}

impl<'de> serde::Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let parts = [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ];
        if *self == Span::default() {
            return f.write_str("0h");
        }
        for (n, unit) in parts.into_iter().filter(|(n, _)| *n > 0) {
            write!(f, "{n}{unit}")?;
        }
        Ok(())
    }
}

impl Span {
    /// The moment `self` before `at`, by the calendar.
    pub fn before(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let months = self.years * 12 + self.months;
        let at = at
            .checked_sub_months(Months::new(months))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        at - TimeDelta::days(i64::from(self.days)) - TimeDelta::hours(i64::from(self.hours))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_counts_parse_as_restic_spells_them() {
        assert_eq!(
            "2y5m7d3h".parse::<Span>(),
            Ok(Span {
                years: 2,
                months: 5,
                days: 7,
                hours: 3
            })
        );
        for bad in ["", "7", "1w", "d", "00"] {
            assert!(bad.parse::<Span>().is_err(), "{bad}");
        }
        // A bare 0 means none, as 0h does.
        assert_eq!("0".parse::<Span>(), Ok(Span::default()));
        assert_eq!("0".parse::<Span>(), "0h".parse::<Span>());
        assert!("seven".parse::<Count>().is_err());
    }
}
