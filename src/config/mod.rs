//! The typed configuration: loading the TOML file, environment overrides
//! (`RECBOT_<SECTION>__<KEY>`), validation with messages that name the file, line and key,
//! and path resolution. Credentials are [`Secret`](crate::secret::Secret)s.
//!
//! One file per section holds its struct, defaults, checks and `check-config` lines; this
//! module holds [`Config`], loading, and the checks that span sections.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod bilibili;
mod chat;
mod chzzk;
mod cluster;
mod email;
mod frontends;
mod http;
mod lenient;
mod postprocess;
mod recording;
mod storage;
mod summary;
mod twitch;
mod webhooks;
mod youtube;

pub use bilibili::Bilibili;
pub use chat::{stream_address, Chat, ChatCompression, ChatLogin, SubtitleFormat};
pub use chzzk::{Chzzk, PollStep};
pub use cluster::{check_node_id, Cluster};
pub use email::{Email, SmtpSecurity, SmtpServer};
pub use frontends::{Console, Discord, Slack};
pub use http::{Http, HttpToken, Role};
pub(crate) use lenient::lenient_string;
pub use postprocess::{Encoder, PostMode, Postprocess, RateControl};
pub use recording::Recording;
pub use storage::{shown_postgres_url, Database, Storage};
pub use summary::SummaryChart;
pub use twitch::{DetectionMode, DetectionSetting, Twitch};
pub use webhooks::Webhook;
pub use youtube::{AfterUpload, Privacy, Youtube};

/// Prefix of environment overrides: `RECBOT_TWITCH__CLIENT_SECRET` sets `[twitch] client_secret`.
pub const ENV_PREFIX: &str = "RECBOT_";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub storage: Storage,
    /// `[cluster]`: this node among several sharing one PostgreSQL state database.
    pub cluster: Cluster,
    pub console: Console,
    pub twitch: Twitch,
    /// `[chzzk]`: Chzzk's endpoints, login cookies and poll schedule.
    pub chzzk: Chzzk,
    /// `[bilibili]`: Bilibili Live's endpoints and login cookie.
    pub bilibili: Bilibili,
    pub recording: Recording,
    pub chat: Chat,
    pub youtube: Youtube,
    /// `[postprocess]`: ffmpeg after a part is finished, before its upload.
    pub postprocess: Postprocess,
    /// `[summary]`: a chart of each finished broadcast.
    pub summary: SummaryChart,
    pub slack: Slack,
    pub discord: Discord,
    pub http: Http,
    pub email: Email,
    /// `[[webhooks]]`: outside receivers of the events.
    pub webhooks: Vec<Webhook>,
    /// Where the file was read from; relative paths were resolved against its folder.
    #[serde(skip)]
    pub source: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            storage: Storage::default(),
            cluster: Cluster::default(),
            console: Console::default(),
            twitch: Twitch::default(),
            chzzk: Chzzk::default(),
            bilibili: Bilibili::default(),
            recording: Recording::default(),
            chat: Chat::default(),
            youtube: Youtube::default(),
            postprocess: Postprocess::default(),
            summary: SummaryChart::default(),
            slack: Slack::default(),
            discord: Discord::default(),
            http: Http::default(),
            email: Email::default(),
            webhooks: Vec::new(),
            source: PathBuf::from("recbot.toml"),
        }
    }
}

impl Config {
    /// Where `after_upload = "move"` puts uploaded recordings.
    pub fn uploaded_dir(&self) -> PathBuf {
        self.youtube
            .uploaded_dir
            .clone()
            .unwrap_or_else(|| self.storage.data_dir.join("uploaded"))
    }

    pub fn console_enabled(&self) -> bool {
        self.console
            .enabled
            .unwrap_or(!self.slack.is_configured() && !self.discord.is_configured())
    }

    /// Reads, overrides from the process environment, validates and resolves `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.contains("__"))
            .collect();
        Self::load_with_env(path, &env)
    }

    /// [`Config::load`] with an explicit environment, for tests.
    pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read the config file: {e}"),
        })?;
        Self::from_text(&text, path, env)
    }

    /// Parses `text` as if read from `path` (used for relative paths and messages).
    pub fn from_text(
        text: &str,
        path: &Path,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let error = |line, key: Option<String>, message: String| ConfigError {
            file: path.to_path_buf(),
            line,
            key,
            message,
        };
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e.span().map(|s| line_of(text, s.start));
            error(line, None, e.message().to_string())
        })?;
        let overrides =
            apply_env(&mut table, env).map_err(|(var, msg)| error(None, Some(var), msg))?;
        let mut config: Config = match deserialize(&table) {
            Ok(config) => config,
            Err((key, message)) => {
                // `recording.allowed_sources[1]` came from the variable that set the list.
                let whole = key.split('[').next().unwrap_or(&key);
                if let Some(var) = overrides.get(whole) {
                    return Err(error(
                        None,
                        Some(key),
                        format!("{message} (from environment variable {var})"),
                    ));
                }
                // Deserialize the file text itself for the position of the error.
                let line = file_error_line(text).or_else(|| locate(text, &key));
                return Err(error(line, Some(key), message));
            }
        };
        config.source = path.to_path_buf();
        let folder = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(folder);
        if let Err((key, message)) = config.validate() {
            let line = if overrides.contains_key(&key) {
                None
            } else {
                locate(text, &key)
            };
            let message = match overrides.get(&key) {
                Some(var) => format!("{message} (from environment variable {var})"),
                None => message,
            };
            return Err(error(line, Some(key), message));
        }
        Ok(config)
    }

    /// What `check-config` prints: front-ends, features, and where data goes. No secrets.
    /// Each section writes its own lines; this puts them in order.
    pub fn summary(&self) -> String {
        let mut frontends = Vec::new();
        if self.console_enabled() {
            frontends.push("console".to_string());
        }
        if self.slack.is_configured() {
            frontends.push(self.slack.summary());
        }
        if self.discord.is_configured() {
            frontends.push(self.discord.summary());
        }
        if self.http.address().is_some() && !self.http.tokens.is_empty() {
            frontends.push("http".into());
        }
        if frontends.is_empty() {
            frontends.push("none (nothing can send commands!)".into());
        }
        format!(
            "{} is valid.\n\
             front-ends:      {}\n\
             live detection:  {}\n\
             twitch codecs:   {} (offered to usher as supported_codecs)\n\
             chzzk:           {}\n\
             bilibili live:   {}\n\
             {}\
             chat (IRC):      {}\n\
             chat replay:     {}\n\
             chat stream:     {}\n\
             youtube uploads: {}\n\
             {}\
             summary charts:  {}\n\
             http api:        {}\n\
             metrics:         {}\n\
             {}\
             {}\
             {}\
             cluster:         {}\n",
            self.source.display(),
            frontends.join("; "),
            self.twitch.detection_summary(),
            self.twitch.supported_codecs_param(),
            self.chzzk.summary(),
            self.bilibili.summary(),
            self.recording.summary(),
            self.chat.summary(&self.twitch),
            self.chat.replay_summary(),
            self.chat.stream_summary(),
            self.youtube.summary(),
            self.postprocess.summary(),
            self.summary.summary(),
            self.http.summary(),
            self.http.metrics_summary(),
            self.email.summary(),
            webhooks::summary(&self.webhooks),
            self.storage.summary(),
            self.cluster
                .summary(matches!(self.storage.database(), Database::Postgres { .. })),
        )
    }

    fn resolve_paths(&mut self, folder: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = folder.join(&*p);
            }
        };
        resolve(&mut self.storage.data_dir);
        if let Some(p) = self.storage.recordings_dir.as_mut() {
            resolve(p);
        }
        if let Some(p) = self.storage.chat_dir.as_mut() {
            resolve(p);
        }
        if let Some(p) = self.youtube.uploaded_dir.as_mut() {
            resolve(p);
        }
    }

    /// Checks what types alone cannot, section by section, then what spans sections. Errors
    /// name the key as `section.key`.
    fn validate(&self) -> Result<(), (String, String)> {
        self.storage.validate()?;
        self.cluster.validate()?;
        self.twitch.validate()?;
        self.chzzk.validate()?;
        self.bilibili.validate()?;
        if self.chat.login == ChatLogin::User && !self.twitch.irc_tls {
            return fail(
                "chat.login",
                "\"user\" sends the Twitch account's token to the chat server, which needs \
                 [twitch] irc_tls = true (or use login = \"anonymous\" over plain TCP)",
            );
        }
        self.recording.validate()?;
        if !self
            .recording
            .codecs
            .iter()
            .any(|c| self.twitch.supported_codecs.contains(c))
        {
            return fail(
                "recording.codecs",
                "lists no codec of [twitch] supported_codecs: usher would offer nothing \
                 recbot may record but audio",
            );
        }
        self.chat.validate()?;
        self.youtube.validate()?;
        self.postprocess.validate()?;
        self.slack.validate()?;
        self.discord.validate()?;
        self.http.validate()?;
        self.email.validate()?;
        webhooks::validate(&self.webhooks)
    }
}

/// A refusal of `key` (dotted, `section.key`) saying what is wrong.
fn fail(key: &str, message: &str) -> Result<(), (String, String)> {
    Err((key.to_string(), message.to_string()))
}

/// Every `(key, address)` must be an http(s) address with a host.
fn check_urls<'a>(
    urls: impl IntoIterator<Item = (&'a str, &'a String)>,
) -> Result<(), (String, String)> {
    for (key, value) in urls {
        check_url(value).map_err(|m| (key.to_string(), m))?;
    }
    Ok(())
}

/// How long a started `auth` waits for its `code`: both services share the bound.
fn check_pending_auth(key: &str, minutes: f64) -> Result<(), (String, String)> {
    if !(minutes.is_finite() && minutes > 0.0 && minutes <= 60.0) {
        return fail(
            key,
            "must be more than 0 and at most 60 minutes (authorization codes are \
             short-lived)",
        );
    }
    Ok(())
}

fn check_url(value: &str) -> Result<(), String> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        Ok(_) => Err(format!("`{value}` must be an http(s) address")),
        Err(e) => Err(format!("`{value}` is not a valid address: {e}")),
    }
}

/// Why a config was refused: file, line when known, key when known, and what is wrong.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ", key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Deserializes, reporting the dotted key path of the first error (for an unknown key, the
/// path ends with that key).
fn deserialize(table: &toml::Table) -> Result<Config, (String, String)> {
    let value = toml::Value::Table(table.clone());
    serde_path_to_error::deserialize(value)
        .map_err(|e| (e.path().to_string(), e.inner().message().to_string()))
}

/// The line of the first error when the file text is deserialized on its own (spans survive
/// only this way).
fn file_error_line(text: &str) -> Option<usize> {
    let de = toml::Deserializer::new(text);
    match serde_path_to_error::deserialize::<_, Config>(de) {
        Ok(_) => None,
        Err(e) => e.inner().span().map(|s| line_of(text, s.start)),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Finds the line of `section.key` in the text (for errors found after deserialization).
fn locate(text: &str, dotted: &str) -> Option<usize> {
    let (section, key) = dotted.split_once('.')?;
    let mut in_section = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_section = trimmed.trim_matches(['[', ']']).trim() == section;
            if in_section && key.is_empty() {
                return Some(i + 1);
            }
            continue;
        }
        if in_section {
            if let Some((k, _)) = trimmed.split_once('=') {
                if k.trim() == key {
                    return Some(i + 1);
                }
            }
        }
    }
    None
}

/// Applies `RECBOT_<SECTION>__<KEY>` variables to the table. Returns which dotted key came from
/// which variable. Values are read as TOML when they parse as a number, bool or array, and as
/// strings otherwise (a string-typed key accepts numbers too, see `lenient_string`).
fn apply_env(
    table: &mut toml::Table,
    env: &[(String, String)],
) -> Result<BTreeMap<String, String>, (String, String)> {
    let mut applied = BTreeMap::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        if section.is_empty() || key.is_empty() || key.contains("__") {
            return Err((
                var.clone(),
                "environment overrides look like RECBOT_<SECTION>__<KEY>".into(),
            ));
        }
        let value = env_value(raw);
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section_table) = entry.as_table_mut() else {
            return Err((var.clone(), format!("`{section}` is not a section")));
        };
        section_table.insert(key.clone(), value);
        applied.insert(format!("{section}.{key}"), var.clone());
    }
    Ok(applied)
}

fn env_value(raw: &str) -> toml::Value {
    let trimmed = raw.trim();
    let parsed = format!("v = {trimmed}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"));
    // Only take a typed reading that is exactly what was written: `0x1F`, `1_000` or `12#x`
    // are strings (a secret or an id), not numbers.
    match parsed {
        Some(toml::Value::Integer(i)) if i.to_string() == trimmed => toml::Value::Integer(i),
        Some(toml::Value::Float(f)) if f.to_string() == trimmed => toml::Value::Float(f),
        Some(toml::Value::Boolean(b)) if b.to_string() == trimmed => toml::Value::Boolean(b),
        Some(v @ toml::Value::Array(_)) if trimmed.starts_with('[') => v,
        Some(v @ toml::Value::String(_)) if trimmed.starts_with(['"', '\'']) => v,
        _ => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests;

/// For tests: every outside endpoint the given config text does not set is pointed at a closed
/// local port, so a test can never reach the internet (a worker it did not mean to exercise
/// just fails to connect). HLS sources may be local (`allow_private_sources`) unless the text
/// says otherwise. The disk limits are also set out of reach unless the text sets them:
/// the machine running the tests may well be 85% full, and a `DiskLow` notice nobody asked for
/// would change what a test sees.
#[doc(hidden)]
pub mod testing {
    /// Closed port on the loopback interface (the discard service is never running).
    const NOWHERE: &str = "http://127.0.0.1:9";

    pub fn offline(text: &str) -> String {
        let mut table: toml::Table = text.parse().expect("test config is valid TOML");
        let defaults: [(&str, &str, toml::Value); 24] = [
            // No HTTP listener unless a test asks for one (tests run in parallel).
            ("http", "listen", "".into()),
            // The tests' HLS origins are local servers.
            ("recording", "allow_private_sources", true.into()),
            // No VOD fills unless a test asks for them (they would look for VODs).
            ("recording", "vod_fill", false.into()),
            ("storage", "warn_usage_percent", toml::Value::Integer(100)),
            ("storage", "min_free_gb", toml::Value::Float(0.0)),
            ("twitch", "helix_url", format!("{NOWHERE}/helix").into()),
            ("twitch", "id_url", format!("{NOWHERE}/oauth2").into()),
            ("twitch", "gql_url", format!("{NOWHERE}/gql").into()),
            ("twitch", "usher_url", NOWHERE.into()),
            ("twitch", "eventsub_ws_url", "ws://127.0.0.1:9/ws".into()),
            ("twitch", "irc_host", "127.0.0.1".into()),
            ("twitch", "irc_port", toml::Value::Integer(9)),
            ("twitch", "irc_tls", false.into()),
            ("chzzk", "api_url", NOWHERE.into()),
            (
                "chzzk",
                "chat_api_url",
                format!("{NOWHERE}/nng_main").into(),
            ),
            ("chzzk", "chat_ws_url", "ws://127.0.0.1:9/chat".into()),
            ("bilibili", "api_url", NOWHERE.into()),
            ("bilibili", "live_api_url", NOWHERE.into()),
            ("youtube", "auth_url", format!("{NOWHERE}/auth").into()),
            ("youtube", "token_url", format!("{NOWHERE}/token").into()),
            ("youtube", "upload_url", format!("{NOWHERE}/upload").into()),
            ("youtube", "api_url", format!("{NOWHERE}/youtube/v3").into()),
            ("slack", "api_url", format!("{NOWHERE}/api").into()),
            ("discord", "api_url", NOWHERE.into()),
        ];
        for (section, key, value) in defaults {
            let section = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(section) = section.as_table_mut() {
                section.entry(key).or_insert(value);
            }
        }
        toml::to_string(&table).expect("a TOML table serializes")
    }
}
