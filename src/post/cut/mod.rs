//! Cuts (`recbot cut`): the spans of a finished recording to keep, worked out on its HLS index
//! (`archive::index`) at segment boundaries, written as a new index joining the kept pieces
//! with `#EXT-X-DISCONTINUITY` (byte ranges still into the recording), with `--copy` a new
//! file of the kept bytes, and the part's chat file cut to the same span (`video_ms`
//! recomputed). This file is the pure part (times, spans, which segments, chat positions);
//! `files.rs` reads the recording and writes the outputs beside it.

mod files;
#[cfg(test)]
mod tests;

pub use files::{cut_blocking, describe, Written};

/// What to cut: keep `from`..`to` (the whole recording when absent) minus the `remove`
/// spans (seconds of the recording).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    pub from: Option<f64>,
    pub to: Option<f64>,
    pub remove: Vec<(f64, f64)>,
    /// Also write a new video file of the kept bytes.
    pub copy: bool,
    /// The outputs' name (no extension); `<name>.cut-<n>` when absent.
    pub out: Option<String>,
}

/// `HH:MM:SS`, `MM:SS` or `SS`, the last with an optional fraction (`01:02:03.5`), in
/// seconds: the command language's grammar (`recbot_commands::parse_clock`), so the chat
/// command and `recbot cut` read times alike.
pub fn parse_time(text: &str) -> Result<f64, String> {
    recbot_commands::parse_clock(text).map(|ms| ms as f64 / 1000.0)
}

/// `HH:MM:SS-HH:MM:SS`: a span to remove, its start before its end.
pub fn parse_range(text: &str) -> Result<(f64, f64), String> {
    let (a, b) = text
        .split_once('-')
        .ok_or_else(|| format!("`{text}` is not a span (HH:MM:SS-HH:MM:SS)"))?;
    let (a, b) = (parse_time(a)?, parse_time(b)?);
    if a >= b {
        return Err(format!("`{text}` ends before it starts"));
    }
    Ok((a, b))
}

/// The spans to keep of a recording of `total` seconds, in order, not overlapping.
pub fn kept_spans(total: f64, request: &Request) -> Result<Vec<(f64, f64)>, String> {
    let from = request.from.unwrap_or(0.0);
    let to = request.to.unwrap_or(total).min(total);
    if request.from.zip(request.to).is_some_and(|(f, t)| f >= t) {
        return Err("--from must come before --to".into());
    }
    if from >= total {
        return Err(format!(
            "--from is past the recording's end ({})",
            clock(total)
        ));
    }
    let mut spans = vec![(from, to)];
    for &(a, b) in &request.remove {
        spans = spans
            .into_iter()
            .flat_map(|(s, e)| {
                let mut left = Vec::with_capacity(2);
                if a > s {
                    left.push((s, e.min(a)));
                }
                if b < e {
                    left.push((s.max(b), e));
                }
                left
            })
            .filter(|(s, e)| e > s)
            .collect();
    }
    if spans.is_empty() {
        return Err("nothing is left to keep".into());
    }
    Ok(spans)
}

/// A run of consecutive segments kept: `first..=last` of the recording, which cover
/// `start..end` of it and begin at `out_start` in the cut.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Piece {
    pub first: usize,
    pub last: usize,
    pub start: f64,
    pub end: f64,
    pub out_start: f64,
}

/// The segments (of these durations, in order) that overlap a kept span, as pieces: a
/// segment dropped between two kept ones starts a new piece.
pub fn plan(durations: &[f64], spans: &[(f64, f64)]) -> Vec<Piece> {
    let mut pieces: Vec<Piece> = Vec::new();
    let mut at = 0.0;
    let mut out = 0.0;
    for (n, &d) in durations.iter().enumerate() {
        let (start, end) = (at, at + d);
        at = end;
        let keep = spans.iter().any(|&(s, e)| start < e && end > s);
        if !keep {
            continue;
        }
        match pieces.last_mut() {
            Some(p) if p.last + 1 == n => {
                p.last = n;
                p.end = end;
            }
            _ => pieces.push(Piece {
                first: n,
                last: n,
                start,
                end,
                out_start: out,
            }),
        }
        out += d;
    }
    pieces
}

/// Where `video_ms` of the recording is in the cut, if it was kept.
pub fn cut_ms(pieces: &[Piece], video_ms: i64) -> Option<i64> {
    let t = video_ms as f64 / 1000.0;
    let p = pieces.iter().find(|p| t >= p.start && t < p.end)?;
    Some(((p.out_start + (t - p.start)) * 1000.0).round() as i64)
}

/// Rewrites one line of a chat file (`{"offset_ms":…,"video_ms":…,…}`, `chat::export`) for
/// the cut: `None` when its moment was cut out or the line is not in that shape.
pub fn cut_chat_line(pieces: &[Piece], line: &str) -> Option<String> {
    const HEAD: &str = "{\"offset_ms\":";
    const VIDEO: &str = ",\"video_ms\":";
    let rest = line.strip_prefix(HEAD)?;
    let (offset, rest) = rest.split_once(VIDEO)?;
    let offset: i64 = offset.parse().ok()?;
    let end = rest.find([',', '}'])?;
    let video: i64 = rest[..end].parse().ok()?;
    let moved = cut_ms(pieces, video)?;
    Some(format!("{HEAD}{offset}{VIDEO}{moved}{}", &rest[end..]))
}

/// `H:MM:SS` (with tenths when not whole), as the outputs are described.
pub fn clock(secs: f64) -> String {
    let tenths = (secs.max(0.0) * 10.0).round() as u64;
    let (whole, frac) = (tenths / 10, tenths % 10);
    let (h, m, s) = (whole / 3600, whole / 60 % 60, whole % 60);
    if frac == 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{h}:{m:02}:{s:02}.{frac}")
    }
}
