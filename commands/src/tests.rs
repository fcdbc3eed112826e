use super::*;

fn login(s: &str) -> Login {
    Login::parse(s).unwrap()
}

fn add(name: &str, options: AddOptions) -> Command {
    Command::Add(AddRequest {
        name: login(name),
        source: Source::Twitch,
        options,
    })
}

/// `check(input, Ok(command))` or `check(input, Err(fragment of the message))`.
fn check(input: &str, expected: Result<Command, &str>) {
    match (parse(input), expected) {
        (Ok(got), Ok(want)) => assert_eq!(got, want, "input {input:?}"),
        (Err(err), Err(fragment)) => assert!(
            err.message.contains(fragment),
            "input {input:?}: error {:?} should contain {fragment:?}",
            err.message
        ),
        (got, want) => panic!("input {input:?}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn well_formed_commands() {
    let none = AddOptions::default();
    check("add foo", Ok(add("foo", none.clone())));
    check("ADD Foo", Ok(add("foo", none.clone())));
    check("  add   @foo  ", Ok(add("foo", none.clone())));
    check(
        "add https://www.twitch.tv/foo?x=y",
        Ok(add("foo", none.clone())),
    );
    check("add twitch.tv/foo", Ok(add("foo", none.clone())));
    check(
        "add foo quality=720p60 upload=off chat=on",
        Ok(add(
            "foo",
            AddOptions {
                quality: Some(Quality::parse("720p60").unwrap()),
                upload: Some(false),
                chat: Some(true),
                post: None,
            },
        )),
    );
    check(
        "add foo post=Remux",
        Ok(add(
            "foo",
            AddOptions {
                post: Some(PostMode::Remux),
                ..Default::default()
            },
        )),
    );
    check(
        "add foo QUALITY=Audio_Only",
        Ok(add(
            "foo",
            AddOptions {
                quality: Some(Quality::parse("audio_only").unwrap()),
                ..Default::default()
            },
        )),
    );
    check(
        "add hls https://example.com/live/index.m3u8?token=a=b studio",
        Ok(Command::Add(AddRequest {
            name: login("studio"),
            source: Source::Hls {
                url: "https://example.com/live/index.m3u8?token=a=b".into(),
            },
            options: AddOptions::default(),
        })),
    );
    check("remove foo", Ok(Command::Remove { name: login("foo") }));
    check("list", Ok(Command::List));
    check("status", Ok(Command::Status { name: None }));
    check(
        "status @Foo",
        Ok(Command::Status {
            name: Some(login("foo")),
        }),
    );
    check(
        "auth youtube",
        Ok(Command::Auth {
            service: Service::Youtube,
            device: false,
        }),
    );
    check(
        "auth twitch device",
        Ok(Command::Auth {
            service: Service::Twitch,
            device: true,
        }),
    );
    for text in ["auth twitch-viewer", "auth twitch-viewer device"] {
        check(
            text,
            Ok(Command::Auth {
                service: Service::TwitchViewer,
                device: true,
            }),
        );
    }
    check("uploads", Ok(Command::Uploads));
    check("retry 12", Ok(Command::Retry { id: 12 }));
    check(
        "cut foo 00:10:00 12:30.5",
        Ok(Command::Cut {
            name: Login::parse("foo").unwrap(),
            from_ms: 600_000,
            to_ms: 750_500,
            session: None,
        }),
    );
    check(
        "cut foo 1:00:00 1:00:01 42",
        Ok(Command::Cut {
            name: Login::parse("foo").unwrap(),
            from_ms: 3_600_000,
            to_ms: 3_601_000,
            session: Some(42),
        }),
    );
    check("quota", Ok(Command::Quota));
    check("disk", Ok(Command::Disk));
    check("help", Ok(Command::Help { topic: None }));
    check("help ADD", Ok(Command::Help { topic: Some("add") }));
    match parse("code youtube http://127.0.0.1:8085/?code=4%2F0AbCdEf&scope=x").unwrap() {
        Command::Code { service, code } => {
            assert_eq!(service, Service::Youtube);
            assert_eq!(code.expose(), "4/0AbCdEf");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_viewer_token_is_letters_and_digits_never_an_address() {
    match parse("code twitch-viewer 0123456789abcdefghijklmnopqrst").unwrap() {
        Command::Code { service, code } => {
            assert_eq!(service, Service::TwitchViewer);
            assert_eq!(code.expose(), "0123456789abcdefghijklmnopqrst");
        }
        other => panic!("{other:?}"),
    }
    for bad in [
        "code twitch-viewer http://localhost:3000/?code=abcdefghij0123456789&state=x",
        "code twitch-viewer short12345",
        "code twitch-viewer 0123456789abcdefghij/klmnopqrst",
        "code twitch-viewer code=0123456789abcdefghijklmnopqrst",
    ] {
        let error = parse(bad).unwrap_err();
        assert!(error.to_string().contains("auth-token"), "{bad}: {error}");
    }
    assert_eq!(
        parse("add foo quality=1440p60").map(|c| match c {
            Command::Add(a) => a.options.quality.map(|q| q.as_str()),
            _ => None,
        }),
        Ok(Some("1440p60"))
    );
}

#[test]
fn hostile_and_malformed_input_is_refused_with_a_reason() {
    let ten_thousand = "a".repeat(10_000);
    let long_login = format!("add {}", "a".repeat(500));
    for (input, fragment) in [
        ("", "empty"),
        ("     ", "empty"),
        ("\t", "empty"),
        ("add", "`login` is missing"),
        ("add ../../etc", "found `.`"),
        ("add foo/bar", "found `/`"),
        ("add ..", "found `.`"),
        ("add /etc/passwd", "found `/`"),
        ("add twitch.tv/../../etc", "not a Twitch channel address"),
        (ten_thousand.as_str(), "too long"),
        (long_login.as_str(), "too long"),
        ("add foo\u{0}", "U+0000"),
        ("add \u{7}foo", "U+0007"),
        ("add foo\nremove bar", "U+000A"),
        ("add \u{202e}oof", "U+202E"),
        ("add f\u{200b}oo", "U+200B"),
        ("add \u{feff}foo", "U+FEFF"),
        ("add fоо", "U+043E"), // Cyrillic o: looks like "foo"
        ("add foo;rm -rf /", "found `;`"),
        ("add $(id)", "found `$`"),
        ("add `id`", "found"),
        ("add foo|bar", "found `|`"),
        ("add foo&&reboot", "found `&`"),
        ("add 'foo'", "found `'`"),
        ("add foo bar", "unexpected `bar`"),
        ("add foo quality=4k", "not a valid quality"),
        ("add foo volume=11", "not an option of `add`"),
        ("add foo upload=on upload=off", "given twice"),
        ("add foo post=mp4", "not a valid"),
        ("add foo post=remux post=none", "given twice"),
        ("add hls ftp://x.example/a.m3u8 x", "not an http(s) address"),
        ("add hls not-a-url x", "not a valid address"),
        ("add hls https://x.example/a.m3u8", "`name` is missing"),
        ("add hls https://x.example/a.m3u8 ../x", "found `.`"),
        ("add https://evil.example/foo", "not a Twitch address"),
        ("remove", "missing"),
        ("remove ../x", "found `.`"),
        ("status a b", "unexpected `b`"),
        ("list everything", "unexpected `everything`"),
        ("auth", "`service` is missing"),
        ("auth facebook", "not one of youtube, twitch"),
        ("auth youtube device", "only offered for Twitch"),
        ("code youtube", "missing"),
        (
            "code youtube hello",
            "does not look like an authorization code",
        ),
        (
            "code twitch http://localhost/?error=access_denied",
            "access_denied",
        ),
        ("code mastodon abcdefgh123", "not one of"),
        ("retry", "missing"),
        ("cut foo 00:10:00", "missing"),
        ("cut foo 00:10:00 00:05:00", "must come before"),
        ("cut foo 00:10:00 00:10:00", "must come before"),
        ("cut foo 00:61:00 01:00:00", "not a time"),
        ("cut foo 1e3 2e3", "not a time"),
        ("cut foo 0:00:01 0:00:02 -3", "not an id"),
        ("cut ../x 0:00:01 0:00:02", "login"),
        ("retry -1", "not an id"),
        ("retry 0", "not an id"),
        ("retry 1e3", "not an id"),
        ("retry 99999999999999999999999", "not an id"),
        ("help frobnicate", "unknown command"),
        ("ad foo", "did you mean `add`"),
        ("lsit", "did you mean `list`"),
        ("remvoe foo", "did you mean `remove`"),
        ("upload", "did you mean `uploads`"),
        ("xyzzy", "unknown command `xyzzy`"),
        ("rm -rf /", "unknown command"),
    ] {
        check(input, Err(fragment));
    }
}

const CHZZK_ID: &str = "c68b8ef525fb3d2fa146344d84991753";

#[test]
fn other_platforms_are_added_by_address_or_id() {
    let chzzk = |options: AddOptions| {
        Command::Add(AddRequest {
            name: Login::from_stored(&format!("chzzk:{CHZZK_ID}")).unwrap(),
            source: Source::Chzzk,
            options,
        })
    };
    let none = AddOptions::default();
    check(&format!("add chzzk {CHZZK_ID}"), Ok(chzzk(none.clone())));
    check(
        &format!("add https://chzzk.naver.com/live/{CHZZK_ID}"),
        Ok(chzzk(none.clone())),
    );
    check(
        &format!("add chzzk https://chzzk.naver.com/{CHZZK_ID} upload=off"),
        Ok(chzzk(AddOptions {
            upload: Some(false),
            ..none.clone()
        })),
    );
    check(
        "add bilibili 23058",
        Ok(Command::Add(AddRequest {
            name: Login::from_stored("bilibili:23058").unwrap(),
            source: Source::Bilibili,
            options: none.clone(),
        })),
    );
    check(
        &format!("remove chzzk {CHZZK_ID}"),
        Ok(Command::Remove {
            name: Login::from_stored(&format!("chzzk:{CHZZK_ID}")).unwrap(),
        }),
    );
    check(
        "status chzzk",
        Ok(Command::Status {
            name: Some(login("chzzk")),
        }),
    );
    check(
        &format!("remove chzzk:{CHZZK_ID}"),
        Ok(Command::Remove {
            name: Login::from_stored(&format!("chzzk:{CHZZK_ID}")).unwrap(),
        }),
    );
    for (input, fragment) in [
        ("add chzzk abc", "not a Chzzk channel id"),
        (
            &format!("add chzzk {CHZZK_ID} chat=on") as &str,
            "not an option",
        ),
        (
            "add chzzk https://live.bilibili.com/3",
            "not a chzzk channel",
        ),
        ("add bilibili 0", "0 is not"),
        (&format!("add {CHZZK_ID}"), "write `chzzk"),
        ("add chzzk:../x", "found `:`"),
        (
            &format!("add hls https://x.example/a.m3u8 chzzk:{CHZZK_ID}"),
            "found `:`",
        ),
    ] {
        check(input, Err(fragment));
    }
    let cmd = parse(&format!("add chzzk {CHZZK_ID} upload=off")).unwrap();
    assert_eq!(cmd.to_string(), format!("add chzzk {CHZZK_ID} upload=off"));
    assert_eq!(parse(&cmd.to_string()).unwrap(), cmd);
}

#[test]
fn errors_carry_the_usage_and_do_not_echo_floods() {
    let err = parse("add foo quality=4k").unwrap_err();
    assert_eq!(
        err.usage.as_deref(),
        Some("add <login> [quality=best|source|2160p60|2160p|1440p60|1440p|1080p60|1080p|720p60|720p|480p|360p|160p|audio_only] [upload=on|off] [chat=on|off] [post=none|remux|transcode]")
    );
    assert!(err.to_string().contains("Usage: add <login>"));
    let err = parse(&format!("add {}", "x".repeat(3000))).unwrap_err();
    assert!(err.to_string().len() < 400, "{}", err);
    let err = parse("frobnicate").unwrap_err();
    assert!(err.to_string().contains("Type `help`"));
}

#[test]
fn codes_are_never_displayed() {
    let cmd = parse("code twitch abcdefgh12345secret").unwrap();
    assert_eq!(cmd.to_string(), "code twitch [redacted]");
    assert!(!format!("{cmd:?}").contains("secret"));
}

#[test]
fn display_round_trips() {
    for text in [
        "add foo quality=720p60 upload=off chat=on",
        "add hls https://example.com/a.m3u8 studio quality=best",
        "remove foo",
        "status foo",
        "auth twitch device",
        "retry 3",
        "cut foo 0:10:00 0:12:30.250 7",
        "help add",
        "list",
    ] {
        let cmd = parse(text).unwrap();
        assert_eq!(cmd.to_string(), text);
        assert_eq!(parse(&cmd.to_string()).unwrap(), cmd);
    }
}

#[test]
fn strip_invocation_handles_prefixed_and_plain_text() {
    assert_eq!(strip_invocation("/rec add foo", "/rec"), " add foo");
    assert_eq!(strip_invocation("add foo", "/rec"), "add foo");
    assert_eq!(
        strip_invocation("/record add foo", "/rec"),
        "/record add foo"
    );
    assert_eq!(strip_invocation("/rec", "/rec"), "");
}

#[test]
fn access_and_privacy_follow_the_table() {
    let operator_only = ["add", "remove", "auth", "code", "retry", "cut"];
    for spec in SPECS {
        let expected = if operator_only.contains(&spec.name) {
            Access::Operator
        } else {
            Access::Anyone
        };
        assert_eq!(spec.access, expected, "{}", spec.name);
        assert_eq!(spec.private_reply, matches!(spec.name, "auth" | "code"));
    }
}

#[test]
fn every_example_in_the_table_parses() {
    for spec in SPECS {
        for example in spec.examples {
            if example.contains('…') {
                continue;
            }
            let cmd = parse(example).unwrap_or_else(|e| panic!("{example}: {e}"));
            assert_eq!(cmd.name(), spec.name);
        }
    }
}

#[test]
fn help_covers_every_command() {
    let all = help(None);
    for spec in SPECS {
        assert!(all.contains(spec.name), "{}", spec.name);
        let one = help(Some(spec.name));
        assert!(one.contains(&spec.usage()), "{one}");
    }
    assert!(help(Some("add")).contains("quality="));
    let table = markdown_table();
    // A row per form: `add` has four (Twitch, hls, chzzk, bilibili).
    assert_eq!(table.lines().count(), 2 + 15, "{table}");
}

#[test]
fn quality_dimensions() {
    let q = |s| Quality::parse(s).unwrap().dimensions();
    assert_eq!(q("720p60"), Some((720, 60)));
    assert_eq!(q("480p"), Some((480, 30)));
    assert_eq!(q("best"), None);
    assert_eq!(q("audio_only"), None);
    assert!(Quality::parse("SOURCE").unwrap().is_best());
}
