//! Chat replay subtitles: a part's chat file (`<name>.chat.jsonl`) turned into
//! `<name>.chat.ass` and/or `<name>.chat.vtt` beside the recording, so a player shows the chat
//! in sync with the video: each message from its `video_ms` (ads and gaps already taken out)
//! for `[chat] subtitle_secs`, the chatter's name in their tag colour, at most
//! `subtitle_lines` stacked in the top-left corner, the newest at the bottom.
//!
//! Every message shows for the same time, so the messages on screen are always a run of the
//! sorted list; one cue is written per slice of time in which that run does not change (the
//! stack moves up as a new line comes in), so players never overlap cues themselves.
//!
//! Chat text is untrusted: it is escaped so that no override block, line break, tag or cue
//! timing in a message does anything but show as text.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;
use tracing::warn;

use crate::archive::files::finalize_file;
use crate::archive::layout::{subtitle_file, temp_path_of};
use crate::archive::sidecar::Sidecar;
use crate::chat::record::is_chat_message;
use crate::config::{Chat, SubtitleFormat};

/// Longest message text shown, in characters: Twitch's own limit, so nothing real is cut.
pub const MAX_TEXT_CHARS: usize = 500;
/// A name's colour when its line has no `color` tag (the chatter never picked one).
pub const DEFAULT_COLOUR: Rgb = Rgb(0xA9, 0x70, 0xFF);

/// How the replay is written (from `[chat]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtitleSettings {
    /// Empty: no subtitles.
    pub formats: Vec<SubtitleFormat>,
    /// How long each message shows.
    pub show_ms: i64,
    /// Most messages on screen at once.
    pub lines: usize,
}

impl SubtitleSettings {
    pub fn from_config(chat: &Chat) -> SubtitleSettings {
        SubtitleSettings {
            formats: chat.subtitle_formats(),
            show_ms: (chat.subtitle_secs * 1000.0).round() as i64,
            lines: chat.subtitle_lines,
        }
    }

    /// None written.
    pub fn off() -> SubtitleSettings {
        SubtitleSettings {
            formats: Vec::new(),
            show_ms: 5000,
            lines: 8,
        }
    }
}

/// A name colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// Twitch's `color` tag: `#RRGGBB` exactly, else none (empty when never picked).
    pub fn parse(tag: &str) -> Option<Rgb> {
        let hex = tag.strip_prefix('#')?;
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
        Some(Rgb(byte(0)?, byte(2)?, byte(4)?))
    }
}

/// One chat message of the replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub video_ms: i64,
    pub name: String,
    pub colour: Rgb,
    pub text: String,
    /// A /me line: shown as `name text`, in italics.
    pub action: bool,
}

/// The fields of a chat file line the replay uses (the others are skipped unread).
#[derive(Deserialize)]
struct ChatLine {
    video_ms: Option<i64>,
    cmd: Option<String>,
    platform: Option<String>,
    login: Option<String>,
    user_id: Option<String>,
    display_name: Option<String>,
    text: Option<String>,
    #[serde(default)]
    action: bool,
    #[serde(default)]
    tags: ColourTag,
}

#[derive(Deserialize, Default)]
struct ColourTag {
    color: Option<String>,
}

/// The chat messages (PRIVMSG lines with text) of a chat file, sorted by `video_ms`; lines
/// without `video_ms` (outside the part) and lines that are not JSON are skipped.
pub fn read_messages(input: impl BufRead) -> io::Result<Vec<Message>> {
    let mut messages = Vec::new();
    for line in input.split(b'\n') {
        let line = line?;
        let Ok(line) = serde_json::from_slice::<ChatLine>(&line) else {
            continue;
        };
        let (Some(video_ms), Some(cmd), Some(text)) =
            (line.video_ms, line.cmd.as_deref(), line.text)
        else {
            continue;
        };
        if !is_chat_message(line.platform.as_deref(), cmd) {
            continue;
        }
        let name = match line.display_name.filter(|n| !n.trim().is_empty()) {
            Some(name) => name,
            // Other platforms' lines have no login (a masked or anonymous sender).
            None => line.login.or(line.user_id).unwrap_or_default(),
        };
        messages.push(Message {
            video_ms,
            name,
            colour: line
                .tags
                .color
                .as_deref()
                .and_then(Rgb::parse)
                .unwrap_or(DEFAULT_COLOUR),
            text,
            action: line.action,
        });
    }
    // Stable: lines of the same millisecond keep the chat file's order.
    messages.sort_by_key(|m| m.video_ms);
    Ok(messages)
}

/// A slice of time `[start_ms, end_ms)` showing `messages[first..last]` (oldest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cue {
    pub start_ms: i64,
    pub end_ms: i64,
    pub first: usize,
    pub last: usize,
}

/// The cues of `messages` (sorted by `video_ms`), each shown `show_ms`, at most `lines` at
/// once: one per slice between two events (a message coming or going) that changes what is
/// shown; cues never overlap.
pub fn cues(messages: &[Message], show_ms: i64, lines: usize) -> Vec<Cue> {
    let mut cues: Vec<Cue> = Vec::new();
    let Some(first) = messages.first() else {
        return cues;
    };
    // On screen at `t`: messages[lo..hi] (the same show time for all: they leave in order).
    let (mut lo, mut hi, mut t) = (0, 0, first.video_ms);
    loop {
        while hi < messages.len() && messages[hi].video_ms <= t {
            hi += 1;
        }
        while lo < hi && messages[lo].video_ms + show_ms <= t {
            lo += 1;
        }
        let next_start = messages.get(hi).map(|m| m.video_ms);
        let next_end = (lo < hi).then(|| messages[lo].video_ms + show_ms);
        let next = match (next_start, next_end) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        if lo < hi {
            let first = hi.saturating_sub(lines.max(1)).max(lo);
            match cues.last_mut() {
                // An older, hidden line left: the same lines go on.
                Some(c) if c.end_ms == t && c.first == first && c.last == hi => c.end_ms = next,
                _ => cues.push(Cue {
                    start_ms: t,
                    end_ms: next,
                    first,
                    last: hi,
                }),
            }
        }
        t = next;
    }
    cues
}

/// Writes the replay of `chat_file` (the chat file of `video`) in every configured format,
/// each atomically (`.recbot-tmp`, fsync, rename); returns the files written.
pub fn write_beside(
    video: &Path,
    chat_file: &Path,
    settings: &SubtitleSettings,
) -> Result<Vec<PathBuf>> {
    if settings.formats.is_empty() {
        return Ok(Vec::new());
    }
    let file =
        File::open(chat_file).with_context(|| format!("cannot read {}", chat_file.display()))?;
    let messages = read_messages(BufReader::new(file))
        .with_context(|| format!("cannot read {}", chat_file.display()))?;
    let cues = cues(&messages, settings.show_ms, settings.lines);
    let mut written = Vec::new();
    for format in &settings.formats {
        let dest = subtitle_file(video, *format);
        write_atomically(&dest, |out| match format {
            SubtitleFormat::Ass => write_ass(out, &messages, &cues),
            SubtitleFormat::Vtt => write_vtt(out, &messages, &cues),
        })?;
        written.push(dest);
    }
    Ok(written)
}

/// Lists the written subtitles (file names) in the part's sidecar, beside its other facts.
pub async fn list_in_sidecar(sidecar: &Path, written: &[PathBuf]) {
    if written.is_empty() {
        return;
    }
    let names: Vec<String> = written
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    if let Err(e) = Sidecar::update(sidecar, |s| s.subtitles = names).await {
        warn!(error = %format!("{e:#}"), sidecar = %sidecar.display(), "cannot list the chat replay subtitles in the sidecar");
    }
}

fn write_atomically(
    dest: &Path,
    body: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<()> {
    // Not `.part`: crash recovery would take a leftover for a recording.
    let tmp = temp_path_of(dest);
    let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut out = BufWriter::new(file);
    body(&mut out).with_context(|| format!("cannot write {}", tmp.display()))?;
    let file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.sync_all()?;
    drop(file);
    finalize_file(&tmp, dest).with_context(|| format!("cannot rename {} into place", tmp.display()))
}

/// The ASS header: one style, top-left (alignment 7), wrapped within the left third.
const ASS_HEADER: &str = "[Script Info]\n\
; Chat replay written by recbot\n\
ScriptType: v4.00+\n\
PlayResX: 1920\n\
PlayResY: 1080\n\
WrapStyle: 0\n\
ScaledBorderAndShadow: yes\n\
\n\
[V4+ Styles]\n\
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, \
Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, \
Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n\
Style: Chat,Arial,34,&H00FFFFFF,&H00FFFFFF,&H00000000,&H80000000,0,0,0,0,100,100,0,0,1,2,1,7,\
40,1300,40,1\n\
\n\
[Events]\n\
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n";

pub fn write_ass(out: &mut impl Write, messages: &[Message], cues: &[Cue]) -> io::Result<()> {
    out.write_all(ASS_HEADER.as_bytes())?;
    let lines: Vec<String> = messages.iter().map(ass_line).collect();
    for cue in cues {
        let (start, end) = (ass_time(cue.start_ms), ass_time(cue.end_ms));
        // Centiseconds: a slice shorter than one shows nothing.
        if start == end {
            continue;
        }
        write!(out, "Dialogue: 0,{start},{end},Chat,,0,0,0,,")?;
        for (i, line) in lines[cue.first..cue.last].iter().enumerate() {
            if i > 0 {
                out.write_all(b"\\N")?;
            }
            out.write_all(line.as_bytes())?;
        }
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// `{\c&HBBGGRR&}name{\r}: text` (a /me line: `name text` in italics).
fn ass_line(m: &Message) -> String {
    let Rgb(r, g, b) = m.colour;
    let mut line = format!("{{\\c&H{b:02X}{g:02X}{r:02X}&}}");
    push_ass_text(&mut line, &m.name);
    if m.action {
        line.push_str("{\\r} {\\i1}");
        push_ass_text(&mut line, &m.text);
        line.push_str("{\\i0}");
    } else {
        line.push_str("{\\r}: ");
        push_ass_text(&mut line, &m.text);
    }
    line
}

/// `H:MM:SS.cc`.
pub fn ass_time(ms: i64) -> String {
    let cs = ms.max(0) / 10;
    let (h, m, s, c) = (cs / 360_000, cs / 6000 % 60, cs / 100 % 60, cs % 100);
    format!("{h}:{m:02}:{s:02}.{c:02}")
}

/// Chat text as literal ASS text: `{` `}` escaped (libass shows `\{` as `{`), every `\`
/// followed by a word joiner (U+2060, invisible) so `\N`, `\n`, `\h` stay text, control
/// characters (newlines, tabs) as spaces, no leading or trailing whitespace.
pub fn push_ass_text(out: &mut String, text: &str) {
    for c in shown_chars(text) {
        match c {
            '\\' => out.push_str("\\\u{2060}"),
            '{' => out.push_str("\\{"),
            '}' => out.push_str("\\}"),
            c => out.push(c),
        }
    }
}

/// The characters of `text` as shown: trimmed, cut at [`MAX_TEXT_CHARS`] (with `…`),
/// control characters as spaces, and without the invisible bidi controls (U+202A–U+202E,
/// U+2066–U+2069), so one message cannot turn the lines around it right to left; the
/// letters of right-to-left scripts themselves stay.
fn shown_chars(text: &str) -> impl Iterator<Item = char> + '_ {
    let text = text.trim();
    let cut = text.char_indices().nth(MAX_TEXT_CHARS).map(|(i, _)| i);
    let kept = &text[..cut.unwrap_or(text.len())];
    kept.chars()
        .filter(|c| !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .chain(cut.map(|_| '…'))
}

/// Cue settings: the box's top-left corner near the video's, a third of its width.
const VTT_PLACEMENT: &str = "line:2% position:2% align:left size:34%";

pub fn write_vtt(out: &mut impl Write, messages: &[Message], cues: &[Cue]) -> io::Result<()> {
    out.write_all(b"WEBVTT\n\nSTYLE\n")?;
    let colours: BTreeSet<Rgb> = messages.iter().map(|m| m.colour).collect();
    for c in &colours {
        let class = vtt_class(*c);
        writeln!(out, "::cue(.{class}) {{ color: #{}; }}", &class[1..])?;
    }
    out.write_all(b"\nNOTE chat replay written by recbot\n")?;
    let lines: Vec<String> = messages.iter().map(vtt_line).collect();
    for (n, cue) in cues.iter().enumerate() {
        let (start, end) = (vtt_time(cue.start_ms), vtt_time(cue.end_ms));
        write!(out, "\n{}\n{start} --> {end} {VTT_PLACEMENT}\n", n + 1)?;
        for line in &lines[cue.first..cue.last] {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// `c` + the colour in hex: a class name made only of `[0-9a-f]`.
fn vtt_class(Rgb(r, g, b): Rgb) -> String {
    format!("c{r:02x}{g:02x}{b:02x}")
}

/// `<c.cRRGGBB>name</c>: text` (a /me line: `name <i>text</i>`).
fn vtt_line(m: &Message) -> String {
    let mut line = format!("<c.{}>", vtt_class(m.colour));
    push_vtt_text(&mut line, &m.name);
    if m.action {
        line.push_str("</c> <i>");
        push_vtt_text(&mut line, &m.text);
        line.push_str("</i>");
    } else {
        line.push_str("</c>: ");
        push_vtt_text(&mut line, &m.text);
    }
    line
}

/// `HH:MM:SS.mmm`.
pub fn vtt_time(ms: i64) -> String {
    let ms = ms.max(0);
    let (h, m, s, f) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}.{f:03}")
}

/// Chat text as literal cue text: `&` `<` `>` as character references (so no tag and no
/// `-->` can appear), control characters (newlines: a blank line would end the cue) as
/// spaces, trimmed.
pub fn push_vtt_text(out: &mut String, text: &str) {
    for c in shown_chars(text) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: i64 = 5000;

    fn msg(video_ms: i64, name: &str, text: &str) -> Message {
        Message {
            video_ms,
            name: name.into(),
            colour: DEFAULT_COLOUR,
            text: text.into(),
            action: false,
        }
    }

    /// A cue read back: times in ms and its lines as a player shows them.
    #[derive(Debug, Clone, PartialEq)]
    struct Shown {
        start: i64,
        end: i64,
        lines: Vec<String>,
    }

    fn parse_ass_time(t: &str) -> i64 {
        let (h, rest) = t.split_once(':').unwrap();
        let (m, rest) = rest.split_once(':').unwrap();
        let (s, cs) = rest.split_once('.').unwrap();
        assert_eq!((m.len(), s.len(), cs.len()), (2, 2, 2), "{t}");
        let n = |x: &str| x.parse::<i64>().unwrap();
        ((n(h) * 60 + n(m)) * 60 + n(s)) * 1000 + n(cs) * 10
    }

    /// Reads ASS text the way libass does: `{…}` override blocks (returned apart), `\N` a
    /// new line, `\n` a space, `\h` a hard space, `\{` `\}` braces; U+2060 is invisible.
    fn decode_ass(text: &str) -> (Vec<String>, Vec<String>) {
        let (mut lines, mut blocks) = (vec![String::new()], Vec::new());
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            let line = lines.last_mut().unwrap();
            match c {
                '{' => blocks.push(chars.by_ref().take_while(|c| *c != '}').collect()),
                '\\' => match chars.peek().copied() {
                    Some('N') => {
                        chars.next();
                        lines.push(String::new());
                    }
                    Some('n') | Some('h') => {
                        chars.next();
                        line.push('\u{a0}');
                    }
                    Some(b @ ('{' | '}')) => {
                        chars.next();
                        line.push(b);
                    }
                    _ => line.push('\\'),
                },
                '\u{2060}' => {}
                c => line.push(c),
            }
        }
        (lines, blocks)
    }

    fn parse_ass(file: &str) -> Vec<Shown> {
        assert!(file.starts_with("[Script Info]\n"));
        let mut cues = Vec::new();
        for line in file.lines() {
            let Some(rest) = line.strip_prefix("Dialogue: ") else {
                continue;
            };
            let fields: Vec<&str> = rest.splitn(10, ',').collect();
            assert_eq!(fields.len(), 10, "{line}");
            assert_eq!(fields[3], "Chat");
            let (lines, blocks) = decode_ass(fields[9]);
            for (i, b) in blocks.iter().enumerate() {
                let ours = b.starts_with("\\c&H") || b == "\\r" || b == "\\i1" || b == "\\i0";
                assert!(ours, "override block {i} `{b}` came from chat text: {line}");
            }
            cues.push(Shown {
                start: parse_ass_time(fields[1]),
                end: parse_ass_time(fields[2]),
                lines,
            });
        }
        cues
    }

    fn parse_vtt_time(t: &str) -> i64 {
        let (hms, ms) = t.split_once('.').unwrap();
        let parts: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
        assert_eq!((parts.len(), ms.len()), (3, 3), "{t}");
        ((parts[0] * 60 + parts[1]) * 60 + parts[2]) * 1000 + ms.parse::<i64>().unwrap()
    }

    /// Cue text as shown: tags dropped, `&amp;` `&lt;` `&gt;` read back.
    fn decode_vtt(line: &str) -> String {
        let mut out = String::new();
        let mut rest = line;
        while let Some(open) = rest.find('<') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('>').unwrap();
            let tag = &rest[open + 1..open + close];
            let ours = tag.starts_with("c.c") || ["/c", "i", "/i"].contains(&tag);
            assert!(ours, "tag `<{tag}>` came from chat text: {line}");
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        assert!(!out.contains('>'), "a bare `>` (as in `-->`): {line}");
        out.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    fn parse_vtt(file: &str) -> Vec<Shown> {
        let mut blocks = file.split("\n\n");
        assert_eq!(blocks.next(), Some("WEBVTT"));
        let mut cues = Vec::new();
        for block in blocks {
            let mut lines = block.lines();
            let first = lines.next().unwrap();
            if first == "STYLE" || first.starts_with("NOTE") {
                continue;
            }
            first.parse::<usize>().expect("a cue number");
            let timing = lines.next().unwrap();
            let (start, rest) = timing.split_once(" --> ").unwrap();
            let (end, settings) = rest.split_once(' ').unwrap();
            assert_eq!(settings, VTT_PLACEMENT);
            let text: Vec<String> = lines.map(decode_vtt).collect();
            assert!(text.iter().all(|l| !l.trim().is_empty()), "{block}");
            cues.push(Shown {
                start: parse_vtt_time(start),
                end: parse_vtt_time(end),
                lines: text,
            });
        }
        cues
    }

    fn render(messages: &[Message], lines: usize) -> (Vec<Shown>, Vec<Shown>, String, String) {
        let cues = cues(messages, SHOW, lines);
        let (mut ass, mut vtt) = (Vec::new(), Vec::new());
        write_ass(&mut ass, messages, &cues).unwrap();
        write_vtt(&mut vtt, messages, &cues).unwrap();
        let (ass, vtt) = (
            String::from_utf8(ass).unwrap(),
            String::from_utf8(vtt).unwrap(),
        );
        (parse_ass(&ass), parse_vtt(&vtt), ass, vtt)
    }

    /// What a player must show at `t`: the newest `lines` messages shown then.
    fn expected_at(messages: &[Message], t: i64, lines: usize) -> Vec<String> {
        let on: Vec<String> = messages
            .iter()
            .filter(|m| m.video_ms <= t && t < m.video_ms + SHOW)
            .map(|m| format!("{}: {}", m.name, m.text))
            .collect();
        on[on.len().saturating_sub(lines)..].to_vec()
    }

    fn check_against_brute_force(messages: &[Message], shown: &[Shown], lines: usize) {
        for pair in shown.windows(2) {
            assert!(pair[0].end <= pair[1].start, "cues overlap: {pair:?}");
        }
        for cue in shown {
            assert!(cue.start < cue.end, "{cue:?}");
            assert!(
                cue.lines.len() <= lines,
                "{} lines: {cue:?}",
                cue.lines.len()
            );
        }
        // What is shown changes only when a message comes or goes: check around each.
        for m in messages {
            let v = m.video_ms;
            for t in [v - 1, v, v + SHOW - 1, v + SHOW] {
                let want = expected_at(messages, t, lines);
                match shown.iter().find(|c| c.start <= t && t < c.end) {
                    Some(c) => assert_eq!(c.lines, want, "at {t} ms"),
                    None => assert!(want.is_empty(), "nothing shown at {t} ms: {want:?}"),
                }
            }
        }
    }

    #[test]
    fn timings_match_video_ms() {
        let messages = vec![
            msg(1_000, "a", "one"),
            msg(8_000, "b", "two"),
            msg(9_500, "c", "three"),
            msg(3_600_000 + 61_230, "d", "an hour later"),
        ];
        let (ass, vtt, ass_text, vtt_text) = render(&messages, 8);
        let windows = [
            (1_000, 6_000, vec!["a: one"]),
            (8_000, 9_500, vec!["b: two"]),
            (9_500, 13_000, vec!["b: two", "c: three"]),
            (13_000, 14_500, vec!["c: three"]),
            (3_661_230, 3_666_230, vec!["d: an hour later"]),
        ];
        for shown in [&ass, &vtt] {
            let got: Vec<(i64, i64, Vec<&str>)> = shown
                .iter()
                .map(|c| (c.start, c.end, c.lines.iter().map(String::as_str).collect()))
                .collect();
            assert_eq!(got, windows);
        }
        assert!(ass_text.contains("Dialogue: 0,1:01:01.23,1:01:06.23,Chat,,0,0,0,,"));
        assert!(vtt_text.contains("\n01:01:01.230 --> 01:01:06.230 "));
        assert_eq!(ass_time(59_999), "0:00:59.99");
        assert_eq!(vtt_time(36_000_000 * 10 + 1), "100:00:00.001");
    }

    #[test]
    fn the_stack_never_exceeds_subtitle_lines() {
        // A busy chat: bursts, quiet spells, several lines in one millisecond.
        let mut seed = 7u64;
        let mut t = 0;
        let mut messages = Vec::new();
        for i in 0..400 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            t += match seed >> 60 {
                0 => 7_000,
                1..=5 => 0,
                _ => ((seed >> 40) % 900) as i64 * 10,
            };
            messages.push(msg(t, "viewer", &format!("line {i}")));
        }
        for lines in [1, 3, 8] {
            let (ass, vtt, _, _) = render(&messages, lines);
            check_against_brute_force(&messages, &vtt, lines);
            // ASS times are centiseconds; these are all whole ones, so the same holds.
            check_against_brute_force(&messages, &ass, lines);
            assert!(
                vtt.iter().any(|c| c.lines.len() == lines),
                "the cap is reached"
            );
        }
    }

    const HOSTILE: &[(&str, &str)] = &[
        ("{\\b1}bold{\\b0}", "{\\b1}bold{\\b0}"),
        ("}{\\pos(0,0)}", "}{\\pos(0,0)}"),
        ("a\\Nb\\nc\\hd\\", "a\\Nb\\nc\\hd\\"),
        ("\\{ and \\}", "\\{ and \\}"),
        ("line\nbreak\r\n\nand\ttab", "line break   and tab"),
        ("  padded  ", "padded"),
        (
            "00:00:01.000 --> 00:00:02.000",
            "00:00:01.000 --> 00:00:02.000",
        ),
        ("<b>x</b> &amp; <c.red>y</c>", "<b>x</b> &amp; <c.red>y</c>"),
        ("NOTE\n\nWEBVTT", "NOTE  WEBVTT"),
        ("مرحبا 👋 שלום 🇫🇷", "مرحبا 👋 שלום 🇫🇷"),
        ("\u{202E}reversed\u{2066}", "reversed"),
    ];

    #[test]
    fn hostile_chat_is_literal_text_in_ass() {
        for (i, (text, shown)) in HOSTILE.iter().enumerate() {
            let messages = [msg(i as i64 * 10_000, "{\\c&H0000FF&}x", text)];
            let (ass, _, raw, _) = render(&messages, 8);
            assert_eq!(ass.len(), 1, "{raw}");
            assert_eq!(
                ass[0].lines,
                [format!("{{\\c&H0000FF&}}x: {shown}")],
                "{raw}"
            );
            assert_eq!(raw.lines().count(), ASS_HEADER.lines().count() + 1, "{raw}");
        }
    }

    #[test]
    fn hostile_chat_is_literal_text_in_vtt() {
        for (i, (text, shown)) in HOSTILE.iter().enumerate() {
            let messages = [msg(i as i64 * 10_000, "<v>x&", text)];
            let (_, vtt, _, raw) = render(&messages, 8);
            assert_eq!(vtt.len(), 1, "{raw}");
            assert_eq!(vtt[0].lines, [format!("<v>x&: {shown}")], "{raw}");
            assert_eq!(raw.matches("-->").count(), 1, "{raw}");
        }
    }

    #[test]
    fn long_lines_are_cut_at_twitchs_limit() {
        let long = "é".repeat(2000);
        let (ass, vtt, _, _) = render(&[msg(0, "a", &long)], 8);
        let expected = format!("a: {}…", "é".repeat(MAX_TEXT_CHARS));
        assert_eq!(ass[0].lines, std::slice::from_ref(&expected));
        assert_eq!(vtt[0].lines, [expected]);
        let exact = "x".repeat(MAX_TEXT_CHARS);
        let (ass, _, _, _) = render(&[msg(0, "a", &exact)], 8);
        assert_eq!(ass[0].lines, [format!("a: {exact}")]);
    }

    #[test]
    fn names_in_their_tag_colour_else_the_default() {
        assert_eq!(Rgb::parse("#1E90FF"), Some(Rgb(0x1E, 0x90, 0xFF)));
        for bad in [
            "",
            "1E90FF",
            "#1E90F",
            "#1E90FFF",
            "#GG0000",
            "#1e90f\u{e9}",
        ] {
            assert_eq!(Rgb::parse(bad), None, "{bad}");
        }
        let input = concat!(
            r##"{"video_ms":1000,"cmd":"PRIVMSG","login":"blue","display_name":"Blue","tags":{"color":"#1E90FF","id":"x"},"text":"hi"}"##,
            "\n",
            r##"{"video_ms":2000,"cmd":"PRIVMSG","login":"plain","display_name":"","tags":{"color":""},"text":"waves","action":true}"##,
            "\n"
        );
        let messages = read_messages(input.as_bytes()).unwrap();
        assert_eq!(messages[0].colour, Rgb(0x1E, 0x90, 0xFF));
        assert_eq!(messages[1].colour, DEFAULT_COLOUR);
        assert_eq!(
            messages[1].name, "plain",
            "an empty display name: the login"
        );
        let cues = cues(&messages, SHOW, 8);
        let (mut ass, mut vtt) = (Vec::new(), Vec::new());
        write_ass(&mut ass, &messages, &cues).unwrap();
        write_vtt(&mut vtt, &messages, &cues).unwrap();
        let (ass, vtt) = (
            String::from_utf8(ass).unwrap(),
            String::from_utf8(vtt).unwrap(),
        );
        // ASS colours are &HBBGGRR&.
        assert!(ass.contains("{\\c&HFF901E&}Blue{\\r}: hi"), "{ass}");
        assert!(
            ass.contains("{\\c&HFF70A9&}plain{\\r} {\\i1}waves{\\i0}"),
            "{ass}"
        );
        assert!(vtt.contains("::cue(.c1e90ff) { color: #1e90ff; }"), "{vtt}");
        assert!(vtt.contains("::cue(.ca970ff) { color: #a970ff; }"), "{vtt}");
        assert!(vtt.contains("<c.c1e90ff>Blue</c>: hi\n"), "{vtt}");
        assert!(vtt.contains("<c.ca970ff>plain</c> <i>waves</i>\n"), "{vtt}");
    }

    #[test]
    fn other_platforms_chat_messages_are_read() {
        let input = concat!(
            r#"{"video_ms":1000,"platform":"chzzk","cmd":"93101","display_name":"치즈","text":"안녕"}"#,
            "\n",
            r#"{"video_ms":2000,"platform":"bilibili","cmd":"DANMU_MSG","user_id":"0","text":"hello"}"#,
            "\n",
            r#"{"video_ms":3000,"platform":"bilibili","cmd":"SEND_GIFT","display_name":"x","text":"gift x1"}"#,
            "\n",
            r#"{"video_ms":4000,"platform":"chzzk","cmd":"PRIVMSG","display_name":"x","text":"not a Chzzk chat"}"#,
        );
        let messages = read_messages(input.as_bytes()).unwrap();
        let got: Vec<(i64, &str, &str)> = messages
            .iter()
            .map(|m| (m.video_ms, m.name.as_str(), m.text.as_str()))
            .collect();
        assert_eq!(got, [(1000, "치즈", "안녕"), (2000, "0", "hello")]);
    }

    #[test]
    fn only_chat_messages_inside_the_part_are_read() {
        let input = concat!(
            r#"{"video_ms":5000,"cmd":"PRIVMSG","login":"b","text":"second"}"#,
            "\n",
            r#"{"cmd":"PRIVMSG","login":"x","text":"no video_ms"}"#,
            "\n",
            r#"{"video_ms":1,"cmd":"USERNOTICE","login":"x","text":"a sub"}"#,
            "\n",
            r#"{"video_ms":1,"cmd":"PRIVMSG","login":"x"}"#,
            "\n",
            "not json\n",
            r#"{"video_ms":1000,"cmd":"PRIVMSG","login":"a","text":"first"}"#,
        );
        let messages = read_messages(input.as_bytes()).unwrap();
        let got: Vec<(i64, &str)> = messages
            .iter()
            .map(|m| (m.video_ms, m.text.as_str()))
            .collect();
        assert_eq!(got, [(1000, "first"), (5000, "second")]);
        assert!(cues(&[], SHOW, 8).is_empty());
    }
}
