//! `recbot manifest slack|discord`: the printed JSON parses and lists every command.

use std::process::Command;

use recbot_commands::SPECS;
use serde_json::Value;

fn manifest(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_recbot"))
        .arg("manifest")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the manifest is JSON")
}

#[test]
fn slack_manifest_parses_and_lists_every_command() {
    let m = manifest(&["slack"]);
    assert_eq!(m["settings"]["socket_mode_enabled"], true);
    let slash = &m["features"]["slash_commands"][0];
    assert_eq!(slash["command"], "/rec");
    for spec in SPECS {
        assert!(slash["description"].as_str().unwrap().contains(spec.name));
    }
    let scopes = m["oauth_config"]["scopes"]["bot"].to_string();
    assert!(
        scopes.contains("commands") && scopes.contains("chat:write"),
        "{scopes}"
    );

    let m = manifest(&[
        "slack",
        "--command",
        "/rb",
        "--request-url",
        "https://x.example/slack/commands",
    ]);
    assert_eq!(m["features"]["slash_commands"][0]["command"], "/rb");
    assert_eq!(m["settings"]["socket_mode_enabled"], false);
}

#[test]
fn discord_manifest_parses_and_lists_every_command() {
    let m = manifest(&["discord"]);
    let command = &m[0];
    assert_eq!(command["name"], "rec");
    let subs: Vec<&str> = command["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for spec in SPECS {
        assert!(subs.contains(&spec.name), "{subs:?}");
    }
}
