//! A sorted set: members with double scores, ordered by (score, member)
//! like a Redis ZSET.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

/// A score: never NaN, and `-0.0` is stored as `0.0`, so the total order
/// below agrees with the numeric order Redis uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Score(f64);

impl Score {
    /// `None` for NaN, which Redis never stores.
    pub(crate) fn new(score: f64) -> Option<Score> {
        if score.is_nan() {
            None
        } else {
            Some(Score(score + 0.0)) // -0.0 + 0.0 == +0.0
        }
    }

    pub(crate) fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// One end of a score range: `score` or `(score` (exclusive).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bound {
    pub(crate) score: f64,
    pub(crate) exclusive: bool,
}

impl Bound {
    fn above_min(self, score: f64) -> bool {
        if self.exclusive {
            score > self.score
        } else {
            score >= self.score
        }
    }

    fn below_max(self, score: f64) -> bool {
        if self.exclusive {
            score < self.score
        } else {
            score <= self.score
        }
    }
}

/// A sorted set: member -> score, ordered by (score, member bytes).
#[derive(Debug, Default)]
pub(crate) struct ZSet {
    scores: HashMap<Vec<u8>, Score>,
    ordered: BTreeSet<(Score, Vec<u8>)>,
}

impl ZSet {
    /// Adds `member` or updates its score; `true` when it is new.
    pub(crate) fn add(&mut self, member: &[u8], score: Score) -> bool {
        match self.scores.insert(member.to_vec(), score) {
            Some(old) => {
                self.ordered.remove(&(old, member.to_vec()));
                self.ordered.insert((score, member.to_vec()));
                false
            }
            None => {
                self.ordered.insert((score, member.to_vec()));
                true
            }
        }
    }

    /// The member's score.
    pub(crate) fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).map(|s| s.get())
    }

    /// Removes `member`; `true` when it was there.
    pub(crate) fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove(member) {
            Some(score) => self.ordered.remove(&(score, member.to_vec())),
            None => false,
        }
    }

    /// The number of members.
    pub(crate) fn len(&self) -> usize {
        self.scores.len()
    }

    /// Members with scores in ZRANGE order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], f64)> {
        self.ordered.iter().map(|(s, m)| (m.as_slice(), s.get()))
    }

    /// Members with `min <= score <= max` (each end possibly exclusive), in
    /// ZRANGE order.
    pub(crate) fn range_by_score(&self, min: Bound, max: Bound) -> Vec<(&[u8], f64)> {
        let Some(start) = Score::new(min.score) else {
            return Vec::new();
        };
        // The empty member sorts first among equal scores.
        self.ordered
            .range((start, Vec::new())..)
            .map(|(s, m)| (m.as_slice(), s.get()))
            .skip_while(|&(_, s)| !min.above_min(s))
            .take_while(|&(_, s)| max.below_max(s))
            .collect()
    }

    /// Removes the members [`range_by_score`](Self::range_by_score) lists;
    /// the number removed.
    pub(crate) fn remove_range_by_score(&mut self, min: Bound, max: Bound) -> usize {
        let doomed: Vec<Vec<u8>> = self
            .range_by_score(min, max)
            .into_iter()
            .map(|(m, _)| m.to_vec())
            .collect();
        for member in &doomed {
            self.remove(member);
        }
        doomed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64) -> Score {
        Score::new(x).unwrap()
    }

    fn incl(score: f64) -> Bound {
        Bound {
            score,
            exclusive: false,
        }
    }

    fn excl(score: f64) -> Bound {
        Bound {
            score,
            exclusive: true,
        }
    }

    #[test]
    fn orders_by_score_then_member_and_updates_scores() {
        let mut z = ZSet::default();
        assert!(z.add(b"b", s(2.0)));
        assert!(z.add(b"a", s(2.0)));
        assert!(z.add(b"c", s(1.0)));
        assert!(!z.add(b"c", s(3.0)));
        let order: Vec<_> = z.iter().collect();
        assert_eq!(
            order,
            [(&b"a"[..], 2.0), (&b"b"[..], 2.0), (&b"c"[..], 3.0)]
        );
        assert_eq!(z.score(b"c"), Some(3.0));
        assert!(z.remove(b"c"));
        assert!(!z.remove(b"c"));
        assert_eq!(z.len(), 2);
    }

    #[test]
    fn score_ranges_with_exclusive_and_infinite_ends() {
        let mut z = ZSet::default();
        for (m, x) in [("a", 1.0), ("b", 2.0), ("c", 2.0), ("d", 3.5)] {
            z.add(m.as_bytes(), s(x));
        }
        let members = |v: Vec<(&[u8], f64)>| -> Vec<String> {
            v.into_iter()
                .map(|(m, _)| String::from_utf8_lossy(m).into_owned())
                .collect()
        };
        let all = members(z.range_by_score(incl(f64::NEG_INFINITY), incl(f64::INFINITY)));
        assert_eq!(all, ["a", "b", "c", "d"]);
        assert_eq!(members(z.range_by_score(excl(1.0), incl(2.0))), ["b", "c"]);
        assert_eq!(members(z.range_by_score(incl(2.0), excl(3.5))), ["b", "c"]);
        assert!(z.range_by_score(excl(2.0), excl(2.0)).is_empty());
        assert_eq!(
            z.remove_range_by_score(incl(f64::NEG_INFINITY), incl(2.0)),
            3
        );
        assert_eq!(z.len(), 1);
    }

    #[test]
    fn nan_is_refused_and_negative_zero_is_zero() {
        assert!(Score::new(f64::NAN).is_none());
        assert_eq!(s(-0.0), s(0.0));
        assert!(s(-0.0).get().is_sign_positive());
    }
}
