//! Redis key names: the prefixes redis-semaphore uses, and hash-tag-aware
//! companion keys for Redis Cluster.

use crate::error::LockError;

/// Prefix of mutex keys: `mutex:<key>`.
///
/// ```
/// let mutex = redsem_core::Mutex::new(redsem_mock::MockBackend::new(), "jobs")?;
/// assert_eq!(mutex.key(), format!("{}jobs", redsem_core::MUTEX_PREFIX));
/// # Ok::<(), redsem_core::LockError>(())
/// ```
pub const MUTEX_PREFIX: &str = "mutex:";
/// Prefix of semaphore and multi-semaphore keys: `semaphore:<key>`.
///
/// ```
/// let pool = redsem_core::Semaphore::new(redsem_mock::MockBackend::new(), "pool", 2)?;
/// assert_eq!(pool.key(), format!("{}pool", redsem_core::SEMAPHORE_PREFIX));
/// # Ok::<(), redsem_core::LockError>(())
/// ```
pub const SEMAPHORE_PREFIX: &str = "semaphore:";

pub(crate) fn prefixed(prefix: &str, key: &str) -> Result<String, LockError> {
    if key.is_empty() {
        return Err(LockError::invalid("key", "must not be empty"));
    }
    Ok(format!("{prefix}{key}"))
}

/// A second key that Redis Cluster stores in the same slot as `primary`, for
/// features that need two keys in one script.
///
/// If `primary` has a hash tag (a non-empty `{...}`), the companion keeps it:
/// `primary + suffix`. Otherwise the whole primary becomes the tag:
/// `{primary}suffix`, which hashes exactly like `primary`. A primary without
/// a tag that contains `}` cannot be wrapped that way (the tag would end at
/// its `}`); its companion gets a tag made from the primary (braces
/// replaced) and a counter, chosen to hash to the same slot.
///
/// ```
/// use redsem_core::companion_key;
/// assert_eq!(companion_key("mutex:jobs", ":fence"), "{mutex:jobs}:fence");
/// assert_eq!(companion_key("mutex:{tenant1}:jobs", ":fence"), "mutex:{tenant1}:jobs:fence");
/// assert!(companion_key("mutex:a{}b", ":fence").starts_with("{mutex:a()b~"));
/// ```
pub fn companion_key(primary: &str, suffix: &str) -> String {
    if hash_tag(primary).is_some() {
        return format!("{primary}{suffix}");
    }
    if !primary.contains('}') {
        return format!("{{{primary}}}{suffix}");
    }
    let slot = key_slot(primary);
    let base = primary.replace('{', "(").replace('}', ")");
    // About 16,384 tries on average: a fraction of a millisecond, once per
    // lock instance.
    (0u32..)
        .map(|n| format!("{base}~{n}"))
        .find(|tag| crc16(tag.as_bytes()) % SLOTS == slot)
        .map(|tag| format!("{{{tag}}}{suffix}"))
        .unwrap_or_default()
}

const SLOTS: u16 = 16_384;

/// The Redis Cluster slot of `key`.
fn key_slot(key: &str) -> u16 {
    crc16(hash_tag(key).unwrap_or(key).as_bytes()) % SLOTS
}

/// CRC16-XMODEM, the checksum Redis Cluster hashes keys with.
fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (0..8).fold(crc ^ (u16::from(b) << 8), |c, _| {
            if c & 0x8000 != 0 {
                (c << 1) ^ 0x1021
            } else {
                c << 1
            }
        })
    })
}

/// The part of `key` that Redis Cluster hashes when it has a hash tag: the
/// text between the first `{` and the next `}`, if non-empty.
pub(crate) fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let rest = &key[open + 1..];
    let close = rest.find('}')?;
    (close > 0).then(|| &rest[..close])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tags_follow_redis_rules() {
        assert_eq!(hash_tag("a{b}c"), Some("b"));
        assert_eq!(hash_tag("a{}c{d}"), None);
        assert_eq!(hash_tag("a{b"), None);
        assert_eq!(hash_tag("{{b}}"), Some("{b"));
    }

    #[test]
    fn companion_keys_share_the_slot_text() {
        assert_eq!(companion_key("semaphore:x", ":q"), "{semaphore:x}:q");
        assert_eq!(
            hash_tag(&companion_key("semaphore:x", ":q")),
            Some("semaphore:x")
        );
        assert_eq!(companion_key("a{t}b", ":q"), "a{t}b:q");
    }

    #[test]
    fn slots_match_redis() {
        // CLUSTER KEYSLOT foo / {user1000}.following on a real cluster
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
    }

    #[test]
    fn companions_of_keys_with_stray_braces_share_the_slot() {
        for primary in ["mutex:a{}b", "mutex:x}y", "semaphore:}{", "mutex:a{b", "q"] {
            let companion = companion_key(primary, ":fence");
            assert_eq!(
                key_slot(&companion),
                key_slot(primary),
                "{primary} -> {companion}"
            );
            assert!(companion.ends_with(":fence"));
        }
    }

    #[test]
    fn empty_keys_are_rejected() {
        assert!(prefixed(MUTEX_PREFIX, "").is_err());
        assert_eq!(prefixed(MUTEX_PREFIX, "k").ok().as_deref(), Some("mutex:k"));
    }
}
