//! ffmpeg's `-progress pipe:1` output: blocks of `key=value` lines, each block ending with
//! `progress=continue` (or `progress=end` once). Pure: lines in, [`Progress`] out.

/// Where ffmpeg is, as of the last complete block.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    /// Output time written so far, in seconds.
    pub out_secs: f64,
    /// Output bytes written so far.
    pub bytes: u64,
    /// Encoding speed relative to real time (`1.5` = 1.5×), when ffmpeg knows it.
    pub speed: Option<f64>,
    /// `progress=end`: ffmpeg has written everything.
    pub end: bool,
}

/// Folds `-progress` lines into blocks.
#[derive(Debug, Default)]
pub struct ProgressParser {
    current: Progress,
}

impl ProgressParser {
    /// Takes one line; returns the block it completes, if it ends one. Unknown keys and
    /// malformed values are ignored (ffmpeg prints `N/A` before it knows a value).
    pub fn line(&mut self, line: &str) -> Option<Progress> {
        let (key, value) = line.trim().split_once('=')?;
        let value = value.trim();
        match key.trim() {
            // `out_time_ms` is microseconds too (an old ffmpeg misnomer); prefer `_us`.
            "out_time_us" | "out_time_ms" => {
                if let Ok(us) = value.parse::<i64>() {
                    self.current.out_secs = us.max(0) as f64 / 1e6;
                }
            }
            "total_size" => {
                if let Ok(bytes) = value.parse::<u64>() {
                    self.current.bytes = bytes;
                }
            }
            "speed" => {
                self.current.speed = value
                    .trim_end_matches('x')
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0);
            }
            "progress" => {
                self.current.end = value == "end";
                return Some(self.current);
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_end_at_progress_lines() {
        let mut p = ProgressParser::default();
        let block = "frame=10\nfps=0.0\ntotal_size=48\nout_time_us=333333\nout_time_ms=333333\n\
                     speed=N/A\nprogress=continue\n";
        let mut got = Vec::new();
        for line in block.lines() {
            got.extend(p.line(line));
        }
        assert_eq!(got.len(), 1);
        assert!((got[0].out_secs - 0.333333).abs() < 1e-9);
        assert_eq!(got[0].bytes, 48);
        assert_eq!(got[0].speed, None);
        assert!(!got[0].end);
        let end = [
            "total_size=9000",
            "out_time_us=5000000",
            "speed=12.5x",
            "progress=end",
        ];
        let last = end.iter().filter_map(|l| p.line(l)).last().unwrap();
        assert_eq!(last.bytes, 9000);
        assert_eq!(last.out_secs, 5.0);
        assert_eq!(last.speed, Some(12.5));
        assert!(last.end);
    }

    #[test]
    fn garbage_is_ignored() {
        let mut p = ProgressParser::default();
        for line in [
            "",
            "no equals",
            "out_time_us=N/A",
            "out_time_us=-7",
            "speed=-3x",
        ] {
            assert_eq!(p.line(line), None);
        }
        let block = p.line("progress=continue").unwrap();
        assert_eq!(block.out_secs, 0.0);
        assert_eq!(block.speed, None);
    }
}
