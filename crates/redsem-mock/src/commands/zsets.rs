//! Sorted-set commands.

use super::{format_double, is, parse_float, parse_int, syntax_error, Call, CmdResult, Resp};
use crate::zset::{Bound, Score, ZSet};

fn int_reply(n: usize) -> Resp {
    Resp::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn score_reply(score: f64) -> Resp {
    Resp::Bulk(format_double(score).into_bytes())
}

/// A score-range end: `1.5`, `(1.5` (exclusive), `-inf`, `+inf`.
fn parse_bound(arg: &[u8]) -> Result<Bound, String> {
    let (exclusive, number) = match arg.strip_prefix(b"(") {
        Some(rest) => (true, rest),
        None => (false, arg),
    };
    let score = parse_float(number).ok_or("ERR min or max is not a float")?;
    Ok(Bound { score, exclusive })
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`
pub(super) fn zadd(c: &mut Call<'_>) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut first = 2;
    while let Some(opt) = c.args.get(first) {
        match opt.to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            b"ch" => ch = true,
            b"incr" => incr = true,
            _ => break,
        }
        first += 1;
    }
    let pairs = &c.args[first..];
    if incr && pairs.len() != 2 {
        return Err("ERR INCR option supports a single increment-element pair".into());
    }
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(syntax_error());
    }
    if nx && xx {
        return Err("ERR XX and NX options at the same time are not compatible".into());
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err("ERR GT, LT, and/or NX options at the same time are not compatible".into());
    }
    let mut parsed = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks_exact(2) {
        let score = parse_float(&pair[0]).ok_or("ERR value is not a valid float")?;
        parsed.push((score, pair[1].as_slice()));
    }
    let key = &c.args[1];
    if xx && c.data.zset(key, c.now)?.is_none() {
        return Ok(if incr { Resp::Nil } else { Resp::Int(0) });
    }
    let zset = c.data.zset_or_create(key, c.now)?;
    let (mut added, mut updated) = (0, 0);
    let mut last_score = None;
    for (score, member) in parsed {
        let current = zset.score(member);
        let new = match current {
            Some(_) if nx => continue,
            None if xx => continue,
            Some(cur) if incr => cur + score,
            _ => score,
        };
        let Some(new_score) = Score::new(new) else {
            c.data.drop_if_empty(key);
            return Err("ERR resulting score is not a number (NaN)".into());
        };
        if let Some(cur) = current {
            if (lt && new >= cur) || (gt && new <= cur) {
                continue;
            }
            if new != cur {
                zset.add(member, new_score);
                updated += 1;
            }
        } else {
            zset.add(member, new_score);
            added += 1;
        }
        last_score = Some(new_score.get());
    }
    c.data.drop_if_empty(key);
    if incr {
        return Ok(last_score.map_or(Resp::Nil, score_reply));
    }
    Ok(int_reply(if ch { added + updated } else { added }))
}

/// `ZREM key member [member ...]`
pub(super) fn zrem(c: &mut Call<'_>) -> CmdResult {
    let key = &c.args[1];
    let removed = match c.data.zset(key, c.now)? {
        Some(z) => c.args[2..].iter().filter(|m| z.remove(m)).count(),
        None => 0,
    };
    c.data.drop_if_empty(key);
    Ok(int_reply(removed))
}

/// `ZCARD key`
pub(super) fn zcard(c: &mut Call<'_>) -> CmdResult {
    Ok(int_reply(
        c.data.zset(&c.args[1], c.now)?.map_or(0, |z| z.len()),
    ))
}

/// `ZSCORE key member`
pub(super) fn zscore(c: &mut Call<'_>) -> CmdResult {
    let score = c
        .data
        .zset(&c.args[1], c.now)?
        .and_then(|z| z.score(&c.args[2]));
    Ok(score.map_or(Resp::Nil, score_reply))
}

/// `ZCOUNT key min max`
pub(super) fn zcount(c: &mut Call<'_>) -> CmdResult {
    let (min, max) = (parse_bound(&c.args[2])?, parse_bound(&c.args[3])?);
    let count = c
        .data
        .zset(&c.args[1], c.now)?
        .map_or(0, |z| z.range_by_score(min, max).len());
    Ok(int_reply(count))
}

/// `ZREMRANGEBYSCORE key min max`
pub(super) fn zremrangebyscore(c: &mut Call<'_>) -> CmdResult {
    let (min, max) = (parse_bound(&c.args[2])?, parse_bound(&c.args[3])?);
    let key = &c.args[1];
    let removed = c
        .data
        .zset(key, c.now)?
        .map_or(0, |z| z.remove_range_by_score(min, max));
    c.data.drop_if_empty(key);
    Ok(int_reply(removed))
}

/// What a ZRANGE-like command asks for.
#[derive(Default)]
struct RangeSpec {
    by_score: bool,
    rev: bool,
    limit: Option<(i64, i64)>,
    with_scores: bool,
}

/// Parses `LIMIT offset count` at `args[i]`; the index after it.
fn parse_limit(args: &[Vec<u8>], i: usize) -> Result<((i64, i64), usize), String> {
    match (args.get(i + 1), args.get(i + 2)) {
        (Some(offset), Some(count)) => Ok(((parse_int(offset)?, parse_int(count)?), i + 3)),
        _ => Err(syntax_error()),
    }
}

/// `ZRANGE key start stop [BYSCORE] [REV] [LIMIT offset count] [WITHSCORES]`
pub(super) fn zrange(c: &mut Call<'_>) -> CmdResult {
    let mut spec = RangeSpec::default();
    let mut i = 4;
    while let Some(opt) = c.args.get(i) {
        if is(opt, "withscores") {
            spec.with_scores = true;
        } else if is(opt, "byscore") {
            spec.by_score = true;
        } else if is(opt, "rev") {
            spec.rev = true;
        } else if is(opt, "limit") {
            let (limit, next) = parse_limit(c.args, i)?;
            spec.limit = Some(limit);
            i = next;
            continue;
        } else if is(opt, "bylex") {
            return Err("ERR the mock does not implement ZRANGE BYLEX".into());
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    if spec.limit.is_some() && !spec.by_score {
        return Err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
                .into(),
        );
    }
    range(c, &spec)
}

/// `ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]`
pub(super) fn zrangebyscore(c: &mut Call<'_>) -> CmdResult {
    let mut spec = RangeSpec {
        by_score: true,
        ..RangeSpec::default()
    };
    let mut i = 4;
    while let Some(opt) = c.args.get(i) {
        if is(opt, "withscores") {
            spec.with_scores = true;
            i += 1;
        } else if is(opt, "limit") {
            let (limit, next) = parse_limit(c.args, i)?;
            spec.limit = Some(limit);
            i = next;
        } else {
            return Err(syntax_error());
        }
    }
    range(c, &spec)
}

/// The members `args[2]`..`args[3]` select, as a flat reply (member, score
/// when asked, ...).
fn range(c: &mut Call<'_>, spec: &RangeSpec) -> CmdResult {
    let items: Vec<(Vec<u8>, f64)> = if spec.by_score {
        // With REV the range is given as max, then min.
        let (min, max) = if spec.rev { (3, 2) } else { (2, 3) };
        let (min, max) = (parse_bound(&c.args[min])?, parse_bound(&c.args[max])?);
        let Some(z) = c.data.zset(&c.args[1], c.now)? else {
            return Ok(Resp::Array(Vec::new()));
        };
        let mut items = owned(z.range_by_score(min, max));
        if spec.rev {
            items.reverse();
        }
        match spec.limit {
            Some((offset, _)) if offset < 0 => Vec::new(),
            Some((offset, count)) => {
                let offset = usize::try_from(offset).unwrap_or(usize::MAX);
                let count = usize::try_from(count).unwrap_or(usize::MAX); // negative: all
                items.into_iter().skip(offset).take(count).collect()
            }
            None => items,
        }
    } else {
        let (start, stop) = (parse_int(&c.args[2])?, parse_int(&c.args[3])?);
        let Some(z) = c.data.zset(&c.args[1], c.now)? else {
            return Ok(Resp::Array(Vec::new()));
        };
        by_index(z, start, stop, spec.rev)
    };
    let mut reply = Vec::with_capacity(items.len() * if spec.with_scores { 2 } else { 1 });
    for (member, score) in items {
        reply.push(Resp::Bulk(member));
        if spec.with_scores {
            reply.push(score_reply(score));
        }
    }
    Ok(Resp::Array(reply))
}

fn owned(items: Vec<(&[u8], f64)>) -> Vec<(Vec<u8>, f64)> {
    items.into_iter().map(|(m, s)| (m.to_vec(), s)).collect()
}

/// ZRANGE by index: negative indexes count from the end, out-of-range ones
/// are clamped, an empty range is empty.
fn by_index(z: &ZSet, start: i64, stop: i64, rev: bool) -> Vec<(Vec<u8>, f64)> {
    let len = i64::try_from(z.len()).unwrap_or(i64::MAX);
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    if start > stop || start >= len {
        return Vec::new();
    }
    let (skip, take) = (
        usize::try_from(start).unwrap_or(0),
        usize::try_from(stop - start + 1).unwrap_or(0),
    );
    let iter: Box<dyn Iterator<Item = (&[u8], f64)>> = if rev {
        Box::new(z.iter().rev())
    } else {
        Box::new(z.iter())
    };
    owned(iter.skip(skip).take(take).collect())
}
