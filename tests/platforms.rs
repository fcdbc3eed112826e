//! Chzzk and Bilibili Live protocol modules against their local fakes (issue 14 groundwork):
//! what each API call sends, and what recbot makes of each state the fake can be flipped to.

mod support;

use recbot::chzzk::api::{ChzzkApi, ChzzkError};
use recbot::secret::Secret;
use recbot_commands::ChzzkId;
use support::chzzk::{ChzzkFake, Live, NID_AUT, NID_SES};

const CHANNEL: &str = "c68b8ef525fb3d2fa146344d84991753";

fn chzzk(fake: &ChzzkFake, login: bool) -> ChzzkApi {
    let (aut, ses) = (Secret::new(NID_AUT), Secret::new(NID_SES));
    ChzzkApi::new(
        reqwest::Client::new(),
        &fake.api_url(),
        &fake.chat_api_url(),
        login.then_some((&aut, &ses)),
    )
}

#[tokio::test]
async fn chzzk_live_detail_follows_the_channel_state() {
    let fake = ChzzkFake::start().await;
    fake.add(CHANNEL, "Streamer");
    let api = chzzk(&fake, false);
    let id = ChzzkId::parse(CHANNEL).unwrap();

    let (offline, _) = api.live_detail(&id).await.unwrap();
    assert!(!offline.is_live());
    assert_eq!(offline.media, None);
    assert_eq!(offline.title, "previous broadcast");

    let master = format!(
        "{}/hls/key_hls_playlist.m3u8?hdnts=st=1~exp=99999~hmac=0",
        fake.api_url()
    );
    fake.set(
        CHANNEL,
        Live::Open {
            master: master.clone(),
        },
    );
    let (live, playback) = api.live_detail(&id).await.unwrap();
    assert!(live.is_live());
    assert_eq!(
        live.media.as_ref().map(|u| u.as_str()),
        Some(master.as_str())
    );
    assert_eq!(live.live_id, Some(101), "a new broadcast, a new live id");
    assert_eq!(live.channel_name.as_deref(), Some("Streamer"));
    assert_eq!(live.playable(&playback).unwrap(), live.media);

    fake.set(CHANNEL, Live::NoContent);
    assert!(matches!(
        api.live_detail(&id).await,
        Err(ChzzkError::NoContent)
    ));

    let unknown = ChzzkId::parse(&"0".repeat(32)).unwrap();
    assert!(matches!(
        api.live_detail(&unknown).await,
        Err(ChzzkError::NoSuchChannel(_))
    ));
    assert!(matches!(
        api.channel_name(&unknown).await,
        Err(ChzzkError::NoSuchChannel(_))
    ));
    assert_eq!(api.channel_name(&id).await.unwrap(), "Streamer");

    let seen = fake.requests();
    assert_eq!(
        seen[0].path,
        format!("/service/v2/channels/{CHANNEL}/live-detail")
    );
    assert!(seen.iter().all(|r| r
        .user_agent
        .as_deref()
        .is_some_and(|ua| ua.starts_with("Mozilla/5.0"))));
    assert!(
        seen.iter().all(|r| r.cookie.is_none()),
        "no cookies configured, none sent"
    );
}

#[tokio::test]
async fn chzzk_adult_streams_need_the_login_cookies() {
    let fake = ChzzkFake::start().await;
    fake.add(CHANNEL, "Grown");
    fake.set_adult(CHANNEL, true);
    let master = format!("{}/hls/key_hls_playlist.m3u8", fake.api_url());
    fake.set(
        CHANNEL,
        Live::Open {
            master: master.clone(),
        },
    );
    let id = ChzzkId::parse(CHANNEL).unwrap();

    let anonymous = chzzk(&fake, false);
    let (detail, playback) = anonymous.live_detail(&id).await.unwrap();
    assert!(detail.is_live() && detail.media.is_none());
    let refusal = detail.playable(&playback).unwrap_err();
    assert!(
        matches!(&refusal, ChzzkError::AdultOnly(Some(s)) if s == "NOT_LOGIN_USER"),
        "{refusal}"
    );
    assert!(refusal.to_string().contains("nid_aut and nid_ses"));
    let chat_id = detail.chat_channel_id.clone().unwrap();
    assert!(matches!(
        anonymous.chat_token(&chat_id).await,
        Err(ChzzkError::AdultOnly(None))
    ));

    let logged_in = chzzk(&fake, true);
    let (detail, _) = logged_in.live_detail(&id).await.unwrap();
    assert_eq!(detail.media.map(|u| u.to_string()), Some(master));
    let token = logged_in.chat_token(&chat_id).await.unwrap();
    assert_eq!(token.0.expose(), "chat-access-token");
    assert!(!format!("{token:?}").contains("chat-access-token"));

    let seen = fake.requests();
    let last = seen.last().unwrap();
    assert_eq!(last.path, "/nng_main/v1/chats/access-token");
    assert!(
        last.query.contains(&format!("channelId={chat_id}"))
            && last.query.contains("chatType=STREAMING")
    );
    assert_eq!(
        last.cookie.as_deref(),
        Some(format!("NID_AUT={NID_AUT}; NID_SES={NID_SES}").as_str())
    );
}
