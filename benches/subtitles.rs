//! `cargo bench --bench subtitles`: the chat replay subtitles of one part.
//!
//! Writes a 10 000-line per-part chat file (realistic tagged PRIVMSG lines as the export
//! writes them, ~5.5 lines a second over 30 minutes, in bursts, so the 8-line stack is often
//! full), then converts it with `subtitles::write_beside` into `.chat.ass`, `.chat.vtt`, and
//! both, five times each. Prints the fastest and median milliseconds per conversion, lines per
//! second and the files' sizes. Target (issue 13): well under a second per conversion.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use recbot::chat::subtitles::{write_beside, SubtitleSettings};
use recbot::config::SubtitleFormat;

const LINES: usize = 10_000;
const RUNS: usize = 5;

fn write_chat_file(path: &Path) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let (mut video_ms, mut seed) = (0i64, 42u64);
    for n in 0..LINES {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // Bursts and lulls: mostly 0–300 ms apart, now and then several seconds.
        video_ms += if seed >> 61 == 0 {
            ((seed >> 20) % 8000) as i64
        } else {
            ((seed >> 20) % 300) as i64
        };
        let user = format!("viewer{}", seed % 500);
        let colour = if seed % 3 == 0 {
            String::new()
        } else {
            format!("#{:06X}", (seed >> 8) & 0xFF_FFFF)
        };
        let text = match n % 4 {
            0 => "PogChamp what a play {\\b1} LUL".to_string(),
            1 => format!("message number {n} with <b>tags</b> & --> arrows"),
            2 => "مرحبا 👋 שלום KEKW KEKW KEKW".to_string(),
            _ => "a longer line ".repeat(12),
        };
        writeln!(
            out,
            r#"{{"offset_ms":{video_ms},"video_ms":{video_ms},"recv_ms":{},"cmd":"PRIVMSG","channel":"streamer","tags":{{"badge-info":"","badges":"","color":"{colour}","display-name":"{user}","emotes":"","id":"id-{n}","mod":"0","room-id":"1","subscriber":"0","tmi-sent-ts":"{}","turbo":"0","user-id":"{n}","user-type":""}},"sent_ms":{},"login":"{user}","user_id":"{n}","display_name":"{user}","id":"id-{n}","text":"{}","raw":"@color={colour} :{user}!{user}@{user}.tmi.twitch.tv PRIVMSG #streamer :{}"}}"#,
            1_700_000_000_000 + video_ms,
            1_700_000_000_000 + video_ms,
            1_700_000_000_000 + video_ms,
            text.replace('\\', "\\\\").replace('"', "\\\""),
            text.replace('\\', "\\\\").replace('"', "\\\""),
        )
        .unwrap();
    }
    out.flush().unwrap();
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("part.ts");
    let chat = dir.path().join("part.chat.jsonl");
    write_chat_file(&chat);
    let chat_bytes = std::fs::metadata(&chat).unwrap().len();
    println!(
        "chat file: {LINES} lines, {:.1} MB",
        chat_bytes as f64 / 1e6
    );
    for formats in [
        vec![SubtitleFormat::Ass],
        vec![SubtitleFormat::Vtt],
        vec![SubtitleFormat::Ass, SubtitleFormat::Vtt],
    ] {
        let settings = SubtitleSettings {
            formats: formats.clone(),
            show_ms: 5000,
            lines: 8,
        };
        let mut times = Vec::new();
        let mut written = Vec::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            written = write_beside(&video, &chat, &settings).unwrap();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let sizes: Vec<String> = written
            .iter()
            .map(|p| {
                let size = std::fs::metadata(p).unwrap().len() as f64 / 1e6;
                format!("{} {size:.1} MB", p.file_name().unwrap().to_string_lossy())
            })
            .collect();
        let names: Vec<&str> = formats.iter().map(|f| f.as_str()).collect();
        println!(
            "{:<9} fastest {:7.1} ms, median {:7.1} ms per conversion, {:>9.0} lines/s; {}",
            names.join("+"),
            times[0],
            times[RUNS / 2],
            LINES as f64 / (times[RUNS / 2] / 1000.0),
            sizes.join(", ")
        );
    }
}
