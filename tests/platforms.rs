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

use recbot::bilibili::api::{BiliApi, BiliError, LiveStatus, StreamFormat, PAUSE_AFTER_412};
use recbot_commands::RoomId;
use support::bilibili::{BiliFake, Mode, DANMU_TOKEN};

fn bilibili(fake: &BiliFake, cookie: Option<&str>) -> BiliApi {
    BiliApi::new(
        reqwest::Client::new(),
        &fake.url(),
        &fake.url(),
        cookie.map(Secret::new),
    )
}

#[tokio::test]
async fn bilibili_short_ids_resolve_and_live_rooms_give_fmp4() {
    let fake = BiliFake::start().await;
    fake.add(23058, Some(3), "哔哩哔哩直播");
    let api = bilibili(&fake, None);

    let init = api.room_init(RoomId::parse("3").unwrap()).await.unwrap();
    assert_eq!(init.room_id.get(), 23058);
    assert_eq!(init.short_id, Some(3));
    assert_eq!(init.live_status, LiveStatus::Offline);
    assert_eq!(init.live_time, None);
    let info = api.room_info(init.room_id).await.unwrap();
    assert_eq!(info.streamer.as_deref(), Some("哔哩哔哩直播"));
    assert_eq!(
        api.play_stream(init.room_id, 10000).await.unwrap(),
        None,
        "offline: no stream"
    );

    fake.update(23058, |r| r.live = true);
    assert_eq!(
        api.room_init(init.room_id).await.unwrap().live_status,
        LiveStatus::Live
    );
    let stream = api.play_stream(init.room_id, 10000).await.unwrap().unwrap();
    assert_eq!(stream.format, StreamFormat::HlsFmp4);
    assert_eq!(stream.codec, "avc");
    assert_eq!(
        stream.url,
        "https://cn-fake.bilivideo.com/live-bvc/1/live_23058/index.m3u8?expires=1900000000&qn=10000&sign=fake",
        "not the P2P (.mcdn.) host"
    );
    assert_eq!(stream.expires, Some(1_900_000_000));

    fake.update(23058, |r| r.hls = false);
    let flv = api.play_stream(init.room_id, 10000).await.unwrap().unwrap();
    assert_eq!(flv.format, StreamFormat::Flv);

    assert!(matches!(
        api.room_init(RoomId::parse("99").unwrap()).await,
        Err(BiliError::NoSuchRoom(99))
    ));
    let seen = fake.requests();
    assert!(seen
        .iter()
        .all(|r| r.referer.as_deref() == Some("https://live.bilibili.com/")));
    assert!(seen.iter().all(|r| r.cookie.is_none()));
}

#[tokio::test]
async fn bilibili_danmu_info_is_wbi_signed_and_risk_control_pauses() {
    let fake = BiliFake::start().await;
    fake.add(23058, None, "x");
    let api = bilibili(&fake, Some("SESSDATA=s; buvid3=b"));
    let room = RoomId::parse("23058").unwrap();

    let info = api.danmu_info(room, 1_776_925_721).await.unwrap();
    assert_eq!(
        info.token.expose(),
        DANMU_TOKEN,
        "the fake accepted the signature"
    );
    assert_eq!(info.hosts[0].host, "127.0.0.1");
    let seen = fake.requests();
    assert_eq!(
        seen.iter()
            .filter(|r| r.path == "/x/web-interface/nav")
            .count(),
        1
    );
    let signed = seen.last().unwrap();
    assert!(signed
        .query
        .iter()
        .any(|(k, v)| k == "wts" && v == "1776925721"));
    assert!(signed.query.iter().any(|(k, v)| k == "id" && v == "23058"));
    assert_eq!(signed.cookie.as_deref(), Some("SESSDATA=s; buvid3=b"));

    // The key is cached: a second call asks nav no more.
    api.danmu_info(room, 1_776_925_722).await.unwrap();
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.path == "/x/web-interface/nav")
            .count(),
        1
    );

    fake.set_mode(Mode::RiskControl);
    let err = api.danmu_info(room, 1_776_925_723).await.unwrap_err();
    assert!(matches!(err, BiliError::RiskControl), "{err}");
    assert!(err.pause().is_some());
    fake.set_mode(Mode::Normal);
    api.danmu_info(room, 1_776_925_724).await.unwrap();
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.path == "/x/web-interface/nav")
            .count(),
        2,
        "-352 dropped the key; it was fetched anew"
    );

    fake.set_mode(Mode::Blocked);
    let err = api.room_init(room).await.unwrap_err();
    assert!(matches!(err, BiliError::Blocked));
    assert_eq!(err.pause(), Some(PAUSE_AFTER_412));
}

mod danmaku_session {
    use std::io::Write;
    use std::time::Duration;

    use recbot::bilibili::danmaku::{encode, Auth, OP_MESSAGE, VER_JSON, VER_ZLIB};
    use recbot::bilibili::session::{run, Received, SessionError, Timing};
    use recbot::secret::Secret;
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    use super::support::bilibili::{DanmakuScript, DanmakuServer};

    const DANMU: &str = r#"{"cmd":"DANMU_MSG","info":[[0,1,25,16777215,1723979200649],"hello",[6088969,"tim1997"]]}"#;
    const LIVE: &str = r#"{"cmd":"LIVE","roomid":23058}"#;

    fn zlib_batch(jsons: &[&str]) -> Vec<u8> {
        let inner: Vec<u8> = jsons
            .iter()
            .flat_map(|j| encode(OP_MESSAGE, VER_JSON, 0, j.as_bytes()))
            .collect();
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&inner).unwrap();
        encode(OP_MESSAGE, VER_ZLIB, 0, &e.finish().unwrap())
    }

    fn script(push: Vec<Vec<u8>>) -> DanmakuScript {
        DanmakuScript {
            auth_code: 0,
            refuse_first: 0,
            push,
            answer_heartbeats: true,
            close_after_heartbeats: None,
        }
    }

    fn fast() -> Timing {
        Timing {
            heartbeat: Duration::from_millis(50),
            receive_timeout: Duration::from_millis(400),
        }
    }

    async fn session(
        url: &str,
        timing: Timing,
        cancel: CancellationToken,
    ) -> (Result<(), SessionError>, Vec<Received>) {
        let key = Secret::new("danmu-token");
        let auth = Auth {
            uid: 0,
            room_id: 23058,
            key: Some(&key),
            buvid: None,
            protover: 2,
        };
        let (tx, mut rx) = mpsc::channel(64);
        let result = run(url, &auth, timing, &tx, &cancel).await;
        drop(tx);
        let mut got = Vec::new();
        while let Some(r) = rx.recv().await {
            got.push(r);
        }
        (result, got)
    }

    #[tokio::test]
    async fn a_session_authenticates_heartbeats_and_hands_on_commands() {
        let server = DanmakuServer::start(script(vec![zlib_batch(&[DANMU, LIVE])])).await;
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            stop.cancel();
        });
        let (result, got) = session(&server.url, fast(), cancel).await;
        result.unwrap();
        assert_eq!(got[0], Received::Up);
        assert_eq!(
            got[1],
            Received::Command {
                cmd: "DANMU_MSG".into(),
                raw: DANMU.into()
            }
        );
        assert_eq!(
            got[2],
            Received::Command {
                cmd: "LIVE".into(),
                raw: LIVE.into()
            }
        );
        assert!(
            got.contains(&Received::Popularity(777)),
            "heartbeat replies read, echo ignored: {got:?}"
        );
        let seen = server.seen();
        assert!(seen.heartbeats >= 2, "{seen:?}");
        assert_eq!(seen.auth[0]["key"], "danmu-token");
        assert_eq!(seen.auth[0]["roomid"], 23058);
        assert!(seen.user_agents[0].starts_with("Mozilla/5.0"));
    }

    #[tokio::test]
    async fn each_way_a_session_ends_is_named() {
        let refused = DanmakuServer::start(DanmakuScript {
            auth_code: -101,
            ..script(vec![])
        })
        .await;
        let (result, got) = session(&refused.url, fast(), CancellationToken::new()).await;
        assert!(
            matches!(result, Err(SessionError::AuthRefused(Some(-101)))),
            "{result:?}"
        );
        assert!(got.is_empty());

        // Heartbeats go out every 50 ms but nothing comes back: silence is measured across them.
        let mute = DanmakuServer::start(DanmakuScript {
            answer_heartbeats: false,
            ..script(vec![])
        })
        .await;
        let (result, _) = session(&mute.url, fast(), CancellationToken::new()).await;
        assert!(matches!(result, Err(SessionError::Silent(_))), "{result:?}");
        assert!(mute.seen().heartbeats >= 3);

        let garbage = DanmakuServer::start(script(vec![vec![0, 0, 0, 99, 0, 16, 0, 0]])).await;
        let (result, _) = session(&garbage.url, fast(), CancellationToken::new()).await;
        assert!(
            matches!(result, Err(SessionError::Protocol(_))),
            "{result:?}"
        );

        let dropped = DanmakuServer::start(DanmakuScript {
            close_after_heartbeats: Some(2),
            ..script(vec![])
        })
        .await;
        let (result, _) = session(&dropped.url, fast(), CancellationToken::new()).await;
        assert!(
            matches!(result, Err(SessionError::Closed | SessionError::Io(_))),
            "{result:?}"
        );

        let nowhere = session("ws://127.0.0.1:9/sub", fast(), CancellationToken::new())
            .await
            .0;
        assert!(
            matches!(nowhere, Err(SessionError::Connect(_))),
            "{nowhere:?}"
        );
    }
}
