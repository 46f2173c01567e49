//! Fail points: named places where a fault harness can make the process die on the spot, as a SIGKILL would.
//!
//! They exist to prove crash safety at the exact moments that matter (the acquirer has answered but nothing is
//! committed yet, the outcome is committed but the caller never heard it). They are off unless the environment
//! variable `PAYGATE_FAILPOINTS` names them when the process starts:
//!
//! ```text
//! PAYGATE_FAILPOINTS="approve.after_acquirer=0.01,approve.after_outcome=0.005"
//! ```
//!
//! Each entry is `name=probability` (0 < p ≤ 1). When a named point is reached, the process aborts with that
//! probability: no destructor runs, no buffer is flushed, no transaction is finished — the same as `kill -9`.
//! `serve` logs a warning naming the armed points at start-up. Unknown names are refused, so a typo cannot
//! silently test nothing.

use std::sync::OnceLock;

/// Every fail point in the code base, so a mistyped name is an error rather than a test that proves nothing.
pub const POINTS: &[&str] = &[
    // The payment is recorded (REQUESTED) and the acquirer is about to be called.
    "approve.before_acquirer",
    // The acquirer answered an approval; the result is not committed.
    "approve.after_acquirer",
    // A cancel is reserved (PENDING, its amount taken from the balance) and the acquirer is about to be called.
    "cancel.before_acquirer",
    // The acquirer answered a cancel; the result is not committed.
    "cancel.after_acquirer",
    // The cancel, with the request's idempotent answer, is committed; the HTTP answer is not sent yet.
    "cancel.after_outcome",
    // The inquiry worker learned the acquirer's answer; the result is not committed.
    "inquiry.after_acquirer",
    // The approval, with the request's idempotent answer, is committed; the HTTP answer is not sent yet.
    "approve.after_outcome",
    // A transfer's confirm is recorded (REQUESTED) and the bank is about to be asked to debit.
    "transfer.before_bank",
    // The bank answered a transfer's debit; the result is not committed.
    "transfer.after_bank",
];

/// The variable that arms fail points.
pub const ENV: &str = "PAYGATE_FAILPOINTS";

static ARMED: OnceLock<Vec<(&'static str, f64)>> = OnceLock::new();

/// Parses `name=probability,…`.
pub fn parse(spec: &str) -> Result<Vec<(&'static str, f64)>, String> {
    let mut armed = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, probability) = entry
            .split_once('=')
            .ok_or_else(|| format!("fail point `{entry}`: expected name=probability"))?;
        let known = POINTS
            .iter()
            .find(|p| **p == name.trim())
            .ok_or_else(|| format!("unknown fail point `{}` (known: {})", name.trim(), POINTS.join(", ")))?;
        let probability: f64 = probability
            .trim()
            .parse()
            .map_err(|_| format!("fail point `{known}`: `{probability}` is not a probability"))?;
        if !(probability > 0.0 && probability <= 1.0) {
            return Err(format!("fail point `{known}`: probability must be in (0, 1]"));
        }
        armed.push((*known, probability));
    }
    Ok(armed)
}

/// Reads `PAYGATE_FAILPOINTS` once; call at start-up. Returns the armed points (empty when the variable is unset).
pub fn arm_from_env() -> Result<Vec<(&'static str, f64)>, String> {
    let armed = match std::env::var(ENV) {
        Ok(spec) => parse(&spec)?,
        Err(_) => Vec::new(),
    };
    Ok(ARMED.get_or_init(|| armed).clone())
}

/// Dies here, with the armed probability, as if killed.
pub fn hit(name: &'static str) {
    debug_assert!(POINTS.contains(&name), "fail point {name} is not listed in POINTS");
    let Some(armed) = ARMED.get() else { return };
    if let Some((_, probability)) = armed.iter().find(|(n, _)| *n == name) {
        if rand::random::<f64>() < *probability {
            eprintln!("paygate: fail point {name} hit; aborting");
            std::process::abort();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_points_and_refuses_the_rest() {
        assert_eq!(
            parse("approve.after_acquirer=0.5, approve.after_outcome=1").unwrap(),
            vec![("approve.after_acquirer", 0.5), ("approve.after_outcome", 1.0)]
        );
        assert_eq!(parse("").unwrap(), vec![]);
        assert!(parse("approve.after_acquirr=0.5")
            .unwrap_err()
            .contains("unknown fail point"));
        assert!(parse("approve.after_acquirer").is_err());
        assert!(parse("approve.after_acquirer=0").is_err());
        assert!(parse("approve.after_acquirer=1.5").is_err());
        assert!(parse("approve.after_acquirer=x").is_err());
    }

    #[test]
    fn unarmed_points_do_nothing() {
        // ARMED is never set in unit tests; hitting a point must return.
        hit("approve.after_acquirer");
    }
}
