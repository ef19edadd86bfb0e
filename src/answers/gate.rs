//! A CI gate on a run's figures: conditions such as
//! `min_largest_free_bytes < 4096` or `leak_bytes_per_1000_snapshots > 64`,
//! each naming a figure of the [`super::summary::Summary`], that fail the
//! build when they hold. A condition on a figure this run cannot know (no
//! sidecar, no retention) fails too: a gate that cannot look never passes.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    /// Longest spellings first, so `<=` is not read as `<`.
    const SPELLINGS: [(&'static str, Op); 6] =
        [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt)];

    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }

    fn spelling(self) -> &'static str {
        Self::SPELLINGS.iter().find(|(_, o)| *o == self).map_or("?", |(s, _)| s)
    }
}

/// One `--fail-if` condition: the run fails when `figure op value` holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// The figure's name, as `Summary::figures` names it (`min_largest_free_bytes`).
    pub figure: String,
    /// The comparison.
    pub op: Op,
    /// The value compared with.
    pub value: f64,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.figure, self.op.spelling(), self.value)
    }
}

impl FromStr for Condition {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::BadCondition { condition: s.to_string(), why: why.to_string() };
        let (at, op, len) = Op::SPELLINGS
            .iter()
            .filter_map(|(spelling, op)| s.find(spelling).map(|at| (at, *op, spelling.len())))
            .min_by_key(|(at, _, len)| (*at, usize::MAX - len))
            .ok_or_else(|| bad("no comparison (<, <=, >, >=, ==, !=)"))?;
        let figure = s[..at].trim();
        let number = s[at + len..].trim();
        if figure.is_empty() || !figure.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad("the left side must name a figure, such as min_largest_free_bytes"));
        }
        let value: f64 = number.replace('_', "").parse().map_err(|_| bad("the right side must be a number"))?;
        if !value.is_finite() {
            return Err(bad("the right side must be a finite number"));
        }
        Ok(Condition { figure: figure.to_string(), op, value })
    }
}

/// What a condition found.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// The condition does not hold: the gate passes it.
    Passed(f64),
    /// It holds: the run fails.
    Failed(f64),
    /// The run cannot know the figure: the run fails.
    Unknown,
}

/// Checks each condition against `figures` (from
/// [`super::summary::Summary::figures`]). A condition naming no figure is an
/// error listing the names.
pub fn check(conditions: &[Condition], figures: &[(&'static str, Option<f64>)]) -> Result<Vec<Verdict>> {
    conditions
        .iter()
        .map(|c| {
            let Some((_, value)) = figures.iter().find(|(name, _)| *name == c.figure) else {
                let names: Vec<&str> = figures.iter().map(|(n, _)| *n).collect();
                return Err(Error::BadCondition {
                    condition: c.to_string(),
                    why: format!("no figure `{}`; figures are {}", c.figure, names.join(", ")),
                });
            };
            Ok(match value {
                Some(v) if c.op.holds(*v, c.value) => Verdict::Failed(*v),
                Some(v) => Verdict::Passed(*v),
                None => Verdict::Unknown,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_with_or_without_spaces() {
        let c: Condition = "min_largest_free_bytes < 4096".parse().unwrap();
        assert_eq!((c.figure.as_str(), c.op, c.value), ("min_largest_free_bytes", Op::Lt, 4096.0));
        let c: Condition = "leak_bytes_per_1000_snapshots>=64.5".parse().unwrap();
        assert_eq!((c.op, c.value), (Op::Ge, 64.5));
        let c: Condition = "memory_errors != 0".parse().unwrap();
        assert_eq!(c.op, Op::Ne);
        for bad in ["", "x", "< 4", "a b < 4", "x < four", "x < inf"] {
            assert!(bad.parse::<Condition>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_condition_that_holds_fails_and_an_unknown_figure_fails_too() {
        let figures = [("min_free_bytes", Some(100.0)), ("leak_bytes_per_hour", None)];
        let c = |s: &str| s.parse::<Condition>().unwrap();
        let v = check(&[c("min_free_bytes < 4096"), c("min_free_bytes < 10"), c("leak_bytes_per_hour > 1")], &figures)
            .unwrap();
        assert_eq!(v, vec![Verdict::Failed(100.0), Verdict::Passed(100.0), Verdict::Unknown]);
        assert!(check(&[c("no_such_figure > 1")], &figures).is_err());
    }
}
