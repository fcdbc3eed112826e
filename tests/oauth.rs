//! Connecting YouTube and Twitch from chat: consent links, pasted codes (plain, percent-encoded,
//! whole redirected addresses, garbage, nothing pending, expired), the Twitch device flow, and
//! keeping the Twitch token valid. Google's and Twitch's endpoints are local fakes; every log
//! line is captured and searched for secrets.

mod support;

use std::time::Duration;

use recbot::event::EventKind;
use support::twitch::{TwitchFake, DEVICE_CODE, LOGIN, USER_CODE};
use support::*;

/// The link on the line of its own in a reply.
fn link(text: &str) -> String {
    text.lines()
        .find(|l| l.starts_with("http"))
        .unwrap_or_else(|| panic!("no link in {text}"))
        .to_string()
}

fn query(url: &str, key: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn youtube_codes_pasted_in_chat() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let google = GoogleFake::start("4/0AfirstCode", "1//yt-refresh-secret").await;
    let config = config(
        dir.path(),
        &format!(
            "token_url = {:?}\nauth_url = {:?}\npending_auth_minutes = 0.05",
            google.token_url(),
            google.auth_url()
        ),
        "",
    );
    let mut bot = Bot::start(config.clone()).await;

    // Nothing pending.
    let reply = bot.run("code youtube 4/0AfirstCode").await;
    assert!(
        !reply.ok && reply.text.contains("No youtube authorization is waiting"),
        "{reply:?}"
    );
    assert!(google.state().forms.is_empty());

    // The consent link goes to the operator privately.
    let reply = bot.run("auth youtube").await;
    assert!(reply.ok && reply.private, "{reply:?}");
    let url = link(&reply.text);
    assert!(url.starts_with(&google.auth_url()), "{url}");
    assert!(url.contains(&format!("client_id={CLIENT_ID}")), "{url}");
    assert!(url.contains("redirect_uri=http://127.0.0.1:8085/"), "{url}");
    assert!(
        url.contains("scope=https://www.googleapis.com/auth/youtube.upload"),
        "{url}"
    );
    assert!(
        !url.contains("oob") && !url.contains(CLIENT_SECRET),
        "{url}"
    );
    assert!(reply.text.contains("within 0.1 minutes") || reply.text.contains("`code youtube"));

    // A wrong code: Google refuses, nothing is stored, the authorization stays open.
    let reply = bot.run("code youtube 4/0AwrongCode").await;
    assert!(
        !reply.ok
            && reply
                .text
                .contains("Google refused the code (invalid_grant"),
        "{reply:?}"
    );
    assert!(!reply.text.contains("4/0AwrongCode"));
    assert!(open_store(&config)
        .await
        .token("youtube")
        .await
        .unwrap()
        .is_none());

    // A percent-encoded code works.
    let reply = bot.run("code youtube 4%2F0AfirstCode").await;
    assert!(
        reply.ok && reply.text.contains("YouTube is connected"),
        "{reply:?}"
    );
    let completed = bot.wait_for("AuthCompleted", is("AuthCompleted")).await;
    assert!(
        matches!(completed.kind, EventKind::AuthCompleted { ref service, .. } if service == "youtube")
    );
    let forms = google.state().forms.clone();
    let exchange = forms.last().unwrap();
    assert!(exchange.contains(&("code".into(), "4/0AfirstCode".into())));
    assert!(exchange.contains(&("grant_type".into(), "authorization_code".into())));
    assert!(exchange.contains(&("redirect_uri".into(), "http://127.0.0.1:8085/".into())));
    let token = stored_token(&config, "youtube").await;
    assert_eq!(token.access_token.expose(), "ya29.fresh1");
    assert_eq!(
        token.refresh_token.unwrap().expose(),
        "1//yt-refresh-secret"
    );

    // The authorization is used up: the same paste again finds nothing pending.
    let reply = bot.run("code youtube 4%2F0AfirstCode").await;
    assert!(
        !reply.ok && reply.text.contains("No youtube authorization"),
        "{reply:?}"
    );

    // A plain code, then a whole redirected address.
    for (code, paste) in [
        ("4/0AplainCode", "4/0AplainCode".to_string()),
        (
            "4/0AfromAddress",
            "http://127.0.0.1:8085/?code=4%2F0AfromAddress&scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fyoutube.upload".to_string(),
        ),
    ] {
        google.state().code = code.into();
        assert!(bot.run("auth youtube").await.ok);
        let reply = bot.run(&format!("code youtube {paste}")).await;
        assert!(reply.ok, "{paste}: {reply:?}");
        bot.wait_for("AuthCompleted", is("AuthCompleted")).await;
    }

    // Garbage never reaches the core.
    for garbage in [
        "code youtube not-a-code!!",
        "code youtube http://127.0.0.1:8085/?scope=x",
    ] {
        let reply = bot.run(garbage).await;
        assert!(!reply.ok, "{garbage}: {reply:?}");
    }

    // Expired: the link was not used in time.
    let before = google.state().forms.len();
    google.state().code = "4/0AlateCode".into();
    assert!(bot.run("auth youtube").await.ok);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let reply = bot.run("code youtube 4/0AlateCode").await;
    assert!(!reply.ok && reply.text.contains("has expired"), "{reply:?}");
    assert_eq!(
        google.state().forms.len(),
        before,
        "no exchange after expiry"
    );

    let status = bot.run("status").await.text;
    bot.stop().await;
    for secret in ["ya29", "1//yt-refresh", "4/0A", CLIENT_SECRET] {
        assert!(!status.contains(secret), "{status}");
    }
    assert_not_logged(&[
        "4/0AfirstCode",
        "4/0AwrongCode",
        "4/0AplainCode",
        "4/0AfromAddress",
        "ya29.fresh",
        "1//yt-refresh-secret",
        CLIENT_SECRET,
    ]);
}

#[tokio::test]
async fn twitch_authorization_code_flow_checks_state() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let twitch = TwitchFake::start("twitchcode0123456789", "twitch-refresh-secret").await;
    let config = config(dir.path(), "", &twitch.config(""));
    let mut bot = Bot::start(config.clone()).await;
    let reply = bot.run("auth twitch").await;
    assert!(reply.ok && reply.private, "{reply:?}");
    let url = link(&reply.text);
    assert!(
        url.starts_with(&format!("{}/authorize?", twitch.id_url())),
        "{url}"
    );
    assert_eq!(query(&url, "client_id").as_deref(), Some(TWITCH_CLIENT_ID));
    assert_eq!(
        query(&url, "redirect_uri").as_deref(),
        Some("http://localhost:3000")
    );
    assert_eq!(query(&url, "scope").as_deref(), Some("chat:read"));
    assert_eq!(query(&url, "response_type").as_deref(), Some("code"));
    let state = query(&url, "state").unwrap();
    assert!(!url.contains(TWITCH_CLIENT_SECRET));

    // An address from another authorization: refused before anything is sent.
    let reply = bot
        .run("code twitch http://localhost:3000/?code=twitchcode0123456789&scope=chat%3Aread&state=0000")
        .await;
    assert!(!reply.ok && reply.text.contains("state"), "{reply:?}");
    assert!(twitch.state().forms.is_empty());
    // An address without a `state` cannot be told from an old or foreign one: refused too.
    for paste in [
        "http://localhost:3000/?code=twitchcode0123456789&scope=chat%3Aread",
        "code=twitchcode0123456789&scope=chat%3Aread",
    ] {
        let reply = bot.run(&format!("code twitch {paste}")).await;
        assert!(
            !reply.ok && reply.text.contains("no `state`"),
            "{paste}: {reply:?}"
        );
    }
    assert!(twitch.state().forms.is_empty());

    // A wrong code: Twitch refuses, nothing stored.
    let reply = bot
        .run(&format!("code twitch http://localhost:3000/?code=wrongcode12345&scope=chat%3Aread&state={state}"))
        .await;
    assert!(
        !reply.ok && reply.text.contains("Invalid authorization code"),
        "{reply:?}"
    );
    assert!(open_store(&config)
        .await
        .token("twitch")
        .await
        .unwrap()
        .is_none());

    let reply = bot
        .run(&format!("code twitch http://localhost:3000/?code=twitchcode0123456789&scope=chat%3Aread&state={state}"))
        .await;
    assert!(
        reply.ok && reply.text.contains(&format!("connected as {LOGIN}")),
        "{reply:?}"
    );
    let completed = bot.wait_for("AuthCompleted", is("AuthCompleted")).await;
    assert!(
        matches!(completed.kind, EventKind::AuthCompleted { ref account, .. } if account.as_deref() == Some(LOGIN))
    );
    let (path, exchange) = twitch.state().forms.last().unwrap().clone();
    assert_eq!(path, "/oauth2/token");
    assert!(exchange.contains(&("redirect_uri".into(), "http://localhost:3000".into())));
    assert!(exchange.contains(&("grant_type".into(), "authorization_code".into())));
    let token = stored_token(&config, "twitch").await;
    assert_eq!(token.access_token.expose(), "twitch-access-1");
    assert_eq!(token.scopes, "chat:read");
    // The token keeper validates the new token too.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while twitch.state().validations < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the keeper did not validate"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While a link is pending, a bare code (no `state` to check) is refused, and why is said.
    twitch.state().code = "barecode0123456789".into();
    assert!(bot.run("auth twitch").await.ok);
    let exchanges = twitch.state().forms.len();
    let reply = bot.run("code twitch barecode0123456789").await;
    assert!(
        !reply.ok && reply.text.contains("cannot be checked against the pending"),
        "{reply:?}"
    );
    assert_eq!(
        twitch.state().forms.len(),
        exchanges,
        "nothing sent to Twitch"
    );
    bot.stop().await;
    // With no link pending (e.g. it was made before a restart) there is nothing to match: the
    // operator's bare code is taken, and the reply says it was not checked.
    let mut bot = Bot::start(config.clone()).await;
    let reply = bot.run("code twitch barecode0123456789").await;
    assert!(reply.ok && reply.text.contains("connected as"), "{reply:?}");
    assert!(reply.text.contains("could not be checked"), "{reply:?}");
    bot.wait_for("AuthCompleted", is("AuthCompleted")).await;
    bot.stop().await;
    assert_not_logged(&[
        "barecode0123456789",
        "twitchcode0123456789",
        "wrongcode12345",
        "twitch-access-1",
        "twitch-refresh-secret",
        TWITCH_CLIENT_SECRET,
    ]);
}

#[tokio::test]
async fn twitch_device_flow_needs_no_paste() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let twitch = TwitchFake::start("unused-code-123", "twitch-device-refresh").await;
    twitch.state().pending_polls = 2;
    let config = config(dir.path(), "", &twitch.config(""));
    let mut bot = Bot::start(config.clone()).await;
    let reply = bot.run("auth twitch device").await;
    assert!(reply.ok && reply.private, "{reply:?}");
    assert!(reply.text.contains(USER_CODE), "{reply:?}");
    assert!(
        reply.text.contains("https://www.twitch.tv/activate"),
        "{reply:?}"
    );
    assert!(!reply.text.contains(DEVICE_CODE));
    let reply = bot.run("code twitch abcdefgh1234").await;
    assert!(!reply.ok && reply.text.contains("device flow"), "{reply:?}");
    let completed = bot.wait_for("AuthCompleted", is("AuthCompleted")).await;
    assert!(
        matches!(completed.kind, EventKind::AuthCompleted { ref service, ref account } if service == "twitch" && account.as_deref() == Some(LOGIN))
    );
    let forms = twitch.state().forms.clone();
    assert_eq!(forms[0].0, "/oauth2/device");
    assert!(forms[0].1.contains(&("scopes".into(), "chat:read".into())));
    let polls = forms.iter().filter(|(p, _)| p == "/oauth2/token").count();
    assert_eq!(polls, 3, "two pending answers, then the token");
    let token = stored_token(&config, "twitch").await;
    assert_eq!(
        token.refresh_token.unwrap().expose(),
        "twitch-device-refresh"
    );
    bot.stop().await;
    assert_not_logged(&[DEVICE_CODE, "twitch-device-refresh", "twitch-access-"]);
}

#[tokio::test]
async fn the_twitch_token_is_validated_at_start_up_and_periodically() {
    let dir = tempfile::tempdir().unwrap();
    let twitch = TwitchFake::start("unused-code-123", "twitch-refresh").await;
    twitch.state().valid.push("twitch-stored-token".into());
    let config = config(dir.path(), "", &twitch.config("validate_interval_secs = 1"));
    store_token(
        dir.path(),
        "twitch",
        "twitch-stored-token",
        "twitch-refresh",
        3600,
    )
    .await;
    let started = tokio::time::Instant::now();
    let bot = Bot::start(config.clone()).await;
    let validated = |n: u32| {
        let twitch = &twitch;
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while twitch.state().validations < n {
                assert!(tokio::time::Instant::now() < deadline, "no validation {n}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::Instant::now()
        }
    };
    let first = validated(1).await;
    assert!(
        first - started < Duration::from_secs(1),
        "validated at start-up"
    );
    let second = validated(2).await;
    assert!(
        second - first >= Duration::from_millis(900),
        "then after the interval"
    );
    assert_eq!(twitch.state().issued, 0, "a valid token is not refreshed");
    bot.stop().await;
}

#[tokio::test]
async fn a_twitch_token_close_to_expiry_is_refreshed() {
    let dir = tempfile::tempdir().unwrap();
    let twitch = TwitchFake::start("unused-code-123", "twitch-refresh").await;
    let config = config(dir.path(), "", &twitch.config(""));
    // Expires in 2 minutes: inside the 5-minute margin.
    store_token(
        dir.path(),
        "twitch",
        "twitch-old-token",
        "twitch-refresh",
        120,
    )
    .await;
    let bot = Bot::start(config.clone()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while twitch.state().validations < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not refreshed and validated"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bot.stop().await;
    let forms = twitch.state().forms.clone();
    assert_eq!(forms.len(), 1);
    assert!(forms[0]
        .1
        .contains(&("grant_type".into(), "refresh_token".into())));
    let token = stored_token(&config, "twitch").await;
    assert_eq!(token.access_token.expose(), "twitch-access-1");
    assert!(token.expires_at.unwrap() > chrono::Utc::now() + chrono::Duration::hours(3));
}

#[tokio::test]
async fn a_refused_twitch_refresh_asks_for_a_new_authorization() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let twitch = TwitchFake::start("newcode123456", "twitch-refresh").await;
    twitch.state().revoked = true;
    let config = config(dir.path(), "", &twitch.config(""));
    // Twitch no longer accepts the token (not in `valid`) and refuses its refresh token.
    store_token(
        dir.path(),
        "twitch",
        "twitch-dead-token",
        "twitch-dead-refresh",
        3600,
    )
    .await;
    let mut bot = Bot::start(config.clone()).await;
    let notice = bot.wait_for("AuthRequired", is("AuthRequired")).await;
    let EventKind::AuthRequired {
        service,
        reason,
        url,
    } = &notice.kind
    else {
        unreachable!()
    };
    assert_eq!(service, "twitch");
    assert!(reason.contains("Invalid refresh token"), "{reason}");
    // The events room may be public: no consent link there, only who should do what.
    assert_eq!(url, &None);
    let line = recbot::frontend::render::event_line(&notice);
    assert!(
        line.contains("an operator should run `auth twitch`") && !line.contains("http"),
        "{line}"
    );
    // The operator gets the link privately.
    let reply = bot.run("auth twitch").await;
    assert!(reply.ok && reply.private, "{reply:?}");
    let url = link(&reply.text);
    let state = query(&url, "state").unwrap();
    // The link works: the operator pastes where it led.
    twitch.state().revoked = false;
    let reply = bot
        .run(&format!(
            "code twitch http://localhost:3000/?code=newcode123456&scope=chat%3Aread&state={state}"
        ))
        .await;
    assert!(reply.ok, "{reply:?}");
    bot.wait_for("AuthCompleted", is("AuthCompleted")).await;
    bot.stop().await;
    assert_not_logged(&["twitch-dead-token", "twitch-dead-refresh", "newcode123456"]);
}
