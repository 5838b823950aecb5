//! Scenario times written relative to the service's timers, so one scenario follows a
//! service whose timers it cannot set: `deadline_ms = "delayed_stop_ms + stop_grace_ms +
//! 2000"`. A time is a whole number of milliseconds, or a sum of terms, each a number, a
//! timer, or a number times a timer (`2 * delayed_stop_ms`).

use serde::Deserialize;

use super::ServiceSettings;

/// A time as written: milliseconds, or an expression over the timers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum TimeValue {
    Ms(u64),
    Expr(String),
}

impl Default for TimeValue {
    fn default() -> Self {
        TimeValue::Ms(0)
    }
}

impl From<u64> for TimeValue {
    fn from(ms: u64) -> Self {
        TimeValue::Ms(ms)
    }
}

/// The timers an expression may name, in milliseconds, with the service's defaults
/// (production's) where the scenario sets none.
pub const TIMERS: &[&str] = &[
    "delayed_stop_ms",
    "stop_grace_ms",
    "pre_active_window_ms",
    "exited_failure_stop_ms",
    "session_record_delay_ms",
    "finalizer_grace_ms",
    "reconcile_interval_ms",
    "dependency_timeout_ms",
];

fn timer(name: &str, s: &ServiceSettings) -> Option<u64> {
    Some(match name {
        "delayed_stop_ms" => s.delayed_stop_ms.unwrap_or(30_000),
        "stop_grace_ms" => u64::from(s.stop_grace_s.unwrap_or(10)) * 1000,
        "pre_active_window_ms" => s.pre_active_window_ms.unwrap_or(5_000),
        "exited_failure_stop_ms" => s.exited_failure_stop_ms.unwrap_or(10_000),
        "session_record_delay_ms" => s.session_record_delay_ms.unwrap_or(0),
        "finalizer_grace_ms" => s.finalizer_grace_ms.unwrap_or(1_000),
        "reconcile_interval_ms" => s.reconcile_interval_ms.unwrap_or(300_000),
        "dependency_timeout_ms" => s.dependency_timeout_ms.unwrap_or(10_000),
        _ => return None,
    })
}

impl TimeValue {
    /// Its value under these timers; an error says what is wrong with the expression.
    pub fn eval(&self, timers: &ServiceSettings) -> Result<u64, String> {
        let expr = match self {
            TimeValue::Ms(ms) => return Ok(*ms),
            TimeValue::Expr(expr) => expr,
        };
        let mut total: i128 = 0;
        let mut sign = 1i128;
        let mut expect_term = true;
        let tokens = tokenize(expr)?;
        let mut i = 0;
        while i < tokens.len() {
            let token = &tokens[i];
            if !expect_term {
                sign = match token.as_str() {
                    "+" => 1,
                    "-" => -1,
                    other => return Err(format!("expected + or - before {other:?} in {expr:?}")),
                };
                expect_term = true;
                i += 1;
                continue;
            }
            let value = |t: &str| -> Result<i128, String> {
                if let Ok(n) = t.parse::<u64>() {
                    return Ok(i128::from(n));
                }
                timer(t, timers).map(i128::from).ok_or_else(|| {
                    format!(
                        "{t:?} in {expr:?} is neither a number nor a timer ({})",
                        TIMERS.join(", ")
                    )
                })
            };
            let too_large = || format!("{expr:?} is too large");
            let mut term = value(token)?;
            if tokens.get(i + 1).is_some_and(|t| t == "*") {
                let Some(factor) = tokens.get(i + 2) else {
                    return Err(format!("{expr:?} ends after *"));
                };
                term = term.checked_mul(value(factor)?).ok_or_else(too_large)?;
                i += 2;
            }
            total = total.checked_add(sign * term).ok_or_else(too_large)?;
            expect_term = false;
            i += 1;
        }
        if expect_term {
            return Err(format!("{expr:?} is not a sum of numbers and timers"));
        }
        u64::try_from(total)
            .map_err(|_| format!("{expr:?} comes to {total} ms, below zero or too large"))
    }

    /// Whether it names any timer (and so follows the service's).
    pub fn is_relative(&self) -> bool {
        matches!(self, TimeValue::Expr(_))
    }
}

fn tokenize(expr: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in expr.chars() {
        match c {
            '+' | '-' | '*' | ' ' => {
                if !word.is_empty() {
                    tokens.push(std::mem::take(&mut word));
                }
                if c != ' ' {
                    tokens.push(c.to_string());
                }
            }
            c if c.is_ascii_alphanumeric() || c == '_' => word.push(c),
            other => {
                return Err(format!(
                    "{other:?} in {expr:?} is not part of a time expression"
                ));
            }
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timers() -> ServiceSettings {
        ServiceSettings {
            delayed_stop_ms: Some(1000),
            stop_grace_s: Some(1),
            ..ServiceSettings::default()
        }
    }

    fn eval(expr: &str) -> Result<u64, String> {
        TimeValue::Expr(expr.into()).eval(&timers())
    }

    #[test]
    fn expressions_add_timers_and_numbers() {
        assert_eq!(eval("delayed_stop_ms + stop_grace_ms + 2000"), Ok(4000));
        assert_eq!(eval("2 * delayed_stop_ms - 500"), Ok(1500));
        assert_eq!(eval("delayed_stop_ms*3"), Ok(3000));
        // Timers the scenario does not set take the service's defaults (production's).
        assert_eq!(eval("pre_active_window_ms"), Ok(5000));
        assert_eq!(TimeValue::Ms(7).eval(&timers()), Ok(7));
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        assert!(
            eval("delayed_stop + 1")
                .unwrap_err()
                .contains("neither a number nor a timer")
        );
        assert!(
            eval("1000 - delayed_stop_ms - 1")
                .unwrap_err()
                .contains("below zero")
        );
        assert!(eval("1000 +").unwrap_err().contains("not a sum"));
        assert!(eval("1000 2000").unwrap_err().contains("expected + or -"));
        assert!(eval("1000 / 2").unwrap_err().contains("'/'"));
        assert!(eval("").is_err());
        // Numbers that overflowed the sum crashed `chaos validate` (exit 101).
        let huge = "18446744073709551615 * 18446744073709551615 * 18446744073709551615 * 18446744073709551615 + delayed_stop_ms";
        assert!(eval(huge).unwrap_err().contains("too large"));
    }
}
