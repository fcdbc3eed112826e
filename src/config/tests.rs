use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_text(text, Path::new("/etc/recbot/recbot.toml"), &[])
}

fn parse_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_text(text, Path::new("/etc/recbot/recbot.toml"), &env)
}

fn example_text() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/recbot.example.toml"
    ))
    .unwrap()
}

#[test]
fn empty_file_gives_documented_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.storage.data_dir, PathBuf::from("/etc/recbot/data"));
    assert_eq!(
        c.storage.recordings_dir(),
        PathBuf::from("/etc/recbot/data/recordings")
    );
    assert_eq!(c.storage.chat_dir(), PathBuf::from("/etc/recbot/data/chat"));
    assert_eq!(c.storage.warn_usage_percent, 85);
    assert!(c.console_enabled());
    assert_eq!(c.twitch.poll_interval_secs(), 30);
    assert_eq!(c.twitch.irc_port, 6697);
    assert!(c.twitch.irc_tls);
    assert_eq!(c.recording.quality.as_str(), "best");
    assert_eq!(c.recording.max_part_hours, 11.5);
    assert_eq!(c.youtube.privacy, Privacy::Private);
    assert!(!c.youtube.enabled);
    assert_eq!(c.slack.command, "/rec");
}

#[test]
fn example_config_is_valid_and_documents_every_key() {
    let text = example_text();
    Config::from_text(&text, Path::new("config/recbot.example.toml"), &[]).unwrap();
    // serde lists the expected fields when it meets an unknown one; use that as the schema.
    let sections = expected_fields("__probe__ = 1");
    assert!(sections.contains(&"twitch".to_string()));
    for section in sections {
        // `webhooks` is an array of tables.
        let header = if section == "webhooks" {
            format!("[[{section}]]")
        } else {
            format!("[{section}]")
        };
        assert!(text.contains(&header), "example lacks {header}");
        for key in expected_fields(&format!("{header}\n__probe__ = 1")) {
            let documented = text.lines().any(|l| {
                let l = l.trim_start_matches('#').trim();
                l.starts_with(&format!("{key} =")) || l.starts_with(&format!("{key}="))
            });
            assert!(documented, "example does not document [{section}] {key}");
        }
    }
}

fn expected_fields(text: &str) -> Vec<String> {
    let err = parse(text).unwrap_err();
    let list = err
        .message
        .split("expected one of ")
        .nth(1)
        .or_else(|| err.message.split("expected ").nth(1))
        .unwrap_or_else(|| panic!("{}", err.message));
    list.split(", ")
        .map(|f| f.trim_matches('`').to_string())
        .collect()
}

#[test]
fn unknown_keys_are_errors_naming_file_line_and_key() {
    let err =
        parse("[twitch]\nclient_id = \"x\"\nclient_secret = \"y\"\npoll_intervall_secs = 5\n")
            .unwrap_err();
    let shown = err.to_string();
    assert_eq!(err.line, Some(4), "{shown}");
    assert_eq!(
        err.key.as_deref(),
        Some("twitch.poll_intervall_secs"),
        "{shown}"
    );
    assert!(
        shown.starts_with("/etc/recbot/recbot.toml, line 4"),
        "{shown}"
    );

    let err = parse("[storage]\n\n[twich]\nx = 1\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("twich"), "{err}");
    assert_eq!(err.line, Some(3), "{err}");
}

#[test]
fn bad_values_name_the_key() {
    for (text, key, line, fragment) in [
        (
            "[youtube]\nprivacy = \"secret\"\n",
            "youtube.privacy",
            2,
            "unknown variant",
        ),
        (
            "[storage]\nwarn_usage_percent = \"lots\"\n",
            "storage.warn_usage_percent",
            2,
            "invalid type",
        ),
        (
            "[storage]\nwarn_usage_percent = 250\n",
            "storage.warn_usage_percent",
            2,
            "",
        ),
        (
            "[storage]\n\nwarn_usage_percent = 0\n",
            "storage.warn_usage_percent",
            3,
            "between 1 and 100",
        ),
        (
            "[recording]\nquality = \"4k\"\n",
            "recording.quality",
            2,
            "not a quality",
        ),
        (
            "[recording]\nmax_part_hours = -1\n",
            "recording.max_part_hours",
            2,
            "more than 0",
        ),
        (
            "[twitch]\nhelix_url = \"not a url\"\n",
            "twitch.helix_url",
            2,
            "not a valid address",
        ),
        (
            "[twitch]\nclient_id = \"abc\"\n",
            "twitch.client_secret",
            0,
            "go together",
        ),
        (
            "[youtube]\nenabled = true\n",
            "youtube.enabled",
            2,
            "client_id and client_secret",
        ),
        (
            "[youtube]\nredirect_uri = \"urn:ietf:wg:oauth:2.0:oob\"\n",
            "youtube.redirect_uri",
            2,
            "blocked",
        ),
        (
            "[slack]\napp_token = \"xapp-1\"\n",
            "slack.bot_token",
            0,
            "bot token",
        ),
        (
            "[slack]\nbot_token = \"xoxb-1\"\n",
            "slack.app_token",
            0,
            "app token",
        ),
        (
            "[discord]\nguild_id = \"abc\"\n",
            "discord.guild_id",
            2,
            "numeric",
        ),
    ] {
        let err = parse(text).unwrap_err();
        assert_eq!(err.key.as_deref(), Some(key), "{text}: {err}");
        if line > 0 {
            assert_eq!(err.line, Some(line), "{text}: {err}");
        }
        assert!(err.message.contains(fragment), "{text}: {err}");
    }
}

#[test]
fn syntax_errors_have_a_line() {
    let err = parse("[storage]\ndata_dir = \"unterminated\n").unwrap_err();
    assert_eq!(err.line, Some(2), "{err}");
}

#[test]
fn environment_overrides_every_kind_of_value() {
    let c = parse_env(
        "[twitch]\nclient_id = \"file\"\nclient_secret = \"file\"\n",
        &[
            ("RECBOT_TWITCH__CLIENT_SECRET", "0x1F_from_env"),
            ("RECBOT_TWITCH__CLIENT_ID", "12345"),
            ("RECBOT_TWITCH__POLL_INTERVAL_SECS", "3"),
            ("RECBOT_TWITCH__IRC_TLS", "false"),
            ("RECBOT_STORAGE__DATA_DIR", "/data"),
            ("RECBOT_STORAGE__MIN_FREE_GB", "1.5"),
            ("RECBOT_DISCORD__OPERATORS", "[\"1\", 2]"),
            ("RECBOT_DISCORD__GUILD_ID", "123456789012345678"),
            ("RECBOT_YOUTUBE__PRIVACY", "unlisted"),
        ],
    )
    .unwrap();
    assert_eq!(
        c.twitch.client_secret.as_ref().unwrap().expose(),
        "0x1F_from_env"
    );
    assert_eq!(c.twitch.client_id.as_deref(), Some("12345"));
    assert_eq!(c.twitch.poll_interval_secs(), 3);
    assert!(!c.twitch.irc_tls);
    assert_eq!(c.storage.data_dir, PathBuf::from("/data"));
    assert_eq!(c.storage.min_free_gb, 1.5);
    assert_eq!(c.discord.operators, vec!["1", "2"]);
    assert_eq!(c.discord.guild_id.as_deref(), Some("123456789012345678"));
    assert_eq!(c.youtube.privacy, Privacy::Unlisted);
}

#[test]
fn environment_errors_name_the_variable() {
    let err = parse_env("", &[("RECBOT_TWITCH__NOPE", "1")]).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("twitch.nope"));
    assert!(err.message.contains("RECBOT_TWITCH__NOPE"), "{err}");
    let err = parse_env("", &[("RECBOT_STORAGE__WARN_USAGE_PERCENT", "101")]).unwrap_err();
    assert!(
        err.message.contains("RECBOT_STORAGE__WARN_USAGE_PERCENT"),
        "{err}"
    );
    let err = parse_env("", &[("RECBOT_NOSECTION__X", "1")]).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("nosection"), "{err}");
}

#[test]
fn secrets_never_print() {
    let c = parse(
        "[twitch]\nclient_id = \"id\"\nclient_secret = \"hunter2-twitch\"\n\
         [slack]\napp_token = \"xapp-hunter2\"\nbot_token = \"xoxb-hunter2\"\n\
         [discord]\ntoken = \"discord-hunter2\"\n",
    )
    .unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("[redacted]"));
    assert_eq!(
        format!("{}", c.discord.token.as_ref().unwrap()),
        "[redacted]"
    );
    assert!(
        !c.console_enabled(),
        "console defaults off when a chat front-end is set"
    );
    assert_eq!(c.twitch.poll_interval_secs(), 10);
}

#[test]
fn absolute_and_relative_paths() {
    let c = parse("[storage]\ndata_dir = \"/srv/rec\"\nchat_dir = \"logs\"\n").unwrap();
    assert_eq!(c.storage.data_dir, PathBuf::from("/srv/rec"));
    assert_eq!(c.storage.chat_dir(), PathBuf::from("/etc/recbot/logs"));
    assert_eq!(
        c.storage.recordings_dir(),
        PathBuf::from("/srv/rec/recordings")
    );
}

#[test]
fn upload_and_oauth_settings_are_checked() {
    let c = parse("").unwrap();
    assert_eq!(c.youtube.after_upload, AfterUpload::Keep);
    assert_eq!(c.youtube.chunk_bytes(), 16 * 1024 * 1024);
    assert_eq!(c.uploaded_dir(), PathBuf::from("/etc/recbot/data/uploaded"));
    assert_eq!(c.twitch.scopes, vec!["chat:read".to_string()]);
    assert_eq!(c.twitch.validate_interval_secs, 3600);
    let c = parse(
        "[youtube]\nafter_upload = \"move\"\nuploaded_dir = \"done\"\npending_auth_minutes = 2.5\n",
    )
    .unwrap();
    assert_eq!(c.youtube.after_upload, AfterUpload::Move);
    assert_eq!(c.uploaded_dir(), PathBuf::from("/etc/recbot/done"));
    assert_eq!(c.youtube.pending_auth_minutes, 2.5);
    for (text, key, fragment) in [
        (
            "[youtube]\nchunk_size_mib = 0",
            "youtube.chunk_size_mib",
            "between 1 and 1024",
        ),
        (
            "[youtube]\nafter_upload = \"archive\"",
            "youtube.after_upload",
            "unknown variant",
        ),
        (
            "[youtube]\npending_auth_minutes = 0",
            "youtube.pending_auth_minutes",
            "more than 0",
        ),
        (
            "[twitch]\npending_auth_minutes = 90",
            "twitch.pending_auth_minutes",
            "at most 60",
        ),
        (
            "[youtube]\nretry_limit = 0",
            "youtube.retry_limit",
            "at least 1",
        ),
        (
            "[youtube]\nretry_limit = 1000",
            "youtube.retry_limit",
            "bounded",
        ),
        (
            "[youtube]\ntitle_template = \"{started:%Q}\"",
            "youtube.title_template",
            "strftime",
        ),
        (
            "[youtube]\ntitle_template = \"{channel}\"",
            "youtube.title_template",
            "unknown placeholder",
        ),
        (
            "[twitch]\nvalidate_interval_secs = 7200",
            "twitch.validate_interval_secs",
            "hourly",
        ),
        (
            "[twitch]\nscopes = [\"chat:read\", \"a b\"]",
            "twitch.scopes",
            "Twitch scopes",
        ),
        ("[twitch]\nscopes = []", "twitch.scopes", "Twitch scopes"),
        (
            "[cluster]\nnode_id = \"a/b\"",
            "cluster.node_id",
            "only letters",
        ),
        ("[cluster]\nnode_id = \"\"", "cluster.node_id", "1 to 64"),
        (
            "[cluster]\nlease_secs = 1",
            "cluster.lease_secs",
            "between 3",
        ),
        ("[cluster]\ncapacity = 0", "cluster.capacity", "at least 1"),
    ] {
        let err = parse(text).unwrap_err();
        assert_eq!(err.key.as_deref(), Some(key), "{text}: {err}");
        assert!(err.message.contains(fragment), "{text}: {err}");
    }
}

#[test]
fn file_templates_that_leave_the_recordings_folder_are_refused() {
    for bad in [
        "/abs/{login}.ts",
        "{login}/../../x.ts",
        "{nope}.ts",
        "{started:%Q}_{login}.ts",
    ] {
        let err = parse(&format!("[recording]\nfile_template = {bad:?}\n")).unwrap_err();
        assert_eq!(
            err.key.as_deref(),
            Some("recording.file_template"),
            "{bad}: {err}"
        );
    }
    parse("[recording]\nfile_template = \"{started:%Y}/{login}_{title}_{part}.ts\"\n").unwrap();
}

#[test]
fn chat_section_has_defaults_and_is_validated() {
    let c = parse("").unwrap();
    assert!(c.chat.enabled);
    assert_eq!(c.chat.login, ChatLogin::Anonymous);
    assert_eq!(c.chat.channels_per_connection, 90);
    assert_eq!(c.chat.join_limit, 20);
    assert_eq!(c.chat.join_window_secs, 10.0);
    assert_eq!(c.chat.ping_interval_secs, 60.0);
    assert_eq!(c.chat.ping_timeout_secs, 10.0);
    assert_eq!(c.chat.backoff_max_secs, 60.0);
    let c = parse("[chat]\nlogin = \"user\"\nping_interval_secs = 0.5\n").unwrap();
    assert_eq!(c.chat.login, ChatLogin::User);
    assert_eq!(c.chat.ping_interval_secs, 0.5);
    assert_eq!(c.chat.max_open_files, 0, "one per room by default");
    assert_eq!(c.chat.compression, super::ChatCompression::Zstd);
    assert_eq!(c.chat.zstd_level, 1);
    assert!(c.summary().contains("day files zstd level 1"));
    let plain = parse("[chat]\ncompression = \"none\"\nzstd_level = 19\n").unwrap();
    assert_eq!(plain.chat.compression, super::ChatCompression::None);
    assert!(plain.summary().contains("day files plain"));
    // The account's token never goes over plain TCP.
    let err = parse("[twitch]\nirc_tls = false\n[chat]\nlogin = \"user\"\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("chat.login"), "{err}");
    assert!(err.to_string().contains("irc_tls = true"), "{err}");
    parse("[twitch]\nirc_tls = false\n[chat]\nlogin = \"anonymous\"\n").unwrap();
    for (body, key) in [
        (
            "[chat]\nchannels_per_connection = 0\n",
            "chat.channels_per_connection",
        ),
        ("[chat]\njoin_limit = 0\n", "chat.join_limit"),
        ("[chat]\nping_timeout_secs = -1\n", "chat.ping_timeout_secs"),
        (
            "[chat]\nflush_interval_secs = 5\n",
            "chat.flush_interval_secs",
        ),
        ("[chat]\nbackoff_max_secs = 0.5\n", "chat.backoff_max_secs"),
        ("[chat]\nlogin = \"bot\"\n", "chat.login"),
        ("[chat]\nmax_open_files = 3\n", "chat.max_open_files"),
        ("[chat]\nzstd_level = 0\n", "chat.zstd_level"),
        ("[chat]\nzstd_level = 22\n", "chat.zstd_level"),
        ("[chat]\ncompression = \"gzip\"\n", "chat.compression"),
    ] {
        let err = parse(body).unwrap_err();
        assert_eq!(err.key.as_deref(), Some(key), "{body}: {err}");
        assert_eq!(err.line, Some(2), "{body}: {err}");
    }
}

#[test]
fn codecs_have_defaults_are_checked_and_shown() {
    use crate::rendition::Codec;
    let c = parse("").unwrap();
    assert_eq!(c.twitch.supported_codecs, Codec::ALL);
    assert_eq!(c.twitch.supported_codecs_param(), "av1,h265,h264");
    assert_eq!(c.recording.codecs, Codec::ALL);
    let summary = c.summary();
    assert!(
        summary.contains("twitch codecs:   av1,h265,h264 (offered to usher"),
        "{summary}"
    );
    assert!(
        summary.contains("quality best in av1, h265, h264"),
        "{summary}"
    );
    let c =
        parse("[twitch]\nsupported_codecs = \"h264\"\n[recording]\ncodecs = [\"h264\"]\n").unwrap();
    assert_eq!(c.twitch.supported_codecs_param(), "h264");
    assert_eq!(c.recording.codecs, [Codec::H264]);
    for (text, key, line, fragment) in [
        (
            "[twitch]\nsupported_codecs = \"h264,vp9\"\n",
            "twitch.supported_codecs",
            2,
            "`vp9` is not a codec",
        ),
        (
            "[twitch]\nsupported_codecs = \"\"\n",
            "twitch.supported_codecs",
            2,
            "is not a codec",
        ),
        (
            "[twitch]\nsupported_codecs = \"h264,h264\"\n",
            "twitch.supported_codecs",
            2,
            "twice",
        ),
        (
            "[recording]\ncodecs = [\"mpeg2\"]\n",
            "recording.codecs[0]",
            2,
            "unknown variant",
        ),
        (
            "[recording]\ncodecs = []\n",
            "recording.codecs",
            2,
            "at least one",
        ),
        (
            "[twitch]\nsupported_codecs = \"h264\"\n[recording]\ncodecs = [\"av1\"]\n",
            "recording.codecs",
            4,
            "supported_codecs",
        ),
    ] {
        let err = parse(text).unwrap_err();
        assert_eq!(err.key.as_deref(), Some(key), "{text}: {err}");
        assert_eq!(err.line, Some(line), "{text}: {err}");
        assert!(err.message.contains(fragment), "{text}: {err}");
    }
}

#[test]
fn live_detection_is_resolved_checked_and_shown() {
    let creds = "[twitch]\nclient_id = \"cid\"\nclient_secret = \"s\"\n";
    let c = parse("").unwrap();
    assert_eq!(c.twitch.detection_mode(), DetectionMode::Probe);
    assert_eq!(c.twitch.safety_net_interval_secs, 120);
    assert_eq!(c.twitch.eventsub_ws_url, "wss://eventsub.wss.twitch.tv/ws");
    let c = parse(creds).unwrap();
    assert_eq!(c.twitch.detection_mode(), DetectionMode::EventSub);
    let summary = c.summary();
    assert!(
        summary.contains(
            "live detection:  EventSub (conduit over WebSocket at wss://eventsub.wss.twitch.tv/ws)"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("every 120 s as the safety net"),
        "{summary}"
    );
    let c = parse(&format!("{creds}live_detection = \"helix\"\n")).unwrap();
    assert_eq!(c.twitch.detection_mode(), DetectionMode::Helix);
    let c = parse(&format!("{creds}live_detection = \"probe\"\n")).unwrap();
    assert_eq!(c.twitch.detection_mode(), DetectionMode::Probe);
    for (text, key, fragment) in [
        (
            "[twitch]\nlive_detection = \"eventsub\"\n".to_string(),
            "twitch.live_detection",
            "client_id",
        ),
        (
            "[twitch]\nlive_detection = \"helix\"\n".to_string(),
            "twitch.live_detection",
            "client_secret",
        ),
        (
            "[twitch]\nlive_detection = \"push\"\n".to_string(),
            "twitch.live_detection",
            "unknown variant",
        ),
        (
            format!("{creds}eventsub_ws_url = \"https://example.com/ws\"\n"),
            "twitch.eventsub_ws_url",
            "ws(s) address",
        ),
        (
            format!("{creds}safety_net_interval_secs = 0\n"),
            "twitch.safety_net_interval_secs",
            "at least 1",
        ),
        (
            format!("{creds}eventsub_changes_per_sec = 0\n"),
            "twitch.eventsub_changes_per_sec",
            "between 1 and 1000",
        ),
    ] {
        let err = parse(&text).unwrap_err();
        assert_eq!(err.key.as_deref(), Some(key), "{text}: {err}");
        assert!(err.message.contains(fragment), "{text}: {err}");
    }
}

#[test]
fn http_tokens_are_checked_and_shown_without_their_values() {
    let token = |name: &str, value: &str| {
        format!("[[http.tokens]]\nname = \"{name}\"\ntoken = \"{value}\"\nrole = \"viewer\"\n")
    };
    let good = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n{}{}",
        token("ci", "0123456789abcdefXYZ"),
        token("dash-1", "fedcba9876543210")
    );
    let config = parse(&good).unwrap();
    let summary = config.summary();
    assert!(
        summary.contains("http api:        http://127.0.0.1:0"),
        "{summary}"
    );
    assert!(
        summary.contains("ci (viewer), dash-1 (viewer)"),
        "{summary}"
    );
    assert!(!summary.contains("0123456789abcdef"), "{summary}");
    assert!(
        summary.contains("metrics:         http://127.0.0.1:0/metrics (open: no metrics_token)"),
        "{summary}"
    );
    let guarded = parse("[http]\nmetrics_token = \"metrics-token-00001\"\n").unwrap();
    let summary = guarded.summary();
    assert!(
        summary.contains("http://127.0.0.1:8686/metrics (bearer metrics_token required)"),
        "{summary}"
    );
    assert!(!summary.contains("metrics-token-00001"), "{summary}");
    let disabled = parse("[http]\nlisten = \"\"\n").unwrap();
    assert!(disabled.http.address().is_none());
    assert!(disabled.summary().contains("http api:        off"));
    assert!(disabled
        .summary()
        .contains("metrics:         off (no HTTP listener)"));
    assert_eq!(
        parse("").unwrap().http.address(),
        Some("127.0.0.1:8686".parse().unwrap())
    );

    for (text, key, words) in [
        (
            "[http]\nlisten = \"localhost\"\n".to_string(),
            "http.listen",
            "address and port",
        ),
        (token("ci", "short"), "http.tokens", "too short"),
        (token("c i", "0123456789abcdef"), "http.tokens", "`name`"),
        (token("", "0123456789abcdef"), "http.tokens", "`name`"),
        (
            format!(
                "{}{}",
                token("ci", "0123456789abcdef"),
                token("ci", "0123456789abcdeg")
            ),
            "http.tokens",
            "used twice",
        ),
        (
            "[http]\nmetrics_token = \"x\"\n".to_string(),
            "http.metrics_token",
            "too short",
        ),
        (
            "[[http.tokens]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nrole = \"admin\"\n"
                .to_string(),
            "http.tokens",
            "unknown variant",
        ),
    ] {
        let err = parse(&text).unwrap_err();
        assert!(
            err.key.as_deref().is_some_and(|k| k.starts_with(key)),
            "{text}: {err}"
        );
        assert!(err.message.contains(words), "{text}: {err}");
        assert!(!err.to_string().contains("0123456789abcdef"), "{err}");
    }
}

#[test]
fn webhooks_have_defaults_are_checked_and_shown_without_their_secret() {
    let hook = "[[webhooks]]\nname = \"ops\"\nurl = \"http://10.0.0.5:9000/hook?token=abc\"\n\
                secret = \"hook-secret-value\"\n";
    let c = parse(hook).unwrap();
    let w = &c.webhooks[0];
    assert_eq!(w.outbox_key(), "webhook:ops");
    assert!(w.events.is_empty() && w.wants("RecordingFailed"));
    assert_eq!(
        (w.timeout_secs, w.retry_initial_ms, w.retry_max_secs),
        (10, 1000, 600)
    );
    let summary = c.summary();
    assert!(
        summary.contains("webhooks:        ops → http://10.0.0.5:9000 (all events)"),
        "{summary}"
    );
    assert!(!summary.contains("hook-secret-value") && !summary.contains("token=abc"));
    assert!(!format!("{c:?}").contains("hook-secret-value"));
    assert!(parse("")
        .unwrap()
        .summary()
        .contains("webhooks:        none"));

    let filtered = parse(&format!("{hook}events = [\"UploadFailed\", \"DiskLow\"]\n")).unwrap();
    assert!(filtered.webhooks[0].wants("DiskLow") && !filtered.webhooks[0].wants("ChatJoined"));
    assert!(filtered.summary().contains("(UploadFailed, DiskLow)"));

    for (extra, key, words) in [
        (
            "events = [\"UploadBroke\"]\n",
            "webhooks[0].events",
            "not an event name",
        ),
        ("timeout_secs = 0\n", "webhooks[0].timeout_secs", "1 to 300"),
        (
            "retry_initial_ms = 0\n",
            "webhooks[0].retry_initial_ms",
            "more than 0",
        ),
    ] {
        let err = parse(&format!("{hook}{extra}")).unwrap_err();
        assert_eq!(err.key.as_deref(), Some(key), "{err}");
        assert!(err.message.contains(words), "{err}");
    }
    for (text, key, words) in [
        (
            hook.replace("http://", "ftp://"),
            "webhooks[0].url",
            "http(s)",
        ),
        (
            hook.replace("\"ops\"", "\"o ps\""),
            "webhooks[0].name",
            "letters",
        ),
        (
            hook.replace("hook-secret-value", ""),
            "webhooks[0].secret",
            "empty",
        ),
        (
            format!("{hook}{hook}"),
            "webhooks[1].name",
            "another webhook",
        ),
    ] {
        let err = parse(&text).unwrap_err();
        assert_eq!(err.key.as_deref(), Some(key), "{err}");
        assert!(err.message.contains(words), "{err}");
    }
    let err = parse("[[webhooks]]\nname = \"ops\"\nurl = \"http://x\"\n").unwrap_err();
    assert!(err.message.contains("secret"), "{err}");
}

#[test]
fn email_is_off_by_default_and_checked_when_set() {
    let c = parse("").unwrap();
    assert!(!c.email.is_configured());
    assert!(c.summary().contains("e-mail:          off"));
    assert!(c.email.wants("UploadFailed") && c.email.wants("DiskLow"));
    assert_eq!(c.email.digest_minutes, 10.0);

    let base = "[email]\nfrom = \"recbot@example.org\"\nto = [\"ops@example.org\"]\n";
    let with = |extra: &str| format!("{base}{extra}");
    let c = parse(&with("smtp_url = \"smtp://mail.example.org\"\nusername = \"u\"\npassword = \"mail-pass-value\"\n")).unwrap();
    let server = c.email.server().unwrap();
    assert_eq!(
        (server.port, server.security),
        (587, SmtpSecurity::StartTls)
    );
    let summary = c.summary();
    assert!(
        summary.contains("mail.example.org:587 (STARTTLS required) to ops@example.org"),
        "{summary}"
    );
    assert!(!summary.contains("mail-pass-value") && !format!("{c:?}").contains("mail-pass-value"));
    let c = parse(&with("smtp_url = \"smtps://mail.example.org\"\n")).unwrap();
    assert_eq!(c.email.server().unwrap().security, SmtpSecurity::Tls);
    assert_eq!(c.email.server().unwrap().port, 465);
    let c = parse(&with(
        "smtp_url = \"smtp://127.0.0.1:2525\"\nallow_plaintext = true\n",
    ))
    .unwrap();
    assert_eq!(c.email.server().unwrap().security, SmtpSecurity::Plain);

    for (extra, key, words) in [
        ("smtp_url = \"http://mail.example.org\"\n", "email.smtp_url", "smtp://"),
        ("smtp_url = \"smtps://m.example.org\"\nallow_plaintext = true\n", "email.smtp_url", "contradicts"),
        (
            "smtp_url = \"smtp://m.example.org\"\nallow_plaintext = true\nusername = \"u\"\npassword = \"p\"\n",
            "email.allow_plaintext",
            "unencrypted",
        ),
        ("smtp_url = \"smtp://u:p@m.example.org\"\n", "email.smtp_url", "username/password"),
        ("smtp_url = \"smtp://m.example.org\"\nusername = \"u\"\n", "email.password", "together"),
        ("smtp_url = \"smtp://m.example.org\"\nevents = [\"Nope\"]\n", "email.events", "not an event"),
        ("smtp_url = \"smtp://m.example.org\"\ndigest_minutes = -1\n", "email.digest_minutes", "0 to 1440"),
    ] {
        let err = parse(&with(extra)).unwrap_err();
        assert_eq!(err.key.as_deref(), Some(key), "{err}");
        assert!(err.message.contains(words), "{err}");
    }
    let err =
        parse("[email]\nsmtp_url = \"smtp://m.example.org\"\nfrom = \"x\"\nto = [\"a@b.c\"]\n")
            .unwrap_err();
    assert_eq!(err.key.as_deref(), Some("email.from"), "{err}");
    let err =
        parse("[email]\nsmtp_url = \"smtp://m.example.org\"\nfrom = \"a@b.c\"\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("email.to"), "{err}");
}

#[test]
fn chat_replay_subtitles_default_to_ass_and_bad_values_are_refused() {
    use super::SubtitleFormat;
    let c = parse("").unwrap();
    assert_eq!(c.chat.subtitle_formats(), [SubtitleFormat::Ass]);
    assert_eq!(c.chat.subtitle_secs, 5.0);
    assert_eq!(c.chat.subtitle_lines, 8);
    assert!(c.summary().contains(
        "chat replay:     ass beside each part's chat file, each line 5 s, at most 8 at once"
    ));
    let c = parse("[chat]\nsubtitles = [\"ass\", \"vtt\"]\nsubtitle_secs = 2.5\n").unwrap();
    assert_eq!(
        c.chat.subtitle_formats(),
        [SubtitleFormat::Ass, SubtitleFormat::Vtt]
    );
    assert!(c.summary().contains("ass + vtt"), "{}", c.summary());
    let off = parse("[chat]\nsubtitles = []\n").unwrap();
    assert!(off.chat.subtitle_formats().is_empty());
    assert!(off
        .summary()
        .contains("chat replay:     off (subtitles = [])"));
    for (body, key, words) in [
        ("[chat]\nsubtitles = [\"srt\"]\n", "chat.subtitles", "`srt`"),
        ("[chat]\nsubtitles = [\"ASS\"]\n", "chat.subtitles", "`ASS`"),
        (
            "[chat]\nsubtitles = [\"vtt\", \"vtt\"]\n",
            "chat.subtitles",
            "twice",
        ),
        (
            "[chat]\nsubtitle_secs = 0.5\n",
            "chat.subtitle_secs",
            "1 and 60",
        ),
        (
            "[chat]\nsubtitle_secs = 61\n",
            "chat.subtitle_secs",
            "1 and 60",
        ),
        (
            "[chat]\nsubtitle_lines = 0\n",
            "chat.subtitle_lines",
            "1 and 50",
        ),
    ] {
        let err = parse(body).unwrap_err();
        assert_eq!(err.key.as_deref(), Some(key), "{body}: {err}");
        assert!(err.to_string().contains(words), "{body}: {err}");
    }
}

#[test]
fn summary_charts_are_on_by_default_and_unknown_keys_refused() {
    let on = parse("").unwrap();
    assert!(on.summary.enabled);
    assert!(on
        .summary()
        .contains("summary charts:  on (<first part>.summary.png"));
    let off = parse("[summary]\nenabled = false\n").unwrap();
    assert!(!off.summary.enabled);
    assert!(off.summary().contains("summary charts:  off"));
    let e = parse("[summary]\nenable = true\n").unwrap_err().to_string();
    assert!(e.contains("enable"), "{e}");
}

#[test]
fn platforms_default_to_the_notes_endpoints_and_schedule() {
    let c = parse("").unwrap();
    assert_eq!(c.chzzk.api_url, "https://api.chzzk.naver.com");
    assert_eq!(c.chzzk.chat_ws_url, "wss://kr-ss{n}.chat.naver.com/chat");
    assert_eq!(
        c.chzzk.poll_schedule,
        crate::config::PollStep::default_schedule()
    );
    assert!(!c.chzzk.has_login());
    assert_eq!(c.bilibili.live_api_url, "https://api.live.bilibili.com");
    let summary = c.summary();
    assert!(summary.contains("chzzk:           anonymous"), "{summary}");
    assert!(summary.contains("1m x12, 3m x12"), "{summary}");
    assert!(summary.contains("bilibili live:   anonymous"), "{summary}");
}

#[test]
fn platform_keys_are_checked_by_name() {
    let refused = |text: &str, key: &str, fragment: &str| {
        let err = parse(text).unwrap_err();
        assert_eq!(err.key.as_deref(), Some(key), "{text}: {err}");
        assert!(err.message.contains(fragment), "{text}: {err}");
    };
    refused(
        "[chzzk]\napi_url = \"ftp://x\"\n",
        "chzzk.api_url",
        "http(s)",
    );
    refused(
        "[chzzk]\nchat_ws_url = \"https://kr-ss{n}.chat.naver.com/chat\"\n",
        "chzzk.chat_ws_url",
        "ws://",
    );
    refused(
        "[chzzk]\nchat_ws_url = \"wss://kr-ss{n}{n}.x/chat\"\n",
        "chzzk.chat_ws_url",
        "once",
    );
    refused("[chzzk]\nnid_aut = \"abc\"\n", "chzzk.nid_ses", "together");
    refused(
        "[chzzk]\nnid_aut = \"abc\"\nnid_ses = \"x; admin=1\"\n",
        "chzzk.nid_ses",
        "cookie's value alone",
    );
    refused(
        "[chzzk]\npoll_schedule = []\n",
        "chzzk.poll_schedule",
        "at least one",
    );
    refused(
        "[chzzk]\npoll_schedule = [\"3h\"]\n",
        "chzzk.poll_schedule",
        "not a poll step",
    );
    refused(
        "[bilibili]\nlive_api_url = \"nope\"\n",
        "bilibili.live_api_url",
        "not a valid",
    );
    refused(
        "[bilibili]\ncookie = \"SESSDATA=a\\r\\nX-Evil: 1\"\n",
        "bilibili.cookie",
        "one line",
    );
    refused(
        "[bilibili]\ncookie = \"justtext\"\n",
        "bilibili.cookie",
        "name=value",
    );

    let c = parse(
        "[chzzk]\nnid_aut = \"aut-value\"\nnid_ses = \"ses-value\"\npoll_schedule = [\"30s x2\", \"5m\"]\n\
         chat_ws_url = \"ws://127.0.0.1:1/chat\"\n[bilibili]\ncookie = \"SESSDATA=s; buvid3=b\"\n",
    )
    .unwrap();
    assert!(c.chzzk.has_login());
    assert_eq!(c.chzzk.poll_schedule.len(), 2);
    let summary = c.summary();
    assert!(
        summary.contains("cookies set") && summary.contains("30s x2, 5m"),
        "{summary}"
    );
    assert!(
        !summary.contains("aut-value") && !summary.contains("SESSDATA"),
        "{summary}"
    );
    assert!(!format!("{c:?}").contains("ses-value"));
}

#[test]
fn a_postgres_database_url_chooses_the_backend_and_never_shows_its_password() {
    let sqlite = parse("").unwrap();
    assert_eq!(
        sqlite.storage.database(),
        Database::Sqlite(PathBuf::from("/etc/recbot/data/recbot.sqlite"))
    );
    assert!(sqlite
        .summary()
        .contains("state database:  SQLite /etc/recbot/data/recbot.sqlite"));

    let c = parse_env(
        "[storage]\nconnect_timeout_secs = 5\n",
        &[(
            "RECBOT_STORAGE__DATABASE_URL",
            "postgresql://rec:hunter2@db.example:6543/recbot?sslmode=require",
        )],
    )
    .unwrap();
    match c.storage.database() {
        Database::Postgres {
            url,
            connect_timeout,
        } => {
            assert!(url.expose().contains("hunter2"));
            assert_eq!(connect_timeout, std::time::Duration::from_secs(5));
        }
        other => panic!("{other:?}"),
    }
    let summary = c.summary();
    assert!(
        summary.contains("state database:  PostgreSQL postgres://rec@db.example:6543/recbot"),
        "{summary}"
    );
    assert!(!summary.contains("hunter2"), "{summary}");
    assert!(!format!("{c:?}").contains("hunter2"));
    assert_eq!(
        parse("[storage]\ndatabase_url = \"postgres://db/recbot\"\n")
            .unwrap()
            .storage
            .connect_timeout_secs,
        60
    );

    for (url, fragment) in [
        (
            "mysql://rec:hunter2@db/recbot",
            "postgres:// or postgresql://",
        ),
        ("sqlite:///tmp/x.db", "postgres:// or postgresql://"),
        ("not a url hunter2", "must be a URL"),
        ("postgres:///recbot", "must name the server's host"),
    ] {
        let err = parse(&format!("[storage]\ndatabase_url = \"{url}\"\n")).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("storage.database_url"), "{shown}");
        assert!(shown.contains(fragment), "{url}: {shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
    let err = parse("[storage]\nconnect_timeout_secs = 0\n").unwrap_err();
    assert!(err.to_string().contains("storage.connect_timeout_secs"));
}
