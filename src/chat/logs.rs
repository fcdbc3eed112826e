//! `recbot logs <login>`: one UTC day of a login's chat log in human form
//! (`[HH:MM:SS] DisplayName: text`, `/me` actions, subs and raids, timeouts and bans, deleted
//! messages), filtered by time, user and text, or as the stored JSON lines. Reads the plain
//! and the compressed day file alike (`day_files`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, NaiveDate, NaiveTime, Timelike, Utc};
use recbot_commands::Login;

use super::day_files::{self, Item};
use super::record::Record;
use super::writer::{day_path, zst_path};

/// What to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub login: Login,
    pub date: NaiveDate,
    /// From this time (UTC) on.
    pub since: Option<NaiveTime>,
    /// Up to the end of this minute (UTC).
    pub until: Option<NaiveTime>,
    /// Login or display name, any case.
    pub user: Option<String>,
    /// Text to look for, any case.
    pub grep: Option<String>,
    /// Print the stored JSON lines instead of the human form.
    pub json: bool,
}

/// The `recbot logs` arguments as typed.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// The Twitch login (`foo`, `@foo` or a twitch.tv address).
    pub login: String,
    /// The UTC day, YYYY-MM-DD (default: today).
    #[arg(long)]
    pub date: Option<String>,
    /// Only lines from this UTC time on (HH:MM).
    #[arg(long)]
    pub since: Option<String>,
    /// Only lines up to the end of this UTC minute (HH:MM).
    #[arg(long)]
    pub until: Option<String>,
    /// Only lines by (or about) this user: login or display name, any case.
    #[arg(long)]
    pub user: Option<String>,
    /// Only lines containing this text, any case.
    #[arg(long)]
    pub grep: Option<String>,
    /// Print the stored JSON lines (raw IRC line, tags, times) instead.
    #[arg(long)]
    pub json: bool,
}

impl Query {
    /// Validates what was typed on the command line; `date` defaults to today (UTC).
    pub fn parse(args: Args) -> Result<Query> {
        // A Twitch login (or its address), or a platform key (`chzzk:<id>`) or address.
        let login = Login::parse_watched(&args.login).map_err(|e| anyhow!(e))?;
        let date = match args.date.as_deref() {
            Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| anyhow!("`{d}` is not a date; use YYYY-MM-DD"))?,
            None => Utc::now().date_naive(),
        };
        let time = |t: &str| {
            NaiveTime::parse_from_str(t, "%H:%M")
                .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M:%S"))
                .map_err(|_| anyhow!("`{t}` is not a time; use HH:MM (UTC)"))
        };
        let since = args.since.as_deref().map(time).transpose()?;
        let until = args.until.as_deref().map(time).transpose()?;
        if let (Some(s), Some(u)) = (since, until) {
            if u < s {
                bail!("--until {u} is before --since {s}");
            }
        }
        let user = args
            .user
            .map(|u| u.trim_start_matches('@').to_lowercase())
            .filter(|u| !u.is_empty());
        let grep = args
            .grep
            .map(|g| g.to_lowercase())
            .filter(|g| !g.is_empty());
        Ok(Query {
            login,
            date,
            since,
            until,
            user,
            grep,
            json: args.json,
        })
    }

    pub fn path(&self, chat_dir: &Path) -> PathBuf {
        day_path(chat_dir, &self.login.path_safe(), self.date)
    }

    /// The time and user filters (cheap: checked before a line is rendered).
    fn admits(&self, record: &Record) -> bool {
        let Some(at) = DateTime::<Utc>::from_timestamp_millis(record.time_ms()) else {
            return false;
        };
        let time = at.time();
        if self.since.is_some_and(|s| time < s) {
            return false;
        }
        if let Some(u) = self.until {
            let minute = |t: NaiveTime| (t.hour(), t.minute());
            if minute(time) > minute(u) {
                return false;
            }
        }
        if let Some(user) = &self.user {
            let login = record.login.as_deref().unwrap_or("").to_lowercase();
            let display = record.display_name.as_deref().unwrap_or("").to_lowercase();
            // Other platforms' lines have no login: their user id stands in.
            let id = record
                .user_id
                .as_deref()
                .filter(|_| record.platform.is_some());
            let id = id.unwrap_or("").to_lowercase();
            if *user != login && *user != display && (id.is_empty() || *user != id) {
                return false;
            }
        }
        true
    }

    /// The `--grep` filter, on the rendered line (the raw line when it has no rendering).
    fn greps(&self, record: &Record, human: Option<&str>) -> bool {
        let Some(grep) = &self.grep else {
            return true;
        };
        let haystack = match human {
            Some(h) => h.to_lowercase(),
            None => record.raw.to_lowercase(),
        };
        haystack.contains(grep.as_str())
    }
}

/// Prints the matching lines of the day to `out` (its plain file, then its compressed one);
/// returns how many.
pub fn print(chat_dir: &Path, query: &Query, out: &mut impl Write) -> Result<u64> {
    let files = day_files::files_of(chat_dir, &query.login.path_safe(), query.date);
    if files.is_empty() {
        bail!(
            "no chat log for {} on {} (looked for {} and {})",
            query.login,
            query.date,
            query.path(chat_dir).display(),
            zst_path(chat_dir, &query.login.path_safe(), query.date).display()
        );
    }
    // A compressed file is read from about this time on (the marks lead there).
    let since_ms = query
        .since
        .map(|t| query.date.and_time(t).and_utc().timestamp_millis());
    let mut shown = 0;
    for path in files {
        let mut n = 0u64;
        let mut failed = None;
        day_files::read(&path, since_ms, &mut |item| {
            n += 1;
            match show(query, item, n, out) {
                Ok(counted) => {
                    shown += counted;
                    Ok(true)
                }
                Err(e) => {
                    failed = Some(e);
                    Ok(false)
                }
            }
        })
        .with_context(|| format!("cannot read {}", path.display()))?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(shown)
}

/// Shows one item of a day file if it matches; returns 1 if it was shown.
fn show(query: &Query, item: Item<'_>, n: u64, out: &mut impl Write) -> Result<u64> {
    let quiet = query.json || query.user.is_some() || query.grep.is_some();
    let line = match item {
        Item::Line(line) => line,
        Item::Damaged => {
            if !quiet {
                writeln!(out, "(part of the file is damaged)")?;
            }
            return Ok(0);
        }
    };
    let Ok(record) = serde_json::from_slice::<Record>(line) else {
        // A line cut by a crash: say so rather than hide it.
        if !quiet {
            writeln!(out, "(line {n} of the file is damaged)")?;
        }
        return Ok(0);
    };
    if !query.admits(&record) {
        return Ok(0);
    }
    let human = render(&record);
    if !query.greps(&record, human.as_deref()) {
        return Ok(0);
    }
    if query.json {
        out.write_all(line)?;
        out.write_all(b"\n")?;
    } else if let Some(text) = human {
        let at = DateTime::<Utc>::from_timestamp_millis(record.time_ms()).unwrap_or_default();
        writeln!(out, "[{}] {text}", at.format("%H:%M:%S"))?;
    } else {
        return Ok(0);
    }
    Ok(1)
}

/// The human form of a logged line, without its time; `None` for lines not worth showing
/// (JOIN/PART echoes, USERSTATE, …). Control characters are shown, never sent to the terminal
/// (a chat message must not be able to move the cursor, retitle the window or worse).
pub fn render(r: &Record) -> Option<String> {
    human(r).map(|line| printable(&line))
}

/// `text` with C0 controls (and DEL) as their Unicode control pictures (ESC → ␛) and C1
/// controls as U+FFFD.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
            '\u{7f}' => '\u{2421}',
            '\u{80}'..='\u{9f}' => '\u{fffd}',
            c => c,
        })
        .collect()
}

fn human(r: &Record) -> Option<String> {
    if let Some(error) = &r.error {
        return Some(format!("(unparsed line: {error}) {}", r.raw));
    }
    if r.platform.as_deref().is_some_and(|p| p != "twitch") {
        return platform_human(r);
    }
    let text = r.text.as_deref().unwrap_or("");
    match r.cmd.as_deref()? {
        "PRIVMSG" => {
            let name = name(r);
            let mut line = if r.action {
                format!("* {name} {text}")
            } else {
                format!("{name}: {text}")
            };
            if let Some(bits) = r.tag("bits") {
                line.push_str(&format!(" [{bits} bits]"));
            }
            Some(line)
        }
        "USERNOTICE" => {
            let system = r
                .tag("system-msg")
                .map(|s| s.replace(['\n', '\r'], " ").trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| {
                    format!("{} ({})", name(r), r.tag("msg-id").unwrap_or("notice"))
                });
            Some(if text.is_empty() {
                format!("★ {system}")
            } else {
                format!("★ {system} — {}: {text}", name(r))
            })
        }
        "CLEARCHAT" => Some(match (r.login.as_deref(), r.tag("ban-duration")) {
            (Some(user), Some(secs)) => format!("✖ {user} was timed out for {secs} s"),
            (Some(user), None) => format!("✖ {user} was banned"),
            (None, _) => "✖ the chat was cleared".to_string(),
        }),
        "CLEARMSG" => Some(format!(
            "✖ a message from {} was deleted: {text}",
            r.login.as_deref().unwrap_or("someone")
        )),
        "NOTICE" => Some(format!("notice: {text}")),
        "ROOMSTATE" => {
            let mut settings: Vec<String> = Vec::new();
            for key in ["emote-only", "followers-only", "r9k", "slow", "subs-only"] {
                let Some(v) = r.tag(key) else { continue };
                let shown = match (key, v) {
                    (_, "0") | ("followers-only", "-1") => "off".to_string(),
                    ("followers-only", m) => format!("{m} min"),
                    ("slow", s) => format!("{s} s"),
                    _ => "on".to_string(),
                };
                settings.push(format!("{key} {shown}"));
            }
            (!settings.is_empty()).then(|| format!("room settings: {}", settings.join(", ")))
        }
        _ => None,
    }
}

/// A Chzzk or Bilibili line: `name: text`, with the amount of a donation, super chat or
/// gift; the stream starting and ending; other commands only in `--json`.
fn platform_human(r: &Record) -> Option<String> {
    match r.cmd.as_deref()? {
        "LIVE" => return Some("▶ the stream started".into()),
        "PREPARING" => return Some("■ the stream ended".into()),
        _ => {}
    }
    if r.text.is_none() && r.amount.is_none() {
        return None;
    }
    let name = r
        .display_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .or(r.user_id.as_deref())
        .unwrap_or("someone");
    let mut line = format!("{name}: {}", r.text.as_deref().unwrap_or(""));
    if let Some(amount) = &r.amount {
        line.push_str(&format!(" [{} {}]", amount.value, amount.unit));
    }
    Some(line)
}

/// `DisplayName`, or `DisplayName (login)` when they differ beyond case.
fn name(r: &Record) -> String {
    let login = r.login.as_deref().unwrap_or("");
    match r.display_name.as_deref().filter(|d| !d.is_empty()) {
        Some(display) if display.eq_ignore_ascii_case(login) || login.is_empty() => {
            display.to_string()
        }
        Some(display) => format!("{display} ({login})"),
        None if !login.is_empty() => login.to_string(),
        None => "someone".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::record::encode;

    fn record(raw: &str) -> Record {
        let mut out = Vec::new();
        encode(raw, None, 1_700_000_000_000, &mut out);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn human_forms() {
        let cases = [
            (
                "@display-name=ronni;tmi-sent-ts=1 :ronni!ronni@ronni.tmi.twitch.tv PRIVMSG #ronni :Kappa Keepo Kappa",
                Some("ronni: Kappa Keepo Kappa"),
            ),
            (
                "@display-name=randers :randers!randers@randers.tmi.twitch.tv PRIVMSG #pajlada :\u{1}ACTION -tags\u{1}",
                Some("* randers -tags"),
            ),
            (
                "@display-name=테스트계정420 :testaccount_420!testaccount_420@x PRIVMSG #pajlada :@asd",
                Some("테스트계정420 (testaccount_420): @asd"),
            ),
            (
                "@bits=100;display-name=ronni :ronni!ronni@x PRIVMSG #ronni :cheer100",
                Some("ronni: cheer100 [100 bits]"),
            ),
            (
                "@display-name=ronni;login=ronni;msg-id=resub;system-msg=ronni\\shas\\ssubscribed\\sfor\\s6\\smonths! :tmi.twitch.tv USERNOTICE #dallas :Great stream -- keep it up!",
                Some("★ ronni has subscribed for 6 months! — ronni: Great stream -- keep it up!"),
            ),
            (
                "@login=testchannel;msg-id=raid;system-msg=15\\sraiders\\sfrom\\sTestChannel\\shave\\sjoined\\n! :tmi.twitch.tv USERNOTICE #othertestchannel",
                Some("★ 15 raiders from TestChannel have joined !"),
            ),
            (
                "@room-id=1;target-user-id=2 :tmi.twitch.tv CLEARCHAT #dallas :ronni",
                Some("✖ ronni was banned"),
            ),
            (
                "@ban-duration=350;room-id=1;target-user-id=2 :tmi.twitch.tv CLEARCHAT #dallas :ronni",
                Some("✖ ronni was timed out for 350 s"),
            ),
            ("@room-id=1 :tmi.twitch.tv CLEARCHAT #dallas", Some("✖ the chat was cleared")),
            (
                "@login=foo;room-id=;target-msg-id=x :tmi.twitch.tv CLEARMSG #bar :what a great day",
                Some("✖ a message from foo was deleted: what a great day"),
            ),
            (
                "@emote-only=0;followers-only=-1;r9k=0;room-id=1;slow=5;subs-only=1 :tmi.twitch.tv ROOMSTATE #randers",
                Some("room settings: emote-only off, followers-only off, r9k off, slow 5 s, subs-only on"),
            ),
            (
                "@msg-id=msg_banned :tmi.twitch.tv NOTICE #forsen :You are permanently banned from talking in forsen.",
                Some("notice: You are permanently banned from talking in forsen."),
            ),
            (":ronni!ronni@ronni.tmi.twitch.tv JOIN #dallas", None),
            ("@only-tags", Some("(unparsed line: tags but no command) @only-tags")),
        ];
        for (raw, expected) in cases {
            assert_eq!(render(&record(raw)).as_deref(), expected, "{raw}");
        }
    }

    #[test]
    fn platform_lines_in_human_form() {
        use crate::chat::platform_line::{Amount, PlatformLine};
        use crate::chat::record::encode_platform;
        use recbot_commands::Platform;
        let line = |platform, cmd: &str, name: Option<&str>, text: Option<&str>, amount| {
            let l = PlatformLine {
                platform,
                cmd: cmd.into(),
                user_id: Some("u1".into()),
                name: name.map(str::to_string),
                text: text.map(str::to_string),
                time_ms: Some(1_700_000_000_000),
                amount,
                raw: "{}".into(),
            };
            let mut out = Vec::new();
            encode_platform(&l, "c", 1_700_000_000_000, &mut out);
            serde_json::from_slice::<Record>(&out).unwrap()
        };
        let krw = Some(Amount {
            value: 1000,
            unit: "KRW",
        });
        let cases = [
            (
                line(
                    Platform::Chzzk,
                    "93101",
                    Some("치즈"),
                    Some("안녕\u{1b}"),
                    None,
                ),
                Some("치즈: 안녕␛"),
            ),
            (
                line(Platform::Chzzk, "93102", None, Some("후원"), krw),
                Some("u1: 후원 [1000 KRW]"),
            ),
            (
                line(
                    Platform::Bilibili,
                    "DANMU_MSG",
                    Some("提***"),
                    Some("hello"),
                    None,
                ),
                Some("提***: hello"),
            ),
            (
                line(Platform::Bilibili, "LIVE", None, None, None),
                Some("▶ the stream started"),
            ),
            (
                line(Platform::Bilibili, "ONLINE_RANK_COUNT", None, None, None),
                None,
            ),
        ];
        for (record, expected) in cases {
            assert_eq!(render(&record).as_deref(), expected, "{record:?}");
        }
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let cases = [
            (
                // OSC (retitle the window), CSI (colour, erase), a bell, a C1 CSI.
                "@display-name=ev\\sil :evil!evil@x PRIVMSG #a :hi \u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31mred\u{7f}",
                "ev il (evil): hi ␛]0;pwned␇␛[2J\u{fffd}31mred␡",
            ),
            (
                ":x!x@x PRIVMSG #a :\u{1}ACTION waves\u{8}\u{1}",
                "* x waves␈",
            ),
            (
                // Not IRC (a control character in the tags): shown raw, defused all the same.
                "@display-name=x\u{1b}[1m :x!x@x PRIVMSG #a :\u{1}ACTION waves\u{1}",
                "(unparsed line: control character 0x1b outside the text) \
                 @display-name=x␛[1m :x!x@x PRIVMSG #a :␁ACTION waves␁",
            ),
            (
                // A CR from an escaped tag value.
                "@display-name=x\\ry;login=x;msg-id=sub;system-msg=subbed :tmi.twitch.tv USERNOTICE #a :t\tab",
                "★ subbed — x␍y (x): t␉ab",
            ),
        ];
        for (raw, expected) in cases {
            let shown = render(&record(raw)).unwrap();
            assert_eq!(shown, expected, "{raw:?}");
            assert!(!shown.chars().any(char::is_control), "{shown:?}");
        }
        // The stored line keeps the exact text (`--json` prints it JSON-escaped).
        assert!(record(cases[0].0).text.unwrap().contains('\u{1b}'));
    }

    #[test]
    fn queries_are_validated() {
        let args =
            |login: &str, date: Option<&str>, since: Option<&str>, until: Option<&str>| Args {
                login: login.into(),
                date: date.map(str::to_string),
                since: since.map(str::to_string),
                until: until.map(str::to_string),
                ..Args::default()
            };
        let q = Query::parse(Args {
            user: Some("@Ronni".into()),
            grep: Some("KAPPA".into()),
            ..args("@Foo", Some("2026-11-21"), Some("10:00"), Some("11:30"))
        })
        .unwrap();
        assert_eq!(q.login.as_str(), "foo");
        // A Chzzk channel by key or address: its day files are in the path-safe folder.
        for chzzk in [
            "chzzk:c68b8ef525fb3d2fa146344d84991753",
            "https://chzzk.naver.com/live/c68b8ef525fb3d2fa146344d84991753",
        ] {
            let q = Query::parse(args(chzzk, None, None, None)).unwrap();
            assert_eq!(
                q.login.path_safe(),
                "chzzk-c68b8ef525fb3d2fa146344d84991753"
            );
        }
        assert_eq!(q.user.as_deref(), Some("ronni"));
        assert_eq!(q.grep.as_deref(), Some("kappa"));
        for (login, date, since, until) in [
            ("../x", None, None, None),
            ("foo", Some("21.11.2026"), None, None),
            ("foo", Some("2026-02-30"), None, None),
            ("foo", None, Some("25:00"), None),
            ("foo", None, Some("12:00"), Some("11:00")),
        ] {
            assert!(
                Query::parse(args(login, date, since, until)).is_err(),
                "{login} {date:?} {since:?} {until:?}"
            );
        }
    }
}
