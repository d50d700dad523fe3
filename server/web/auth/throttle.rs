//! Throttles password guessing: after `max_failures` failed logins for one account name within
//! `lockout_secs`, further attempts for that name are refused (without checking the password)
//! until `lockout_secs` after the last failure. Kept in memory and keyed by the name as typed
//! (lower-cased), so unknown names are throttled the same way as real ones.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct LoginThrottle {
    /// name → (failures in the current window, time of the first and of the last failure)
    entries: Mutex<HashMap<String, (u32, i64, i64)>>,
    max_failures: u32,
    lockout_secs: i64,
}

impl LoginThrottle {
    pub fn new(max_failures: u32, lockout_secs: u64) -> LoginThrottle {
        LoginThrottle {
            entries: Mutex::default(),
            max_failures: max_failures.max(1),
            lockout_secs: lockout_secs as i64,
        }
    }

    /// Seconds until `name` may try again, or `None` if it may try now.
    pub fn blocked_for(&self, name: &str, now: i64) -> Option<i64> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (count, _, last) = map.get(&name.to_lowercase()).copied()?;
        let until = last + self.lockout_secs;
        (count >= self.max_failures && now < until).then_some(until - now)
    }

    /// Checks and counts an attempt in one step: refused (with the seconds to wait) when the
    /// account is throttled, else counted as a failure *before* the password is checked, so
    /// many guesses sent at once cannot all pass the check; a success clears the count.
    pub fn try_attempt(&self, name: &str, now: i64) -> Result<(), i64> {
        if let Some(wait) = self.blocked_for(name, now) {
            return Err(wait);
        }
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.entry(name.to_lowercase()).or_insert((0, now, now));
        if now - e.1 > self.lockout_secs {
            *e = (0, now, now);
        }
        if e.0 >= self.max_failures && now < e.2 + self.lockout_secs {
            return Err(e.2 + self.lockout_secs - now);
        }
        e.0 += 1;
        e.2 = now;
        Ok(())
    }

    pub fn record_failure(&self, name: &str, now: i64) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            // Bound memory under a flood of made-up names: forget windows that have lapsed.
            let lockout = self.lockout_secs;
            map.retain(|_, (_, _, last)| now - *last < lockout);
        }
        let e = map.entry(name.to_lowercase()).or_insert((0, now, now));
        if now - e.1 > self.lockout_secs {
            *e = (0, now, now);
        }
        e.0 += 1;
        e.2 = now;
    }

    pub fn record_success(&self, name: &str) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&name.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_throttled_after_too_many_failures_and_released_later() {
        let t = LoginThrottle::new(3, 600);
        for i in 0..3 {
            assert_eq!(t.blocked_for("Ann", 100 + i), None);
            t.record_failure("Ann", 100 + i);
        }
        assert_eq!(t.blocked_for("ann", 103), Some(599));
        assert_eq!(t.blocked_for("bob", 103), None);
        assert_eq!(t.blocked_for("ann", 102 + 600), None);
    }

    #[test]
    fn attempts_are_checked_and_counted_together() {
        let t = LoginThrottle::new(3, 600);
        let passed = (0..30)
            .filter(|_| t.try_attempt("ann", 100).is_ok())
            .count();
        assert_eq!(
            passed, 3,
            "only max_failures attempts reach the password check"
        );
        assert_eq!(t.try_attempt("ANN", 101), Err(599));
        t.record_success("ann");
        assert_eq!(t.try_attempt("ann", 102), Ok(()));
    }

    #[test]
    fn a_successful_login_clears_the_failures() {
        let t = LoginThrottle::new(2, 600);
        t.record_failure("ann", 1);
        t.record_success("ann");
        t.record_failure("ann", 2);
        assert_eq!(t.blocked_for("ann", 3), None);
    }
}
