//! Redis key names: the prefixes redis-semaphore uses, and hash-tag-aware
//! companion keys for Redis Cluster.

use crate::error::LockError;

/// Prefix of mutex keys: `mutex:<key>`.
pub const MUTEX_PREFIX: &str = "mutex:";
/// Prefix of semaphore and multi-semaphore keys: `semaphore:<key>`.
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
/// `{primary}suffix`, which hashes exactly like `primary`.
///
/// ```
/// use redsem_core::companion_key;
/// assert_eq!(companion_key("mutex:jobs", ":fence"), "{mutex:jobs}:fence");
/// assert_eq!(companion_key("mutex:{tenant1}:jobs", ":fence"), "mutex:{tenant1}:jobs:fence");
/// ```
pub fn companion_key(primary: &str, suffix: &str) -> String {
    if hash_tag(primary).is_some() {
        format!("{primary}{suffix}")
    } else {
        format!("{{{primary}}}{suffix}")
    }
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
    fn empty_keys_are_rejected() {
        assert!(prefixed(MUTEX_PREFIX, "").is_err());
        assert_eq!(prefixed(MUTEX_PREFIX, "k").ok().as_deref(), Some("mutex:k"));
    }
}
