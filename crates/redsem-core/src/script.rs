//! Lua scripts, each kept once as a `.lua` file with its SHA-1 computed at
//! compile time.

use std::fmt;

use crate::sha1::sha1_hex;

/// A Lua script that redsem runs with `EVALSHA`, falling back to `EVAL`.
///
/// redsem's own scripts are constants in this module. You can define your own
/// with [`Script::new`] and run it with
/// [`RedisBackend::run_script`](crate::RedisBackend::run_script).
///
/// ```
/// use redsem_core::Script;
/// static ANSWER: Script = Script::new("answer", "return 42");
/// assert_eq!(ANSWER.sha1().len(), 40);
/// ```
#[derive(Clone, Copy)]
pub struct Script {
    name: &'static str,
    source: &'static str,
    sha1: [u8; 40],
}

impl Script {
    /// A script with a short `name` (for errors, logs and the mock backend)
    /// and its Lua `source`. The SHA-1 is computed here, at compile time when
    /// used in a `const` or `static`.
    ///
    /// ```
    /// use redsem_core::Script;
    /// const PING: Script = Script::new("ping", "return redis.call('PING')");
    /// assert_eq!(PING.name(), "ping");
    /// ```
    pub const fn new(name: &'static str, source: &'static str) -> Self {
        Script {
            name,
            source,
            sha1: sha1_hex(source.as_bytes()),
        }
    }

    /// The script's short name, such as `mutex_release`.
    ///
    /// ```
    /// assert_eq!(redsem_core::script::MUTEX_RELEASE.name(), "mutex_release");
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The Lua source, as sent by `EVAL`.
    ///
    /// ```
    /// use redsem_core::Script;
    /// static ANSWER: Script = Script::new("answer", "return 42");
    /// assert_eq!(ANSWER.source(), "return 42");
    /// ```
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// The SHA-1 of the source as 40 lowercase hex digits, as sent by
    /// `EVALSHA`.
    ///
    /// ```
    /// use redsem_core::Script;
    /// // the digest `redis-cli SCRIPT LOAD "return 1"` prints
    /// let one = Script::new("one", "return 1");
    /// assert_eq!(one.sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    /// ```
    pub fn sha1(&self) -> &str {
        // Always ASCII hex digits by construction.
        std::str::from_utf8(&self.sha1).unwrap_or_default()
    }
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Script")
            .field("name", &self.name)
            .field("sha1", &self.sha1())
            .finish()
    }
}

impl PartialEq for Script {
    fn eq(&self, other: &Self) -> bool {
        self.sha1 == other.sha1
    }
}

impl Eq for Script {}

macro_rules! scripts {
    ($($(#[$doc:meta])* $ident:ident = $name:literal;)*) => {$(
        $(#[$doc])*
        pub static $ident: Script =
            Script::new($name, include_str!(concat!("scripts/", $name, ".lua")));
    )*};
}

scripts! {
    /// Mutex acquire for backends without a native `SET NX PX`.
    /// KEYS: `mutex:<key>`; ARGV: (identifier, lockTimeoutMs); returns 1 or 0.
    MUTEX_ACQUIRE = "mutex_acquire";
    /// Mutex acquire with a fencing token: `SET NX PX`, then the counter
    /// raised to max(counter + 1, floor).
    /// KEYS: `mutex:<key>`, its fencing counter; ARGV: (identifier,
    /// lockTimeoutMs, floor); returns the token, or 0 when busy.
    MUTEX_FENCED_ACQUIRE = "mutex_fenced_acquire";
    /// Mutex refresh: `PEXPIRE` when the value is still the identifier.
    /// KEYS: `mutex:<key>`; ARGV: (identifier, lockTimeoutMs); returns 1 or 0.
    MUTEX_REFRESH = "mutex_refresh";
    /// Mutex release: `DEL` when the value is still the identifier.
    /// KEYS: `mutex:<key>`; ARGV: (identifier); returns 1 or 0.
    MUTEX_RELEASE = "mutex_release";
    /// Semaphore and MultiSemaphore acquire, scored by the server's `TIME`.
    /// KEYS: `semaphore:<key>`, its fencing counter; ARGV: (limit, permits
    /// (0 for Semaphore), identifier, lockTimeoutMs, floor); returns the
    /// fencing token, or 0 when full.
    SEMAPHORE_ACQUIRE = "semaphore_acquire";
    /// Semaphore and MultiSemaphore refresh.
    /// KEYS: `semaphore:<key>`; ARGV: (permits, identifier, lockTimeoutMs);
    /// returns 1 or 0.
    SEMAPHORE_REFRESH = "semaphore_refresh";
    /// Semaphore and MultiSemaphore release.
    /// KEYS: `semaphore:<key>`; ARGV: (permits, identifier); returns the
    /// number of members removed.
    SEMAPHORE_RELEASE = "semaphore_release";
    /// The server's `run_id`, from `INFO server`.
    /// No KEYS, no ARGV; returns the run id as a string.
    SERVER_ID = "server_id";
    /// The type of the lock key, after an acquire timed out.
    /// KEYS: the lock key; no ARGV; returns the type name.
    KEY_TYPE = "key_type";
    /// Who holds a lock, read-only, for `inspect`.
    /// KEYS: the lock key; no ARGV; returns {type, now ms, PTTL, data}.
    INSPECT = "inspect";
    /// A fencing token for a hold that is there: issued (counter raised to
    /// max(counter + 1, target)) or raised to exactly `target` (Redlock's
    /// confirmation).
    /// KEYS: the lock key, its fencing counter; ARGV: (member, target,
    /// 'issue' or 'raise'); returns the token, `-counter` when a raise
    /// finds the counter at or past target, 0 when the hold is gone.
    FENCE = "fence";
    /// A fenced write of a [`FencedResource`](crate::FencedResource).
    /// KEYS: the value, its newest token; ARGV: (token, value); returns 1
    /// when written, else minus the newest token.
    FENCED_WRITE = "fenced_write";
    /// A read of a [`FencedResource`](crate::FencedResource).
    /// KEYS: the value, its newest token; returns {token, value}.
    FENCED_READ = "fenced_read";
}

/// Every script redsem runs, for backends (such as the mock) that dispatch on
/// the script.
///
/// ```
/// use redsem_core::script;
/// assert!(script::ALL.iter().any(|s| s.name() == "mutex_release"));
/// ```
pub static ALL: [&Script; 13] = [
    &MUTEX_ACQUIRE,
    &MUTEX_FENCED_ACQUIRE,
    &MUTEX_REFRESH,
    &MUTEX_RELEASE,
    &SEMAPHORE_ACQUIRE,
    &SEMAPHORE_REFRESH,
    &SEMAPHORE_RELEASE,
    &SERVER_ID,
    &KEY_TYPE,
    &INSPECT,
    &FENCE,
    &FENCED_WRITE,
    &FENCED_READ,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_matches_source() {
        let s = Script::new("t", "return 1");
        // sha1("return 1"), as `redis-cli SCRIPT LOAD "return 1"` prints it
        assert_eq!(s.sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
        assert_eq!(MUTEX_RELEASE.name(), "mutex_release");
        assert!(MUTEX_RELEASE.source().contains("DEL"));
    }
}
