//! Times within a recording as people type them: `HH:MM:SS`, `MM:SS` or `SS`, the last field
//! with an optional fraction (`01:02:03.5`). Used by `cut` here and by `recbot cut`.

/// The longest time accepted (a part is at most 12 h; this only keeps numbers sane).
const MAX_MS: u64 = 100 * 3600 * 1000;

/// Parses a time into milliseconds; minutes and seconds after the first field below 60.
pub fn parse_clock(text: &str) -> Result<u64, String> {
    let bad = || format!("`{}` is not a time (HH:MM:SS)", crate::text::excerpt(text));
    let fields: Vec<&str> = text.split(':').collect();
    if fields.len() > 3 {
        return Err(bad());
    }
    let mut ms: u64 = 0;
    for (n, field) in fields.iter().enumerate() {
        let last = n + 1 == fields.len();
        let (int, frac) = match field.split_once('.') {
            Some((i, f)) if last => (i, Some(f)),
            Some(_) => return Err(bad()),
            None => (*field, None),
        };
        let digits = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
        };
        if !digits(int, 6) || frac.is_some_and(|f| !digits(f, 6)) {
            return Err(bad());
        }
        let value: u64 = int.parse().map_err(|_| bad())?;
        if n > 0 && value >= 60 {
            return Err(bad());
        }
        let frac_ms = frac.map_or(0, |f| {
            // Milliseconds from the first three digits, rounded by the fourth.
            let padded = format!("{f:0<4}");
            let ms: u64 = padded[..3].parse().unwrap_or(0);
            ms + u64::from(padded.as_bytes()[3] >= b'5')
        });
        // Earlier fields (hours, minutes) are scaled by 60 once per later field.
        ms = ms.saturating_mul(60).saturating_add(value * 1000 + frac_ms);
    }
    if ms > MAX_MS {
        return Err(bad());
    }
    Ok(ms)
}
