//! Throttles password guessing, per account name and per client address: after `max_failures`
//! failed logins for one name, or `max_per_address` from one address, within `lockout_secs`,
//! further attempts for that name (or from that address) are refused without checking the
//! password until `lockout_secs` after the last failure. Kept in memory; names are keyed as typed
//! (lower-cased), so unknown names are throttled the same way as real ones, and the address limit
//! caps one client guessing many names.
//!
//! The address is the TCP peer. Behind a reverse proxy every client shares the proxy's address;
//! the per-address limit then throttles them together (the README says so).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;

/// Failed logins from one client address within the lockout period before further attempts
/// from it are refused: a few people mistyping behind one address stay well under it, one client
/// cycling through names reaches it quickly.
pub const DEFAULT_MAX_PER_ADDRESS: u32 = crate::config::DEFAULT_LOGIN_MAX_FAILURES_PER_ADDRESS;

/// Windows kept before lapsed ones are forgotten (bounds memory under a flood of names).
const MAX_ENTRIES: usize = 100_000;

/// Failures in the current window, and the time of the first and of the last failure.
#[derive(Debug, Clone, Copy)]
struct Window {
    count: u32,
    first: i64,
    last: i64,
}

#[derive(Debug, Default)]
struct Entries {
    accounts: HashMap<String, Window>,
    addresses: HashMap<IpAddr, Window>,
}

/// Why an attempt was refused, with the seconds until it may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too many failures for this account name.
    Account(i64),
    /// Too many failures from this client address, whatever the names.
    Address(i64),
}

impl Refused {
    pub fn wait_secs(self) -> i64 {
        match self {
            Refused::Account(s) | Refused::Address(s) => s,
        }
    }
}

#[derive(Debug, Default)]
pub struct LoginThrottle {
    entries: Mutex<Entries>,
    max_failures: u32,
    max_per_address: u32,
    lockout_secs: i64,
}

impl LoginThrottle {
    /// `max_failures` per account; the per-address limit is [`DEFAULT_MAX_PER_ADDRESS`] (see
    /// [`LoginThrottle::with_address_limit`]).
    pub fn new(max_failures: u32, lockout_secs: u64) -> LoginThrottle {
        LoginThrottle {
            entries: Mutex::default(),
            max_failures: max_failures.max(1),
            max_per_address: DEFAULT_MAX_PER_ADDRESS,
            lockout_secs: i64::try_from(lockout_secs).unwrap_or(i64::MAX),
        }
    }

    /// Sets the failures allowed from one client address.
    pub fn with_address_limit(mut self, max_per_address: u32) -> LoginThrottle {
        self.max_per_address = max_per_address.max(1);
        self
    }

    /// Seconds until `name` may try again, or `None` if it may try now.
    pub fn blocked_for(&self, name: &str, now: i64) -> Option<i64> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let w = map.accounts.get(&name.to_lowercase())?;
        self.blocked(w, self.max_failures, now)
    }

    fn blocked(&self, w: &Window, max: u32, now: i64) -> Option<i64> {
        let until = w.last.saturating_add(self.lockout_secs);
        (w.count >= max && now < until).then_some(until - now)
    }

    /// Checks and counts an attempt in one step, for the account and for the client address
    /// together: refused (naming which limit, with the seconds to wait) when either is reached,
    /// else counted as a failure of both *before* the password is checked, so many guesses sent
    /// at once cannot all pass the check. [`LoginThrottle::record_success`] takes it back.
    pub fn try_attempt(&self, name: &str, addr: Option<IpAddr>, now: i64) -> Result<(), Refused> {
        let key = name.to_lowercase();
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.accounts.len() + map.addresses.len() > MAX_ENTRIES {
            let lockout = self.lockout_secs;
            map.accounts.retain(|_, w| now - w.last < lockout);
            map.addresses.retain(|_, w| now - w.last < lockout);
        }
        let account = lapse(map.accounts.get(&key).copied(), now, self.lockout_secs);
        if let Some(wait) = account.and_then(|w| self.blocked(&w, self.max_failures, now)) {
            return Err(Refused::Account(wait));
        }
        if let Some(a) = addr {
            let address = lapse(map.addresses.get(&a).copied(), now, self.lockout_secs);
            if let Some(wait) = address.and_then(|w| self.blocked(&w, self.max_per_address, now)) {
                return Err(Refused::Address(wait));
            }
            count(&mut map.addresses, a, now, self.lockout_secs);
        }
        count(&mut map.accounts, key, now, self.lockout_secs);
        Ok(())
    }

    /// Counts a failure for `name` alone (no address).
    pub fn record_failure(&self, name: &str, now: i64) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        count(
            &mut map.accounts,
            name.to_lowercase(),
            now,
            self.lockout_secs,
        );
    }

    /// A login succeeded: the account's failures are cleared, and the attempt counted for the
    /// address is taken back (its earlier failures still count, so logging in with one's own
    /// account does not reset a client's guessing of other names).
    pub fn record_success(&self, name: &str, addr: Option<IpAddr>) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.accounts.remove(&name.to_lowercase());
        if let Some(w) = addr.and_then(|a| map.addresses.get_mut(&a)) {
            w.count = w.count.saturating_sub(1);
        }
    }
}

/// The window as it stands at `now`: one whose first failure is older than the lockout is over.
fn lapse(w: Option<Window>, now: i64, lockout: i64) -> Option<Window> {
    w.filter(|w| now - w.first <= lockout)
}

fn count<K: Hash + Eq>(map: &mut HashMap<K, Window>, key: K, now: i64, lockout: i64) {
    let w = map.entry(key).or_insert(Window {
        count: 0,
        first: now,
        last: now,
    });
    if now - w.first > lockout {
        *w = Window {
            count: 0,
            first: now,
            last: now,
        };
    }
    w.count += 1;
    w.last = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)));
    const THERE: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 8)));

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
            .filter(|_| t.try_attempt("ann", HERE, 100).is_ok())
            .count();
        assert_eq!(
            passed, 3,
            "only max_failures attempts reach the password check"
        );
        assert_eq!(t.try_attempt("ANN", THERE, 101), Err(Refused::Account(599)));
        t.record_success("ann", HERE);
        assert_eq!(t.try_attempt("ann", HERE, 102), Ok(()));
    }

    #[test]
    fn one_address_guessing_many_names_is_capped() {
        let t = LoginThrottle::new(5, 600).with_address_limit(10);
        let passed = (0..30)
            .filter(|i| t.try_attempt(&format!("name{i}"), HERE, 100).is_ok())
            .count();
        assert_eq!(passed, 10, "only the address limit reaches the check");
        assert_eq!(
            t.try_attempt("ada", HERE, 101),
            Err(Refused::Address(599)),
            "a real account from that address waits too"
        );
        assert_eq!(
            t.try_attempt("ada", THERE, 101),
            Ok(()),
            "other addresses do not"
        );
        assert_eq!(
            t.try_attempt("ada", HERE, 100 + 601),
            Ok(()),
            "released later"
        );
    }

    #[test]
    fn a_successful_login_takes_back_its_own_attempt_only() {
        let t = LoginThrottle::new(5, 600).with_address_limit(3);
        assert!(t.try_attempt("x", HERE, 1).is_ok());
        assert!(t.try_attempt("y", HERE, 1).is_ok());
        assert!(t.try_attempt("ann", HERE, 1).is_ok());
        t.record_success("ann", HERE);
        assert!(
            t.try_attempt("ann", HERE, 2).is_ok(),
            "two failures and one try"
        );
        assert!(
            t.try_attempt("z", HERE, 2).is_err(),
            "the failures still count"
        );
    }

    #[test]
    fn a_successful_login_clears_the_failures() {
        let t = LoginThrottle::new(2, 600);
        t.record_failure("ann", 1);
        t.record_success("ann", None);
        t.record_failure("ann", 2);
        assert_eq!(t.blocked_for("ann", 3), None);
    }
}
