//! recbot's command language: the text operators type in Slack, Discord or the console, parsed
//! into a typed [`Command`] or a [`ParseError`] that says what is wrong and shows the usage.
//!
//! Pure: no I/O, no async, no chat platform. Everything is driven by the table in [`table`].

mod channel;
mod clock;
mod code;
mod help;
mod login;
pub mod schema;
pub mod table;
mod text;

use std::fmt;

pub use channel::{ChannelRef, ChzzkId, Platform, RoomId, CHZZK_ID_LEN, MAX_ROOM_DIGITS};
pub use clock::parse_clock;
pub use code::PastedCode;
pub use help::{help, markdown_table};
pub use login::{Login, MAX_LOGIN_LEN};
pub use table::{Access, ArgKind, Spec, SPECS};
pub use text::MAX_COMMAND_LEN;

use table::{Form, Opt};
use text::{edit_distance, excerpt};

/// A parsed command, ready for the core to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Add(AddRequest),
    Remove {
        name: Login,
    },
    List,
    Status {
        name: Option<Login>,
    },
    Auth {
        service: Service,
        device: bool,
    },
    Code {
        service: Service,
        code: PastedCode,
    },
    Uploads,
    Retry {
        id: u64,
    },
    /// `cut <login> <from> <to> [session]`: times in milliseconds of the session's recording.
    Cut {
        name: Login,
        from_ms: u64,
        to_ms: u64,
        session: Option<u64>,
    },
    Quota,
    Disk,
    Help {
        topic: Option<&'static str>,
    },
}

/// `add …`: what to watch and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddRequest {
    /// The watch-list key: the Twitch login, or the name given to an HLS source.
    pub name: Login,
    pub source: Source,
    pub options: AddOptions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Twitch,
    /// Any HLS playlist (master or media), recorded like a Twitch stream.
    Hls {
        url: String,
    },
    /// A Chzzk channel; its id is in the name (`chzzk:<id>`).
    Chzzk,
    /// A Bilibili Live room; its id is in the name (`bilibili:<room>`).
    Bilibili,
}

impl Source {
    /// The word stored and shown for it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Twitch => "twitch",
            Source::Hls { .. } => "hls",
            Source::Chzzk => "chzzk",
            Source::Bilibili => "bilibili",
        }
    }
}

/// Options given with `add`; `None` means "use the configured default".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddOptions {
    pub quality: Option<Quality>,
    pub upload: Option<bool>,
    pub chat: Option<bool>,
    /// What ffmpeg does to each finished part before its upload (`[postprocess] mode`
    /// when not given).
    pub post: Option<PostMode>,
}

/// What happens to a finished part before its upload (`[postprocess] mode`, `add … post=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PostMode {
    /// The part is uploaded as recorded (`.ts` or fMP4).
    None,
    /// Copied into an MP4 (`-c copy`, `+faststart`, timestamps from 0).
    Remux,
    /// Video re-encoded (`encoder`, `rate_control`), audio copied, into an MP4.
    Transcode,
}

impl PostMode {
    pub const ALL: [PostMode; 3] = [PostMode::None, PostMode::Remux, PostMode::Transcode];

    pub fn as_str(self) -> &'static str {
        match self {
            PostMode::None => "none",
            PostMode::Remux => "remux",
            PostMode::Transcode => "transcode",
        }
    }

    pub fn parse(word: &str) -> Option<PostMode> {
        PostMode::ALL.into_iter().find(|m| m.as_str() == word)
    }

    /// Whether this mode runs ffmpeg.
    pub fn needs_ffmpeg(self) -> bool {
        self != PostMode::None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Youtube,
    /// The chat account (`[chat] login = "user"`), with recbot's own app.
    Twitch,
    /// A Twitch viewer login with a first-party client id: GQL playback tokens for
    /// renditions above 1080p.
    TwitchViewer,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Youtube => "youtube",
            Service::Twitch => "twitch",
            Service::TwitchViewer => "twitch-viewer",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A recording quality from [`table::QUALITIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quality(&'static str);

impl Quality {
    pub const BEST: Quality = Quality("best");

    pub fn parse(input: &str) -> Result<Quality, String> {
        let lower = input.to_ascii_lowercase();
        table::QUALITIES
            .iter()
            .find(|q| **q == lower)
            .map(|q| Quality(q))
            .ok_or_else(|| {
                format!(
                    "`{}` is not a quality; use one of {}",
                    excerpt(input),
                    table::QUALITIES.join(", ")
                )
            })
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// `best` and `source` both mean the highest rendition offered.
    pub fn is_best(self) -> bool {
        matches!(self.0, "best" | "source")
    }

    /// Video height and frame rate of a named quality (`720p60` → (720, 60)); `None` for
    /// `best`, `source` and `audio_only`.
    pub fn dimensions(self) -> Option<(u32, u32)> {
        let (height, fps) = self.0.split_once('p')?;
        let fps = if fps.is_empty() {
            30
        } else {
            fps.parse().ok()?
        };
        Some((height.parse().ok()?, fps))
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Command {
    /// The command's name in the table.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Add(_) => "add",
            Command::Remove { .. } => "remove",
            Command::List => "list",
            Command::Status { .. } => "status",
            Command::Auth { .. } => "auth",
            Command::Code { .. } => "code",
            Command::Uploads => "uploads",
            Command::Retry { .. } => "retry",
            Command::Cut { .. } => "cut",
            Command::Quota => "quota",
            Command::Disk => "disk",
            Command::Help { .. } => "help",
        }
    }

    pub fn spec(&self) -> &'static Spec {
        table::spec(self.name()).expect("every command has a spec")
    }

    /// Who may run it.
    pub fn access(&self) -> Access {
        self.spec().access
    }

    /// Whether its reply should only be shown to the person who asked.
    pub fn private_reply(&self) -> bool {
        self.spec().private_reply
    }
}

/// The command in its canonical text form, safe for logs and the audit trail: a pasted code is
/// shown as `[redacted]`.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Add(add) => {
                match &add.source {
                    Source::Twitch => write!(f, "add {}", add.name)?,
                    Source::Hls { url } => write!(f, "add hls {url} {}", add.name)?,
                    // `chzzk:<id>` → `add chzzk <id>`, which parses back to the same.
                    Source::Chzzk | Source::Bilibili => {
                        write!(f, "add {}", add.name.as_str().replacen(':', " ", 1))?
                    }
                }
                if let Some(q) = add.options.quality {
                    write!(f, " quality={q}")?;
                }
                let on_off = |b: bool| if b { "on" } else { "off" };
                if let Some(u) = add.options.upload {
                    write!(f, " upload={}", on_off(u))?;
                }
                if let Some(c) = add.options.chat {
                    write!(f, " chat={}", on_off(c))?;
                }
                if let Some(p) = add.options.post {
                    write!(f, " post={}", p.as_str())?;
                }
                Ok(())
            }
            Command::Remove { name } => write!(f, "remove {name}"),
            Command::Status { name: Some(name) } => write!(f, "status {name}"),
            Command::Auth { service, device } => {
                write!(f, "auth {service}{}", if *device { " device" } else { "" })
            }
            Command::Code { service, .. } => write!(f, "code {service} [redacted]"),
            Command::Retry { id } => write!(f, "retry {id}"),
            Command::Cut {
                name,
                from_ms,
                to_ms,
                session,
            } => {
                write!(
                    f,
                    "cut {name} {} {}",
                    clock_text(*from_ms),
                    clock_text(*to_ms)
                )?;
                match session {
                    Some(s) => write!(f, " {s}"),
                    None => Ok(()),
                }
            }
            Command::Help { topic: Some(t) } => write!(f, "help {t}"),
            other => f.write_str(other.name()),
        }
    }
}

/// `H:MM:SS.mmm` (the fraction only when there is one).
fn clock_text(ms: u64) -> String {
    let (s, frac) = (ms / 1000, ms % 1000);
    let base = format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
    if frac == 0 {
        base
    } else {
        format!("{base}.{frac:03}")
    }
}

/// Why a command text was refused: what is wrong, and the usage of the command when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub usage: Option<String>,
}

impl ParseError {
    fn general(message: impl Into<String>) -> ParseError {
        ParseError {
            message: message.into(),
            usage: None,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match &self.usage {
            Some(usage) => write!(f, "\nUsage: {}", usage.replace('\n', "\n       ")),
            None => write!(f, "\nType `help` to see all commands."),
        }
    }
}

impl std::error::Error for ParseError {}

/// Strips a leading slash-command invocation (`/rec add foo` → `add foo`), as typed on the
/// console or in a plain chat message. Text without it is returned unchanged.
pub fn strip_invocation<'a>(text: &'a str, invocation: &str) -> &'a str {
    let trimmed = text.trim_start();
    match trimmed.strip_prefix(invocation) {
        Some(rest) if rest.is_empty() || rest.starts_with([' ', '\t']) => rest,
        _ => text,
    }
}

/// Parses one command text (without the `/rec` invocation).
pub fn parse(text: &str) -> Result<Command, ParseError> {
    text::check(text).map_err(ParseError::general)?;
    let mut words = text.split([' ', '\t']).filter(|w| !w.is_empty());
    let Some(first) = words.next() else {
        return Err(ParseError::general("the command is empty"));
    };
    let name = first.to_ascii_lowercase();
    let Some(spec) = table::spec(&name) else {
        return Err(unknown_command(first));
    };
    let rest: Vec<&str> = words.collect();
    let (form, rest) = choose_form(spec, &rest);
    let with_usage = |message: String| ParseError {
        message,
        usage: Some(form.usage(spec.name)),
    };
    let parsed = bind(spec, form, rest).map_err(with_usage)?;
    build(spec, form, parsed).map_err(with_usage)
}

fn unknown_command(word: &str) -> ParseError {
    let lower = word.to_ascii_lowercase();
    let nearest = SPECS
        .iter()
        .map(|s| (edit_distance(&lower, s.name), s.name))
        .filter(|(d, name)| *d <= 2 || name.starts_with(&lower) && !lower.is_empty())
        .min_by_key(|(d, _)| *d);
    let mut message = format!("unknown command `{}`", excerpt(word));
    if let Some((_, name)) = nearest {
        message.push_str(&format!("; did you mean `{name}`?"));
    }
    ParseError::general(message)
}

fn choose_form<'w>(spec: &'static Spec, words: &'w [&'w str]) -> (&'static Form, &'w [&'w str]) {
    if let Some(first) = words.first() {
        for form in spec.forms {
            if let Some(keyword) = form.keyword {
                if first.eq_ignore_ascii_case(keyword) {
                    return (form, &words[1..]);
                }
            }
        }
    }
    let default = spec
        .forms
        .iter()
        .find(|f| f.keyword.is_none())
        .expect("every spec has a form without keyword");
    (default, words)
}

/// A value bound to an argument or option.
enum Value {
    Name(Login),
    Url(String),
    Word(&'static str),
    Number(u64),
    Code(PastedCode),
    Millis(u64),
}

#[derive(Default)]
struct Bound {
    args: Vec<Option<Value>>,
    options: Vec<(&'static str, &'static str)>,
}

impl Bound {
    fn option(&self, key: &str) -> Option<&'static str> {
        self.options
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

fn bind(spec: &Spec, form: &'static Form, words: &[&str]) -> Result<Bound, String> {
    let mut bound = Bound::default();
    let mut positional = Vec::new();
    for word in words {
        // A `key=value` word is an option only where the form has options; a pasted redirect
        // URL contains `=` too and must stay positional.
        match word.split_once('=') {
            Some((key, value)) if !form.options.is_empty() && !word.contains("://") => {
                let opt = find_option(spec, form, key)?;
                if bound.option(opt.key).is_some() {
                    return Err(format!("`{}` is given twice", opt.key));
                }
                let lower = value.to_ascii_lowercase();
                let Some(choice) = opt.choices.iter().find(|c| **c == lower) else {
                    return Err(format!(
                        "`{}` is not a valid {}; use one of {}",
                        excerpt(value),
                        opt.key,
                        opt.choices.join(", ")
                    ));
                };
                bound.options.push((opt.key, choice));
            }
            _ => positional.push(*word),
        }
    }
    // `remove chzzk <id>`: a platform word and an id name one channel (a Twitch login that
    // happens to be `chzzk` is still itself when nothing follows it, or a time does).
    let joined;
    let names_first = matches!(
        form.args.first().map(|a| a.kind),
        Some(ArgKind::Name | ArgKind::Login)
    );
    if names_first && positional.len() >= 2 && !positional[1].contains(':') {
        let word = positional[0].to_ascii_lowercase();
        if matches!(word.as_str(), "chzzk" | "bilibili") {
            joined = format!("{} {}", positional[0], positional[1]);
            positional.splice(0..2, [joined.as_str()]);
        }
    }
    for (i, arg) in form.args.iter().enumerate() {
        match positional.get(i) {
            Some(word) => bound.args.push(Some(value(arg.kind, word)?)),
            None if arg.required => return Err(format!("`{}` is missing", arg.name)),
            None => bound.args.push(None),
        }
    }
    if let Some(extra) = positional.get(form.args.len()) {
        return Err(format!(
            "unexpected `{}` after the arguments of `{}`",
            excerpt(extra),
            spec.name
        ));
    }
    Ok(bound)
}

fn find_option(spec: &Spec, form: &'static Form, key: &str) -> Result<&'static Opt, String> {
    let lower = key.to_ascii_lowercase();
    form.options.iter().find(|o| o.key == lower).ok_or_else(|| {
        let keys: Vec<&str> = form.options.iter().map(|o| o.key).collect();
        format!(
            "`{}` is not an option of `{}`; options: {}",
            excerpt(key),
            spec.name,
            keys.join(", ")
        )
    })
}

fn value(kind: ArgKind, word: &str) -> Result<Value, String> {
    Ok(match kind {
        ArgKind::Login | ArgKind::Name => Value::Name(Login::parse_watched(word)?),
        ArgKind::SourceName => Value::Name(Login::parse(word)?),
        ArgKind::Channel(platform) => {
            // The id, or the channel's address on that platform.
            let channel = if word.contains('/') {
                ChannelRef::parse(word)?
            } else {
                ChannelRef::parse(&format!("{} {word}", platform.as_str()))?
            };
            if channel.platform() != platform {
                return Err(format!("`{}` is not a {platform} channel", excerpt(word)));
            }
            Value::Name(Login::of_channel(&channel))
        }
        ArgKind::Url => Value::Url(parse_url(word)?),
        ArgKind::Choice(choices) => {
            let lower = word.to_ascii_lowercase();
            let lower = match lower.as_str() {
                "yt" | "google" if choices == table::SERVICES => "youtube".to_string(),
                _ => lower,
            };
            let choice = choices.iter().find(|c| **c == lower).ok_or_else(|| {
                format!("`{}` is not one of {}", excerpt(word), choices.join(", "))
            })?;
            Value::Word(choice)
        }
        ArgKind::Number => match word.parse::<u64>() {
            Ok(n) if n > 0 && n <= i64::MAX as u64 => Value::Number(n),
            _ => {
                return Err(format!(
                    "`{}` is not an id; ids are whole numbers like 12",
                    excerpt(word)
                ))
            }
        },
        ArgKind::Code => Value::Code(PastedCode::parse(word)?),
        ArgKind::Time => Value::Millis(parse_clock(word)?),
        ArgKind::Topic => {
            let lower = word.to_ascii_lowercase();
            match table::spec(&lower) {
                Some(spec) => Value::Word(spec.name),
                None => return Err(unknown_command(word).message),
            }
        }
    })
}

fn parse_url(word: &str) -> Result<String, String> {
    let word = text::unwrap_slack_link(word);
    let url = url::Url::parse(word).map_err(|e| {
        format!(
            "`{}` is not a valid address ({e}); give a full http(s):// address",
            excerpt(word)
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "`{}` is not an http(s) address with a host",
            excerpt(word)
        ));
    }
    Ok(url.to_string())
}

/// A Twitch web or TV token: 30 letters and digits today; some slack for Twitch changing it.
fn is_viewer_token(code: &PastedCode) -> bool {
    let token = code.expose();
    !code.is_address()
        && code.state().is_none()
        && (20..=64).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn build(spec: &Spec, form: &Form, mut bound: Bound) -> Result<Command, String> {
    let mut take = |i: usize| bound.args.get_mut(i).and_then(Option::take);
    let name = |v: Option<Value>| match v {
        Some(Value::Name(n)) => Some(n),
        _ => None,
    };
    let word = |v: Option<Value>| match v {
        Some(Value::Word(w)) => Some(w),
        _ => None,
    };
    let service = |w: Option<&'static str>| match w {
        Some("twitch") => Service::Twitch,
        Some("twitch-viewer") => Service::TwitchViewer,
        _ => Service::Youtube,
    };
    let command = match (spec.name, form.keyword) {
        ("add", keyword) => {
            let (name, source) = if keyword == Some("hls") {
                let Some(Value::Url(url)) = take(0) else {
                    return Err("`playlist URL` is missing".into());
                };
                (name(take(1)), Some(Source::Hls { url }))
            } else {
                (name(take(0)), None)
            };
            let name = name.ok_or("the login is missing")?;
            // The platform is the key's: `add <chzzk address>` and `add chzzk <id>` alike.
            let source = source.unwrap_or(match name.platform() {
                Platform::Chzzk => Source::Chzzk,
                Platform::Bilibili => Source::Bilibili,
                Platform::Twitch | Platform::Hls => Source::Twitch,
            });
            let on = |v: Option<&str>| v.map(|v| v == "on");
            Command::Add(AddRequest {
                name,
                source,
                options: AddOptions {
                    quality: bound.option("quality").map(Quality),
                    upload: on(bound.option("upload")),
                    chat: on(bound.option("chat")),
                    post: bound.option("post").and_then(PostMode::parse),
                },
            })
        }
        ("remove", _) => Command::Remove {
            name: name(take(0)).ok_or("the login is missing")?,
        },
        ("list", _) => Command::List,
        ("status", _) => Command::Status {
            name: name(take(0)),
        },
        ("auth", _) => {
            let service = service(word(take(0)));
            // The viewer login has one flow, the device flow.
            let device = word(take(1)) == Some("device") || service == Service::TwitchViewer;
            if device && service == Service::Youtube {
                return Err(
                    "the device flow is only offered for Twitch; use `auth youtube`".into(),
                );
            }
            Command::Auth { service, device }
        }
        ("code", _) => {
            let service = service(word(take(0)));
            let Some(Value::Code(code)) = take(1) else {
                return Err("the code is missing".into());
            };
            if service == Service::TwitchViewer && !is_viewer_token(&code) {
                return Err(
                    "`code twitch-viewer` takes a Twitch token: the value of the \
                            `auth-token` cookie of twitch.tv in a logged-in browser (letters and \
                            digits only), or use `auth twitch-viewer` and approve the code shown"
                        .into(),
                );
            }
            Command::Code { service, code }
        }
        ("uploads", _) => Command::Uploads,
        ("retry", _) => match take(0) {
            Some(Value::Number(id)) => Command::Retry { id },
            _ => return Err("the upload id is missing".into()),
        },
        ("cut", _) => {
            let name = name(take(0)).ok_or("the login is missing")?;
            let (Some(Value::Millis(from_ms)), Some(Value::Millis(to_ms))) = (take(1), take(2))
            else {
                return Err("the times are missing".into());
            };
            if from_ms >= to_ms {
                return Err("`from` must come before `to`".into());
            }
            let session = match take(3) {
                Some(Value::Number(id)) => Some(id),
                _ => None,
            };
            Command::Cut {
                name,
                from_ms,
                to_ms,
                session,
            }
        }
        ("quota", _) => Command::Quota,
        ("disk", _) => Command::Disk,
        ("help", _) => Command::Help {
            topic: word(take(0)),
        },
        (other, _) => return Err(format!("`{other}` has no parser")),
    };
    Ok(command)
}

#[cfg(test)]
mod tests;
