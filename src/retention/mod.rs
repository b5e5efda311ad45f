//! Which snapshots a retention policy keeps, with restic's documented
//! semantics for each `--keep-*` option (restic manual, "Removing
//! snapshots according to a policy"):
//! - `last n`: the n most recent snapshots;
//! - `hourly/daily/weekly/monthly/yearly n`: for the n most recent hours
//!   (days, ISO weeks from Monday, months, years) that hold a snapshot, the
//!   newest snapshot of each; calendar boundaries, not distances from now;
//!   `unlimited` keeps one per period for ever;
//! - `within d`: every snapshot no older than d before the newest one;
//! - a snapshot kept by any option is kept (the options are ORed); when a
//!   calendar option finds fewer periods than it asks for, the oldest
//!   snapshot is kept too; snapshots dated in the future are kept;
//! - a policy that asks for nothing is refused.
//!
//! Pure: the `forget` command applies it to the snapshots it lists.

mod amount;

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::error::{Error, Result};
pub use amount::{Count, Span};

/// The `--keep-*` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    pub last: Option<Count>,
    pub hourly: Option<Count>,
    pub daily: Option<Count>,
    pub weekly: Option<Count>,
    pub monthly: Option<Count>,
    pub yearly: Option<Count>,
    pub within: Option<Span>,
}

/// The calendar periods, each with the key that tells its periods apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    fn key(self, at: DateTime<Utc>) -> (i32, u32, u32, u32) {
        match self {
            Period::Hour => (at.year(), at.ordinal(), at.hour(), 0),
            Period::Day => (at.year(), at.ordinal(), 0, 0),
            Period::Week => {
                let week = at.iso_week();
                (week.year(), week.week(), 0, 0)
            }
            Period::Month => (at.year(), at.month(), 0, 0),
            Period::Year => (at.year(), 0, 0, 0),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Period::Hour => "hourly",
            Period::Day => "daily",
            Period::Week => "weekly",
            Period::Month => "monthly",
            Period::Year => "yearly",
        }
    }
}

/// One snapshot's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Its index in the input.
    pub index: usize,
    /// Why it is kept (`daily snapshot`, `last snapshot`, …); empty: removed.
    pub reasons: Vec<String>,
}

impl Decision {
    pub fn kept(&self) -> bool {
        !self.reasons.is_empty()
    }
}

impl Policy {
    /// Whether the policy asks to keep anything.
    pub fn is_empty(&self) -> bool {
        let none = |c: Option<Count>| c.is_none_or(|c| c == Count::Last(0));
        none(self.last)
            && none(self.hourly)
            && none(self.daily)
            && none(self.weekly)
            && none(self.monthly)
            && none(self.yearly)
            && self.within.is_none()
    }

    /// The fate of each snapshot taken at `times` (any order), judged at
    /// `now`; in the order of `times`.
    pub fn apply(&self, times: &[DateTime<Utc>], now: DateTime<Utc>) -> Result<Vec<Decision>> {
        if self.is_empty() {
            return Err(Error::Config(
                "the policy keeps nothing: pass at least one --keep-* option (restic's rule: an empty policy removes nothing)".into(),
            ));
        }
        let mut reasons: Vec<BTreeSet<String>> = vec![BTreeSet::new(); times.len()];
        let mut newest_first: Vec<usize> = (0..times.len()).collect();
        newest_first.sort_by(|a, b| times[*b].cmp(&times[*a]));
        for &i in &newest_first {
            if times[i] > now {
                reasons[i].insert("in the future".into());
            }
        }
        if let Some(count) = self.last {
            let n = limit(count, newest_first.len());
            for &i in newest_first.iter().take(n) {
                reasons[i].insert("last snapshot".into());
            }
        }
        let periods = [
            (self.hourly, Period::Hour),
            (self.daily, Period::Day),
            (self.weekly, Period::Week),
            (self.monthly, Period::Month),
            (self.yearly, Period::Year),
        ];
        for (count, period) in periods {
            let Some(count) = count.filter(|c| *c != Count::Last(0)) else {
                continue;
            };
            let wanted = limit(count, newest_first.len());
            let mut last_key = None;
            let mut found = 0;
            for &i in &newest_first {
                if found == wanted {
                    break;
                }
                let key = period.key(times[i]);
                if last_key != Some(key) {
                    last_key = Some(key);
                    found += 1;
                    reasons[i].insert(format!("{} snapshot", period.name()));
                }
            }
            if found < wanted
                && count != Count::Unlimited
                && let Some(&oldest) = newest_first.last()
            {
                reasons[oldest].insert(format!("oldest {} snapshot", period.name()));
            }
        }
        if let (Some(span), Some(&newest)) = (self.within, newest_first.first()) {
            let since = span.before(times[newest]);
            for &i in &newest_first {
                if times[i] >= since {
                    reasons[i].insert("within".into());
                }
            }
        }
        Ok(reasons
            .into_iter()
            .enumerate()
            .map(|(index, reasons)| Decision {
                index,
                reasons: reasons.into_iter().collect(),
            })
            .collect())
    }
}

fn limit(count: Count, all: usize) -> usize {
    match count {
        Count::Last(n) => (n as usize).min(all),
        Count::Unlimited => all,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn kept(decisions: &[Decision]) -> Vec<usize> {
        decisions
            .iter()
            .filter(|d| d.kept())
            .map(|d| d.index)
            .collect()
    }

    /// The manual's example: one backup every Sunday for 12 weeks;
    /// `--keep-daily 4` keeps the last four Sundays.
    #[test]
    fn twelve_sundays_keep_daily_4_keeps_the_last_four() {
        let sundays: Vec<DateTime<Utc>> = (0..12)
            .map(|week| at("2019-09-01T11:00:00Z") + TimeDelta::weeks(week))
            .collect();
        assert_eq!(sundays[11], at("2019-11-17T11:00:00Z"));
        let policy = Policy {
            daily: Some(Count::Last(4)),
            ..Policy::default()
        };
        let decisions = policy.apply(&sundays, at("2019-11-18T00:00:00Z")).unwrap();
        assert_eq!(kept(&decisions), [8, 9, 10, 11]);
        assert_eq!(decisions[11].reasons, ["daily snapshot"]);
    }

    /// The manual's example: a backup every day for 100 years, with
    /// `--keep-daily 7 --keep-weekly 5 --keep-monthly 12 --keep-yearly 75`,
    /// keeps 7 dailies, 4 more weeklies, 12 or 11 monthlies and 75 or 74
    /// yearlies.
    #[test]
    fn a_century_of_dailies_keeps_what_the_manual_counts() {
        // Ending on a Sunday, the last day of an ISO week, as the manual's
        // count assumes (seven days ending on another day span two weeks).
        let end = at("2024-12-29T02:00:00Z");
        assert_eq!(end.weekday(), chrono::Weekday::Sun);
        let days: Vec<DateTime<Utc>> = (0..36_525)
            .rev()
            .map(|d| end - TimeDelta::days(d))
            .collect();
        let policy = Policy {
            daily: Some(Count::Last(7)),
            weekly: Some(Count::Last(5)),
            monthly: Some(Count::Last(12)),
            yearly: Some(Count::Last(75)),
            ..Policy::default()
        };
        let now = *days.last().unwrap() + TimeDelta::hours(1);
        let decisions = policy.apply(&days, now).unwrap();
        let with = |reason: &str| {
            decisions
                .iter()
                .filter(|d| d.reasons.iter().any(|r| r == reason))
                .count()
        };
        // Kept for a reason and for none of the shorter periods' reasons.
        let only = |reason: &str, shorter: &[&str]| {
            decisions
                .iter()
                .filter(|d| d.reasons.iter().any(|r| r == reason))
                .filter(|d| !d.reasons.iter().any(|r| shorter.contains(&r.as_str())))
                .count()
        };
        assert_eq!(with("daily snapshot"), 7);
        assert_eq!(with("weekly snapshot"), 5);
        assert_eq!(
            only("weekly snapshot", &["daily snapshot"]),
            4,
            "the 7 dailies include 1 weekly"
        );
        let monthlies = only("monthly snapshot", &["daily snapshot", "weekly snapshot"]);
        assert!((11..=12).contains(&monthlies), "{monthlies}");
        let shorter = ["daily snapshot", "weekly snapshot", "monthly snapshot"];
        let yearlies = only("yearly snapshot", &shorter);
        assert!((74..=75).contains(&yearlies), "{yearlies}");
        assert_eq!(kept(&decisions).len(), 7 + 4 + monthlies + yearlies);
    }

    #[test]
    fn keep_last_within_and_the_future() {
        let times = [
            at("2026-11-01T00:00:00Z"),
            at("2026-11-20T00:00:00Z"),
            at("2026-11-30T00:00:00Z"),
            at("2026-12-01T00:00:00Z"),
            at("2027-01-01T00:00:00Z"),
        ];
        let now = at("2026-12-02T00:00:00Z");
        let last = Policy {
            last: Some(Count::Last(2)),
            ..Policy::default()
        };
        assert_eq!(kept(&last.apply(&times, now).unwrap()), [3, 4]);
        // Within 1m of the newest (2027-01-01): from 2026-12-01 on.
        let within = Policy {
            within: Some("1m".parse().unwrap()),
            ..Policy::default()
        };
        let decisions = within.apply(&times, now).unwrap();
        assert_eq!(kept(&decisions), [3, 4]);
        assert!(decisions[4].reasons.contains(&"in the future".to_owned()));
        let within = Policy {
            within: Some("12d".parse().unwrap()),
            last: Some(Count::Last(1)),
            ..Policy::default()
        };
        assert_eq!(kept(&within.apply(&times[..4], now).unwrap()), [1, 2, 3]);
    }

    #[test]
    fn too_few_periods_keep_the_oldest_and_unlimited_keeps_one_each() {
        let times = [
            at("2026-01-05T10:00:00Z"),
            at("2026-01-05T12:00:00Z"),
            at("2026-03-01T00:00:00Z"),
        ];
        let now = at("2026-12-01T00:00:00Z");
        let monthly = Policy {
            monthly: Some(Count::Last(5)),
            ..Policy::default()
        };
        let decisions = monthly.apply(&times, now).unwrap();
        assert_eq!(kept(&decisions), [0, 1, 2]);
        assert_eq!(decisions[0].reasons, ["oldest monthly snapshot"]);
        let hourly = Policy {
            hourly: Some(Count::Unlimited),
            ..Policy::default()
        };
        assert_eq!(kept(&hourly.apply(&times, now).unwrap()), [0, 1, 2]);
        let weekly = Policy {
            weekly: Some("unlimited".parse().unwrap()),
            ..Policy::default()
        };
        // 2026-01-05 is a Monday: both of that day fall in one ISO week.
        assert_eq!(kept(&weekly.apply(&times, now).unwrap()), [1, 2]);
    }

    #[test]
    fn an_empty_policy_is_refused() {
        let times = [at("2026-01-01T00:00:00Z")];
        let empty = Policy {
            last: Some(Count::Last(0)),
            ..Policy::default()
        };
        assert!(empty.apply(&times, times[0]).is_err());
    }
}
