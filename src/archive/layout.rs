//! Where a recording's files live and what they are called: file names from `[recording]
//! file_template` (placeholders filled in, `{started:…}` as strftime in UTC, every value made
//! safe as (part of) one path component, and the result checked to be a plain relative path, so
//! no template and no title can write outside recordings_dir), and the names of the files
//! beside a recording: `<name>.part` while it is written, `<name> (2).ts` when the name is
//! taken, the `.recbot-tmp` of every temporary file, the durable checkpoint `<note>.synced`,
//! the chat file `<name>.chat.jsonl` and its replay subtitles `<name>.chat.ass` /
//! `<name>.chat.vtt`, the HLS index `<name>.m3u8`. Pure: no I/O.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::config::SubtitleFormat;

/// Longest title kept in a file name, in bytes (cut at a character boundary).
pub const MAX_TITLE_BYTES: usize = 100;
/// Longest path component most filesystems accept, in bytes.
const MAX_COMPONENT_BYTES: usize = 255;
/// `{started}` without a format.
const DEFAULT_TIME_FORMAT: &str = "%Y-%m-%d_%H-%M-%S";

/// The values a template can use.
#[derive(Debug, Clone)]
pub struct NameValues<'a> {
    pub login: &'a str,
    pub started: DateTime<Utc>,
    pub title: &'a str,
    pub game: Option<&'a str>,
    pub stream_id: Option<&'a str>,
    pub part: u32,
}

/// Renders `template` to a path relative to recordings_dir. With `fmp4`, a `.ts` extension
/// becomes `.mp4` (concatenated fMP4 fragments are an MP4 file, not a transport stream).
pub fn render(template: &str, values: &NameValues<'_>, fmp4: bool) -> Result<PathBuf, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err("unmatched `}` in the file template".into());
        }
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or("unmatched `{` in the file template")?;
        let placeholder = &after[..close];
        let (name, format) = match placeholder.split_once(':') {
            Some((n, f)) => (n, Some(f)),
            None => (placeholder, None),
        };
        match (name, format) {
            ("started", format) => {
                let format = format.unwrap_or(DEFAULT_TIME_FORMAT);
                let mut time = String::new();
                write!(time, "{}", values.started.format(format))
                    .map_err(|_| format!("`{format}` is not a valid strftime format"))?;
                out.push_str(&component_safe(&time, usize::MAX, true));
            }
            ("login", None) => out.push_str(&component_safe(values.login, 64, false)),
            ("title", None) => out.push_str(&title(values.title)),
            ("game", None) => out.push_str(&or_unknown(component_safe(
                values.game.unwrap_or(""),
                60,
                false,
            ))),
            ("stream_id", None) => out.push_str(&or_unknown(component_safe(
                values.stream_id.unwrap_or(""),
                40,
                false,
            ))),
            ("part", None) => out.push_str(&values.part.to_string()),
            _ => {
                return Err(format!(
                    "unknown placeholder `{{{placeholder}}}` in the file template; use {{login}}, \
                     {{started:<strftime>}}, {{title}}, {{game}}, {{stream_id}} or {{part}}"
                ))
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    if fmp4 {
        if let Some(stem) = out.strip_suffix(".ts") {
            out = format!("{stem}.mp4");
        }
    }
    check_relative(&out)
}

/// What an empty `{game}` or `{stream_id}` becomes (no category set, an HLS source): an empty
/// value would make an empty folder name (`foo//x.ts`) or a name starting with `/`.
pub const UNKNOWN: &str = "unknown";

fn or_unknown(value: String) -> String {
    if value.is_empty() {
        UNKNOWN.into()
    } else {
        value
    }
}

/// Checks a template with sample (and hostile, and missing) values, for config validation.
pub fn validate_template(template: &str) -> Result<(), String> {
    if template.trim().is_empty() {
        return Err("must not be empty".into());
    }
    for title in ["a title", "../../x", "/", "\0", ""] {
        for (game, stream_id) in [
            (Some("../game"), Some("123")),
            (None, None),
            (Some(".."), Some("")),
        ] {
            let values = NameValues {
                login: "somelogin",
                started: DateTime::<Utc>::UNIX_EPOCH,
                title,
                game,
                stream_id,
                part: 1,
            };
            render(template, &values, false)?;
        }
    }
    Ok(())
}

/// A stream title as a file-name piece: no separators, no control or invisible characters,
/// whitespace collapsed, no leading/trailing dots, at most [`MAX_TITLE_BYTES`].
pub fn title(raw: &str) -> String {
    let safe = component_safe(raw, MAX_TITLE_BYTES, false);
    if safe.is_empty() {
        "untitled".into()
    } else {
        safe
    }
}

/// Makes `raw` safe inside one path component. `/` is kept only when `allow_slash` (strftime
/// output in the operator's own template may build folders, e.g. `%Y/%m`).
fn component_safe(raw: &str, max_bytes: usize, allow_slash: bool) -> String {
    let mut out = String::with_capacity(raw.len().min(max_bytes));
    let mut space = false;
    for c in raw.chars() {
        let c = match c {
            '/' if allow_slash => '/',
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c if c.is_control() || is_invisible(c) => continue,
            c if c.is_whitespace() => {
                space = true;
                continue;
            }
            c => c,
        };
        if space && !out.is_empty() {
            if out.len() + 1 > max_bytes {
                break;
            }
            out.push(' ');
        }
        space = false;
        if out.len() + c.len_utf8() > max_bytes {
            break;
        }
        out.push(c);
    }
    out.trim_matches(|c: char| c == '.' || c == ' ').to_string()
}

/// Format characters that hide or reorder text (bidi overrides, zero-width characters).
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Accepts only a non-empty relative path of ordinary components of sane length.
fn check_relative(rendered: &str) -> Result<PathBuf, String> {
    let path = Path::new(rendered);
    if rendered.is_empty() || rendered.ends_with('/') {
        return Err("the file template must end in a file name".into());
    }
    for component in path.components() {
        match component {
            Component::Normal(part) => {
                let part = part.to_string_lossy();
                if part.len() > MAX_COMPONENT_BYTES {
                    return Err(format!(
                        "the file template makes a name longer than {MAX_COMPONENT_BYTES} bytes"
                    ));
                }
                if part.starts_with('.') {
                    return Err(
                        "the file template must not make hidden names (starting with `.`)".into(),
                    );
                }
            }
            _ => return Err(
                "the file template must stay inside recordings_dir (no absolute paths, no `..`)"
                    .into(),
            ),
        }
    }
    if rendered.contains("//") {
        return Err("the file template has an empty folder name (`//`)".into());
    }
    Ok(path.to_path_buf())
}

/// The ending of every temporary file recbot writes beside recordings and chat files (sidecar,
/// checkpoint, chat export, a copy across file systems). Not `.part`, so crash recovery, which
/// finishes `.part` files, can never take one for a recording.
pub const TEMP_SUFFIX: &str = ".recbot-tmp";

/// `x.json` → `x.json.recbot-tmp`: where `x.json` is written before it is renamed into place.
pub fn temp_path_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(TEMP_SUFFIX);
    PathBuf::from(s)
}

/// `x.ts.part.json` → `x.ts.part.json.synced`: the durable copy of a note, written only after
/// the data it describes was fsynced.
pub fn synced_note_path(note: &Path) -> PathBuf {
    let mut s = note.as_os_str().to_owned();
    s.push(".synced");
    PathBuf::from(s)
}

/// `x.ts` → `x.ts.part`.
pub fn part_path_of(final_path: &Path) -> PathBuf {
    let mut s = final_path.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// `dir/name.ts` with n = 1 → itself; n = 2 → `dir/name (2).ts`.
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    if n <= 1 {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem} ({n}).{}", ext.to_string_lossy()),
        None => format!("{stem} ({n})"),
    };
    path.with_file_name(name)
}

/// `dir/name.ts`, n = 2 → `dir/name.fill-2.ts` (`.mp4` when `fmp4`): the n-th gap of a part
/// filled from the VOD, beside it.
pub fn fill_file(video: &Path, n: usize, fmp4: bool) -> PathBuf {
    let stem = video
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = if fmp4 { "mp4" } else { "ts" };
    video.with_file_name(format!("{stem}.fill-{n}.{ext}"))
}

/// Whether `file` is named as a fill ([`fill_file`]): `<name>.fill-<n>.ts|mp4`.
pub fn is_fill_file(file: &Path) -> bool {
    let Some(stem) = file.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
        return false;
    };
    let ext_ok = matches!(
        file.extension().and_then(|e| e.to_str()),
        Some("ts" | "mp4")
    );
    ext_ok
        && stem.rsplit_once(".fill-").is_some_and(|(name, n)| {
            !name.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        })
}

/// `dir/name.fill-2.ts` → `dir/name.json`: the sidecar of the part a fill belongs to (it lists
/// the fill); `None` when `fill` is not named as one.
pub fn sidecar_of_fill(fill: &Path) -> Option<PathBuf> {
    if !is_fill_file(fill) {
        return None;
    }
    let stem = fill.file_stem()?.to_string_lossy().into_owned();
    let (name, _) = stem.rsplit_once(".fill-")?;
    Some(fill.with_file_name(format!("{name}.json")))
}

/// Stem ending of a post-processed fMP4 part ([`post_file`]), which cannot take the part's
/// own name.
const POST_STEM: &str = ".post";

/// `dir/name.ts` → `dir/name.chat.jsonl`: the chat file beside a recording (a post-processed
/// part's, `dir/name.mp4` or `dir/name.post.mp4`, is its part's).
pub fn chat_file(video: &Path) -> PathBuf {
    let stem = video
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.strip_suffix(POST_STEM).unwrap_or(&stem);
    video.with_file_name(format!("{stem}.chat.jsonl"))
}

/// `dir/name.ts` → `dir/name.summary.png`: a broadcast's summary chart, beside its first part
/// (named after it, so after-upload keeps, moves or deletes it with that part).
pub fn summary_file(first_part: &Path) -> PathBuf {
    let chat = chat_file(first_part);
    let name = chat.file_name().unwrap_or_default().to_string_lossy();
    let stem = name.strip_suffix(".chat.jsonl").unwrap_or(&name);
    first_part.with_file_name(format!("{stem}.summary.png"))
}

/// `dir/name.ts` → `dir/name.chat.ass` (or `.vtt`): the chat replay subtitles beside a
/// recording, named after its chat file so a player finds them by the video's name (a
/// post-processed `name.post.mp4` shares its part's).
pub fn subtitle_file(video: &Path, format: SubtitleFormat) -> PathBuf {
    let chat = chat_file(video);
    let name = chat.file_name().unwrap_or_default().to_string_lossy();
    let stem = name.strip_suffix(".chat.jsonl").unwrap_or(&name);
    video.with_file_name(format!("{stem}.chat.{}", format.as_str()))
}

/// `dir/name.ts` → `dir/name.m3u8`: the HLS index beside a recording (its segments as byte
/// ranges into the part; `recorder::index`). A post-processed `name.post.mp4` shares its
/// part's, like the chat file.
pub fn index_file(video: &Path) -> PathBuf {
    let stem = video
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.strip_suffix(POST_STEM).unwrap_or(&stem);
    video.with_file_name(format!("{stem}.m3u8"))
}

/// `dir/name.ts` → `dir/name.mp4`; `dir/name.mp4` (fMP4) → `dir/name.post.mp4`: where
/// post-processing (`[postprocess]`) writes a part's MP4, beside it.
pub fn post_file(video: &Path) -> PathBuf {
    let stem = video
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if video.extension().is_some_and(|e| e == "mp4") {
        video.with_file_name(format!("{stem}{POST_STEM}.mp4"))
    } else {
        video.with_file_name(format!("{stem}.mp4"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn post_files_sit_beside_their_part_and_share_its_chat_file() {
        let ts = Path::new("/r/a/x (2).ts");
        assert_eq!(post_file(ts), Path::new("/r/a/x (2).mp4"));
        let fmp4 = Path::new("/r/a/x.mp4");
        assert_eq!(post_file(fmp4), Path::new("/r/a/x.post.mp4"));
        assert_eq!(chat_file(&post_file(ts)), chat_file(ts));
        assert_eq!(chat_file(&post_file(fmp4)), chat_file(fmp4));
    }

    const DEFAULT: &str = "{login}/{started:%Y-%m-%d_%H-%M-%S}_{title}.ts";

    fn values(title: &str) -> NameValues<'_> {
        NameValues {
            login: "foo",
            started: Utc.with_ymd_and_hms(2026, 11, 21, 10, 5, 9).unwrap(),
            title,
            game: Some("Chess"),
            stream_id: Some("4242"),
            part: 2,
        }
    }

    fn check(template: &str, title: &str, expected: &str) {
        assert_eq!(
            render(template, &values(title), false).unwrap(),
            PathBuf::from(expected),
            "{template} / {title:?}"
        );
    }

    #[test]
    fn default_template_and_placeholders() {
        check(
            DEFAULT,
            "Hello world",
            "foo/2026-11-21_10-05-09_Hello world.ts",
        );
        check(
            "{login}/{stream_id}-{part}-{game}-{started}.ts",
            "x",
            "foo/4242-2-Chess-2026-11-21_10-05-09.ts",
        );
        check("{started:%Y/%m}/{login}.ts", "x", "2026/11/foo.ts");
        assert_eq!(
            render(DEFAULT, &values("t"), true).unwrap(),
            PathBuf::from("foo/2026-11-21_10-05-09_t.mp4")
        );
    }

    #[test]
    fn hostile_titles_stay_in_one_component() {
        check(DEFAULT, "../../x", "foo/2026-11-21_10-05-09__.._x.ts");
        check(DEFAULT, "/", "foo/2026-11-21_10-05-09__.ts");
        check(
            DEFAULT,
            "a\0b\nc\u{202e}d",
            "foo/2026-11-21_10-05-09_abcd.ts",
        );
        check(DEFAULT, "  \t ", "foo/2026-11-21_10-05-09_untitled.ts");
        check(DEFAULT, "..", "foo/2026-11-21_10-05-09_untitled.ts");
        check(DEFAULT, "C:\\win*?", "foo/2026-11-21_10-05-09_C__win__.ts");
        let long = "é".repeat(1000);
        let path = render(DEFAULT, &values(&long), false).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(name.len() <= 20 + MAX_TITLE_BYTES + 3, "{}", name.len());
        assert!(name.ends_with(".ts"));
        // A title alone never makes a separate component or a hidden file.
        for t in ["../../x", "/", "\0", ".hidden", &"a".repeat(1000)] {
            let p = render("{title}", &values(t), false).unwrap();
            assert_eq!(p.components().count(), 1, "{t:?} -> {p:?}");
            assert!(!p.to_str().unwrap().starts_with('.'), "{t:?} -> {p:?}");
        }
    }

    #[test]
    fn missing_game_or_stream_id_becomes_unknown() {
        let none = NameValues {
            game: None,
            stream_id: None,
            ..values("hi")
        };
        let render_none = |t: &str| render(t, &none, false).unwrap();
        assert_eq!(
            render_none("{login}/{game}/{title}.ts"),
            PathBuf::from("foo/unknown/hi.ts")
        );
        assert_eq!(
            render_none("{game}/{login}.ts"),
            PathBuf::from("unknown/foo.ts")
        );
        assert_eq!(
            render_none("{login}/{stream_id}/{part}.ts"),
            PathBuf::from("foo/unknown/2.ts")
        );
        // A value that sanitizes to nothing is missing too.
        let dots = NameValues {
            game: Some(".."),
            stream_id: Some(" "),
            ..values("hi")
        };
        assert_eq!(
            render("{game}/{stream_id}.ts", &dots, false).unwrap(),
            PathBuf::from("unknown/unknown.ts")
        );
        validate_template("{login}/{game}/{title}.ts").unwrap();
        validate_template("{game}/{stream_id}.ts").unwrap();
    }

    #[test]
    fn fill_files_are_named_beside_their_part() {
        let part = Path::new("/r/foo/2026-01-01_title.ts");
        let fill = fill_file(part, 2, false);
        assert_eq!(fill, PathBuf::from("/r/foo/2026-01-01_title.fill-2.ts"));
        assert!(is_fill_file(&fill));
        assert_eq!(
            sidecar_of_fill(&fill),
            Some(PathBuf::from("/r/foo/2026-01-01_title.json"))
        );
        assert_eq!(sidecar_of_fill(part), None);
        assert_eq!(
            fill_file(Path::new("/r/a.mp4"), 1, true),
            PathBuf::from("/r/a.fill-1.mp4")
        );
        for not in [
            "/r/a.ts",
            "/r/a.fill-.ts",
            "/r/a.fill-x.ts",
            "/r/.fill-1.ts",
            "/r/a.fill-1.json",
        ] {
            assert!(!is_fill_file(Path::new(not)), "{not}");
        }
    }

    #[test]
    fn templates_that_escape_or_break_are_refused() {
        for bad in [
            "/abs/{login}.ts",
            "../{login}.ts",
            "{login}/../../x.ts",
            "{login}/",
            "{nope}.ts",
            "{login.ts",
            "{login}}.ts",
            "{started:%Q}.ts",
            "{login}//x.ts",
            "",
            ".{login}.ts",
        ] {
            assert!(validate_template(bad).is_err(), "{bad:?} accepted");
        }
        validate_template(DEFAULT).unwrap();
        validate_template("{started:%Y}/{login}-{part}.ts").unwrap();
    }
}
