//! The chat platforms' view of the command table: the Slack app manifest (one slash command,
//! the bot scopes recbot needs) and the Discord application command (`/rec` with one
//! subcommand per command form, typed options), plus the way back from Discord's typed options
//! to command text, so that parsing and validation stay in [`crate::parse`].
//!
//! Pure: builds JSON values, no I/O.

use serde_json::{json, Map, Value};

use crate::table::{Access, ArgKind, Form, Spec, SPECS};

/// Bot scopes recbot asks for in Slack: answer slash commands, post and edit its messages
/// (events, threads, progress), post to public channels it was not invited to (the
/// `events_room`), and share files (a broadcast's summary chart in its thread).
pub const SLACK_BOT_SCOPES: &[&str] =
    &["commands", "chat:write", "chat:write.public", "files:write"];

/// Discord's `SEND_MESSAGES` permission bit: `/rec` shows for members who may write in the
/// channel. Operator rights are checked by recbot on every use; server admins can narrow who
/// sees the command in Server Settings → Integrations.
pub const DISCORD_DEFAULT_MEMBER_PERMISSIONS: &str = "2048";

/// Discord limits: descriptions and choice names at most 100 characters.
const DISCORD_TEXT_MAX: usize = 100;

/// Discord option types.
const SUB_COMMAND: u8 = 1;
const STRING: u8 = 3;
const INTEGER: u8 = 4;

/// The Slack app manifest (JSON; paste it at api.slack.com/apps → Create New App → From an
/// app manifest). `command` is the slash command (`/rec`). Socket Mode unless `request_url` is
/// given (HTTP mode: Slack posts slash commands to that address).
pub fn slack_manifest(command: &str, request_url: Option<&str>) -> Value {
    let names: Vec<&str> = SPECS.iter().map(|s| s.name).collect();
    let mut slash = json!({
        "command": command,
        "description": format!("Run recbot: {}", names.join(", ")),
        "usage_hint": "help | add <login> | list | status [login]",
        "should_escape": false,
    });
    if let Some(url) = request_url {
        slash["url"] = json!(url);
    }
    let mut long = String::from(
        "recbot watches Twitch channels, records every live stream, logs the channel's chat, \
         uploads the recordings to YouTube and reports every step back into the room. \
         Commands:\n",
    );
    for spec in SPECS {
        long.push_str(&format!(
            "• {command} {} — {}\n",
            spec.usage(),
            spec.summary
        ));
    }
    json!({
        "_metadata": { "major_version": 1, "minor_version": 1 },
        "display_information": {
            "name": "recbot",
            "description": "Records Twitch live streams, logs their chat, uploads them to YouTube",
            "long_description": truncate(&long, 4000),
            "background_color": "#2c2d30",
        },
        "features": {
            "bot_user": { "display_name": "recbot", "always_online": true },
            "slash_commands": [slash],
        },
        "oauth_config": { "scopes": { "bot": SLACK_BOT_SCOPES } },
        "settings": {
            "interactivity": { "is_enabled": false },
            "org_deploy_enabled": false,
            "socket_mode_enabled": request_url.is_none(),
            "token_rotation_enabled": false,
        },
    })
}

/// The Discord subcommand name of a form: the command's name, or `name-keyword` for keyword
/// forms (`add-hls`).
pub fn discord_subcommand(spec: &Spec, form: &Form) -> String {
    match form.keyword {
        Some(keyword) => format!("{}-{keyword}", spec.name),
        None => spec.name.to_string(),
    }
}

/// The Discord option name of a positional argument (`playlist URL` → `playlist_url`).
pub fn discord_option(arg_name: &str) -> String {
    arg_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The Discord application command: `/rec` with one subcommand per form. The body of
/// `PUT /applications/{id}/commands` (or `…/guilds/{id}/commands`) is an array of these.
pub fn discord_command(name: &str) -> Value {
    let mut subcommands = Vec::new();
    for spec in SPECS {
        for form in spec.forms {
            let summary = if spec.forms.len() > 1 {
                form.summary
            } else {
                spec.summary
            };
            let mut description = summary.to_string();
            if spec.access == Access::Operator {
                description.push_str(" (operators)");
            }
            let mut options = Vec::new();
            for arg in form.args {
                options.push(discord_arg(arg));
            }
            for opt in form.options {
                options.push(json!({
                    "type": STRING,
                    "name": opt.key,
                    "description": truncate(opt.help, DISCORD_TEXT_MAX),
                    "required": false,
                    "choices": choices(opt.choices),
                }));
            }
            subcommands.push(json!({
                "type": SUB_COMMAND,
                "name": discord_subcommand(spec, form),
                "description": truncate(&description, DISCORD_TEXT_MAX),
                "options": options,
            }));
        }
    }
    json!({
        "name": name.trim_start_matches('/'),
        "type": 1,
        "description": "Record Twitch live streams and upload them to YouTube",
        "default_member_permissions": DISCORD_DEFAULT_MEMBER_PERMISSIONS,
        "contexts": [0],
        "options": subcommands,
    })
}

/// The bulk-overwrite body: an array with the one command.
pub fn discord_commands(name: &str) -> Value {
    Value::Array(vec![discord_command(name)])
}

fn discord_arg(arg: &crate::table::Arg) -> Value {
    let mut option = Map::new();
    option.insert("name".into(), json!(discord_option(arg.name)));
    option.insert(
        "description".into(),
        json!(truncate(arg.help, DISCORD_TEXT_MAX)),
    );
    option.insert("required".into(), json!(arg.required));
    match arg.kind {
        ArgKind::Number => {
            option.insert("type".into(), json!(INTEGER));
            option.insert("min_value".into(), json!(1));
        }
        ArgKind::Choice(list) => {
            option.insert("type".into(), json!(STRING));
            option.insert("choices".into(), choices(list));
        }
        ArgKind::Topic => {
            option.insert("type".into(), json!(STRING));
            let names: Vec<&str> = SPECS.iter().map(|s| s.name).collect();
            option.insert("choices".into(), choices(&names));
        }
        ArgKind::Login
        | ArgKind::Name
        | ArgKind::SourceName
        | ArgKind::Channel(_)
        | ArgKind::Url
        | ArgKind::Code
        | ArgKind::Time => {
            option.insert("type".into(), json!(STRING));
            option.insert("max_length".into(), json!(crate::MAX_COMMAND_LEN / 2));
        }
    }
    Value::Object(option)
}

fn choices(list: &[&str]) -> Value {
    Value::Array(
        list.iter()
            .map(|c| json!({ "name": c, "value": c }))
            .collect(),
    )
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Rebuilds command text from a Discord subcommand and its options (`name`, value as text),
/// so the text goes through [`crate::parse`] like typed text. Refuses unknown subcommands or
/// options and values that are not one word (a value cannot smuggle in another argument).
pub fn discord_text(subcommand: &str, options: &[(String, String)]) -> Result<String, String> {
    let (spec, form) = SPECS
        .iter()
        .flat_map(|spec| spec.forms.iter().map(move |form| (spec, form)))
        .find(|(spec, form)| discord_subcommand(spec, form) == subcommand)
        .ok_or_else(|| {
            format!(
                "`{}` is not a recbot command",
                crate::text::excerpt(subcommand)
            )
        })?;
    for (name, value) in options {
        let known = form.args.iter().any(|a| discord_option(a.name) == *name)
            || form.options.iter().any(|o| o.key == name);
        if !known {
            return Err(format!(
                "`{}` is not an option of `{subcommand}`",
                crate::text::excerpt(name)
            ));
        }
        if value.is_empty() || value.chars().any(char::is_whitespace) {
            return Err(format!("`{name}` must be one word without spaces"));
        }
    }
    let value = |name: &str| {
        options
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let mut words = vec![spec.name.to_string()];
    if let Some(keyword) = form.keyword {
        words.push(keyword.to_string());
    }
    for arg in form.args {
        match value(&discord_option(arg.name)) {
            Some(v) => words.push(v.to_string()),
            // The parser names what is missing, with the usage.
            None => break,
        }
    }
    for opt in form.options {
        if let Some(v) = value(opt.key) {
            words.push(format!("{}={v}", opt.key));
        }
    }
    Ok(words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_manifest_lists_every_command_and_the_scopes() {
        let text = serde_json::to_string_pretty(&slack_manifest("/rec", None)).unwrap();
        let manifest: Value = serde_json::from_str(&text).unwrap();
        let slash = &manifest["features"]["slash_commands"][0];
        assert_eq!(slash["command"], "/rec");
        assert!(slash.get("url").is_none());
        let description = slash["description"].as_str().unwrap();
        let long = manifest["display_information"]["long_description"]
            .as_str()
            .unwrap();
        for spec in SPECS {
            assert!(description.contains(spec.name), "{description}");
            assert!(long.contains(&format!("/rec {}", spec.name)), "{long}");
        }
        assert!((175..=4000).contains(&long.chars().count()));
        assert_eq!(manifest["settings"]["socket_mode_enabled"], true);
        let scopes: Vec<&str> = manifest["oauth_config"]["scopes"]["bot"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(
            scopes,
            ["commands", "chat:write", "chat:write.public", "files:write"]
        );

        let http = slack_manifest("/rec", Some("https://bot.example.com/slack/commands"));
        assert_eq!(http["settings"]["socket_mode_enabled"], false);
        assert_eq!(
            http["features"]["slash_commands"][0]["url"],
            "https://bot.example.com/slack/commands"
        );
    }

    #[test]
    fn discord_command_has_a_subcommand_per_form_within_discord_limits() {
        let text = serde_json::to_string(&discord_commands("/rec")).unwrap();
        let all: Value = serde_json::from_str(&text).unwrap();
        let command = &all[0];
        assert_eq!(command["name"], "rec");
        assert_eq!(command["default_member_permissions"], "2048");
        let subs = command["options"].as_array().unwrap();
        let names: Vec<&str> = subs.iter().map(|s| s["name"].as_str().unwrap()).collect();
        for spec in SPECS {
            assert!(names.contains(&spec.name), "{names:?} lacks {}", spec.name);
        }
        assert!(names.contains(&"add-hls"));
        assert!(subs.len() <= 25);
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 32
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        };
        for sub in subs {
            assert_eq!(sub["type"], 1);
            assert!(name_ok(sub["name"].as_str().unwrap()));
            let d = sub["description"].as_str().unwrap();
            assert!(!d.is_empty() && d.chars().count() <= 100, "{d}");
            let mut seen_optional = false;
            for option in sub["options"].as_array().unwrap() {
                assert!(name_ok(option["name"].as_str().unwrap()), "{option}");
                let d = option["description"].as_str().unwrap();
                assert!(!d.is_empty() && d.chars().count() <= 100, "{d}");
                let required = option["required"].as_bool().unwrap();
                assert!(
                    !(required && seen_optional),
                    "required after optional: {sub}"
                );
                seen_optional |= !required;
                if let Some(choices) = option["choices"].as_array() {
                    assert!(choices.len() <= 25);
                }
            }
        }
        let code = subs.iter().find(|s| s["name"] == "code").unwrap();
        assert_eq!(code["options"][1]["name"], "code_or_url");
        let retry = subs.iter().find(|s| s["name"] == "retry").unwrap();
        assert_eq!(retry["options"][0]["type"], 4);
    }

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn discord_options_become_command_text_that_parses() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("list", &[], "list"),
            (
                "add",
                &[("upload", "off"), ("login", "Foo"), ("quality", "720p60")],
                "add Foo quality=720p60 upload=off",
            ),
            (
                "add-hls",
                &[("name", "studio"), ("playlist_url", "https://e.com/a.m3u8")],
                "add hls https://e.com/a.m3u8 studio",
            ),
            (
                "code",
                &[("service", "youtube"), ("code_or_url", "4/0AbCdEf")],
                "code youtube 4/0AbCdEf",
            ),
            ("retry", &[("upload_id", "12")], "retry 12"),
            ("help", &[("command", "add")], "help add"),
        ];
        for (sub, options, want) in cases {
            let text = discord_text(sub, &opts(options)).unwrap();
            assert_eq!(&text, want);
            crate::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }

    #[test]
    fn discord_options_cannot_smuggle_words() {
        assert!(discord_text("add", &opts(&[("login", "foo quality=best")]))
            .unwrap_err()
            .contains("one word"));
        assert!(discord_text("add", &opts(&[("sneaky", "x")]))
            .unwrap_err()
            .contains("not an option"));
        assert!(discord_text("rm", &[])
            .unwrap_err()
            .contains("not a recbot"));
        // A missing required option is left to the parser, which names it with the usage.
        let text = discord_text("remove", &[]).unwrap();
        assert!(crate::parse(&text).unwrap_err().message.contains("missing"));
    }
}
