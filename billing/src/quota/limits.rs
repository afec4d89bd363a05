//! What an organization, a team or a key may spend and how fast: a budget
//! per calendar period, and rate limits per minute.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::money::Picodollars;

const DAY_MS: i64 = 86_400_000;

/// A budget's period: UTC calendar days, weeks (from Monday), months, or
/// the whole life of the thing it is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Daily,
    Weekly,
    Monthly,
    Lifetime,
}

/// Days since the epoch to (year, month 1-12, day 1-31) (Howard Hinnant's
/// civil-from-days); the ledger's monthly partitions use it too.
pub(crate) fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since the epoch.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Period {
    /// The name, as written in budgets.
    pub fn name(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::Lifetime => "lifetime",
        }
    }

    /// The period containing `now_ms`: its start, inclusive, and end,
    /// exclusive (`i64::MAX` for a lifetime).
    pub fn window(self, now_ms: i64) -> (i64, i64) {
        let day = now_ms.div_euclid(DAY_MS);
        match self {
            Self::Daily => (day * DAY_MS, (day + 1) * DAY_MS),
            Self::Weekly => {
                // 1970-01-01 was a Thursday: Monday is 3 days before it.
                let monday = (day + 3).div_euclid(7) * 7 - 3;
                (monday * DAY_MS, (monday + 7) * DAY_MS)
            }
            Self::Monthly => {
                let (y, m, _) = civil(day);
                let start = days_from_civil(y, m, 1);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (start * DAY_MS, days_from_civil(ny, nm, 1) * DAY_MS)
            }
            Self::Lifetime => (0, i64::MAX),
        }
    }
}

/// Whether going over a budget rejects requests or only alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    Hard,
    Soft,
}

impl Enforcement {
    /// The name, as written in budgets.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hard => "hard",
            Self::Soft => "soft",
        }
    }
}

/// A spending limit, in USD, in tokens, or both, per period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    #[serde(default)]
    pub limit_usd: Option<f64>,
    #[serde(default)]
    pub limit_tokens: Option<u64>,
    pub period: Period,
    pub enforcement: Enforcement,
}

impl Budget {
    /// The USD limit in picodollars.
    pub fn limit_cost(&self) -> Option<Picodollars> {
        self.limit_usd
            .map(|usd| Picodollars((usd * 1e12).round().clamp(0.0, i64::MAX as f64) as i64))
    }

    /// Rejects a budget that limits nothing or a negative or absurd amount.
    pub fn validate(&self) -> Result<(), String> {
        if self.limit_usd.is_none() && self.limit_tokens.is_none() {
            return Err("a budget needs limit_usd, limit_tokens or both".into());
        }
        if let Some(usd) = self.limit_usd {
            if !(usd.is_finite() && (0.0..=1e9).contains(&usd)) {
                return Err("limit_usd must be between 0 and 1e9".into());
            }
        }
        Ok(())
    }
}

/// Requests per minute, tokens per minute (counted when requests finish)
/// and requests in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u64>,
}

impl Rates {
    /// Whether nothing is limited.
    pub fn is_empty(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && self.max_concurrent.is_none()
    }
}

/// Rate limits: over all models, and per model (by the configured model
/// name that serves the request).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, Rates>,
}

impl Limits {
    /// The limits over all models.
    pub fn all(&self) -> Rates {
        Rates {
            rpm: self.rpm,
            tpm: self.tpm,
            max_concurrent: self.max_concurrent,
        }
    }

    /// Whether nothing is limited.
    pub fn is_empty(&self) -> bool {
        self.all().is_empty() && self.models.values().all(Rates::is_empty)
    }
}

/// One level's budget and limits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quota {
    pub budget: Option<Budget>,
    pub limits: Option<Limits>,
}

impl Quota {
    /// Whether it limits nothing.
    pub fn is_empty(&self) -> bool {
        self.budget.is_none() && self.limits.as_ref().is_none_or(Limits::is_empty)
    }
}

/// The three levels over a key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quotas {
    pub org: Quota,
    pub team: Quota,
    pub key: Quota,
}

impl Quotas {
    /// Whether none of them limits anything.
    pub fn is_empty(&self) -> bool {
        self.org.is_empty() && self.team.is_empty() && self.key.is_empty()
    }

    /// Whether any hard budget applies (requests then reserve their worst case).
    pub fn has_hard_budget(&self) -> bool {
        [&self.org, &self.team, &self.key].iter().any(|q| {
            q.budget
                .as_ref()
                .is_some_and(|b| b.enforcement == Enforcement::Hard)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::{parse_rfc3339, rfc3339};

    fn at(s: &str) -> i64 {
        parse_rfc3339(s).unwrap()
    }

    fn window(p: Period, s: &str) -> (String, String) {
        let (a, b) = p.window(at(s));
        (
            rfc3339(a),
            if b == i64::MAX {
                "end".into()
            } else {
                rfc3339(b)
            },
        )
    }

    #[test]
    fn periods_are_utc_calendar_windows() {
        let w = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            window(Period::Daily, "2026-11-21T23:59:59.999Z"),
            w("2026-11-21T00:00:00.000Z", "2026-11-22T00:00:00.000Z")
        );
        // 2026-11-21 is a Saturday; its week began on Monday the 16th.
        assert_eq!(
            window(Period::Weekly, "2026-11-21T10:00:00Z"),
            w("2026-11-16T00:00:00.000Z", "2026-11-23T00:00:00.000Z")
        );
        assert_eq!(
            window(Period::Weekly, "2026-11-16T00:00:00Z").0,
            "2026-11-16T00:00:00.000Z"
        );
        assert_eq!(
            window(Period::Monthly, "2026-12-31T23:00:00Z"),
            w("2026-12-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z")
        );
        assert_eq!(
            window(Period::Monthly, "2028-02-29T12:00:00Z"),
            w("2028-02-01T00:00:00.000Z", "2028-03-01T00:00:00.000Z")
        );
        assert_eq!(
            window(Period::Lifetime, "2026-11-21T10:00:00Z"),
            w("1970-01-01T00:00:00.000Z", "end")
        );
    }

    #[test]
    fn budgets_parse_in_the_admin_shape() {
        let b: Budget = serde_json::from_str(
            r#"{"limit_usd": 50.0, "limit_tokens": null, "period": "monthly", "enforcement": "hard"}"#,
        )
        .unwrap();
        assert_eq!(b.limit_cost(), Some(Picodollars(50_000_000_000_000)));
        assert!(b.validate().is_ok());
        let none: Budget =
            serde_json::from_str(r#"{"period": "daily", "enforcement": "soft"}"#).unwrap();
        assert!(none.validate().is_err());
        assert!(
            serde_json::from_str::<Budget>(r#"{"period": "hourly", "enforcement": "soft"}"#)
                .is_err()
        );
        let l: Limits = serde_json::from_str(
            r#"{"rpm": 600, "tpm": 2000000, "max_concurrent": 16, "models": {"glm-5": {"rpm": 10}}}"#,
        )
        .unwrap();
        assert_eq!(l.all().rpm, Some(600));
        assert_eq!(l.models["glm-5"].rpm, Some(10));
        assert!(serde_json::from_str::<Limits>(r#"{"rpd": 1}"#).is_err());
    }
}
