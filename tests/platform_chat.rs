//! Chzzk chat and Bilibili danmaku logged into the chat day files (issue 14, chat part),
//! against the fakes in tests/support/chzzk.rs (API + chat WebSocket) and bilibili.rs (API
//! with the WBI check + the binary danmaku WebSocket): messages and donations land with
//! their fields and raw JSON, pings answered, reconnects without duplicates or loss,
//! unreadable frames logged raw and reported once, compressed batches, heartbeats, a new
//! token after an auth refusal, risk control paused and reported once, giving up, and
//! `recbot logs` reading the records back.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use recbot::chat::day_files::{self, Item};
use recbot::chat::logs;
use recbot::chat::platform_room::{self, PlatformRoom, RoomConfig, Timing};
use recbot::chat::writer::{self, Compression, LineQueue, WriterSettings};
use recbot::config::Config;
use recbot::event::{Event, EventKind};
use recbot::metrics::Metrics;
use recbot::work::Events;
use recbot_commands::{ChannelRef, ChzzkId, Login, RoomId};
use serde_json::{json, Value};
use support::bilibili::{brotli_batch, zlib_batch, BiliFake, DanmakuScript, DanmakuServer, Mode};
use support::chzzk::{chat_frame, donation_frame, ChatServer, ChzzkFake, Live};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const CHANNEL: &str = "0123456789abcdef0123456789abcdef";
const FOLDER: &str = "chzzkfolder";
const ROOM: u64 = 23058;

struct Harness {
    dir: tempfile::TempDir,
    queue: LineQueue,
    events: mpsc::Receiver<Event>,
    seen: Vec<Event>,
    sender: Events,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Harness {
    fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let (queue, _counters, run) = writer::writer(
            WriterSettings {
                dir: dir.path().to_path_buf(),
                flush_interval: Duration::from_millis(20),
                fsync_interval: Duration::from_millis(100),
                queue_lines: 10_000,
                patience: Duration::from_secs(2),
                max_open_files: 16,
                compression: Compression::Zstd { level: 3 },
            },
            Arc::new(Metrics::new()),
        );
        let tracker = TaskTracker::new();
        tracker.spawn(run);
        let (tx, events) = mpsc::channel(256);
        Harness {
            dir,
            queue,
            events,
            seen: Vec::new(),
            sender: Events::new(tx),
            tracker,
            cancel: CancellationToken::new(),
        }
    }

    fn room(&self, channel: ChannelRef, config: RoomConfig) -> PlatformRoom {
        platform_room::start(
            channel,
            Login::parse(FOLDER).unwrap(),
            Arc::from(FOLDER),
            config,
            self.queue.clone(),
            self.sender.clone(),
            &self.tracker,
            self.cancel.clone(),
        )
    }

    /// Every line of today's day files of the folder, in order.
    async fn lines(&self) -> Vec<Value> {
        self.queue.flush().await;
        read_day(self.dir.path())
    }

    /// Waits until `pred` holds for the day file's lines.
    async fn wait_lines(&self, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..500 {
            let lines = self.lines().await;
            if pred(&lines) {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}: {:#?}", self.lines().await);
    }

    /// Events received so far (kept in `seen`).
    fn drain(&mut self) -> &[Event] {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
        &self.seen
    }

    async fn wait_event(&mut self, name: &str) -> Event {
        for _ in 0..500 {
            if let Some(e) = self.drain().iter().find(|e| e.kind_name() == name) {
                return e.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no {name} event: {:#?}", self.seen);
    }

    fn count(&mut self, name: &str) -> usize {
        self.drain()
            .iter()
            .filter(|e| e.kind_name() == name)
            .count()
    }
}

fn read_day(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for path in day_files::files_of(dir, FOLDER, Utc::now().date_naive()) {
        day_files::read(&path, None, &mut |item| {
            if let Item::Line(line) = item {
                out.push(serde_json::from_slice(line).expect("every line is JSON"));
            }
            Ok(true)
        })
        .unwrap();
    }
    out
}

async fn wait(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn fast() -> Timing {
    Timing {
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        max_attempts: 4,
        healthy_after: Duration::from_millis(50),
        chzzk_ping_after: Duration::from_secs(5),
        chzzk_silence: Duration::from_secs(10),
        chzzk_recheck: Duration::from_secs(3600),
        chzzk_recent: 50,
        danmaku: recbot::bilibili::session::Timing {
            heartbeat: Duration::from_millis(50),
            receive_timeout: Duration::from_millis(1000),
        },
        pause_risk_control: Duration::from_millis(300),
        pause_blocked: Duration::from_millis(300),
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

// --- Chzzk ---

struct ChzzkSetup {
    api: ChzzkFake,
    chat: ChatServer,
    config: RoomConfig,
    cid: String,
}

async fn chzzk_setup() -> ChzzkSetup {
    let api = ChzzkFake::start().await;
    api.add(CHANNEL, "치즈방송");
    api.set(
        CHANNEL,
        Live::Open {
            master: format!("{}/hls/master.m3u8", api.api_url()),
        },
    );
    let cid = api.state.lock().unwrap().channels[CHANNEL]
        .chat_channel_id
        .clone();
    let chat = ChatServer::start().await;
    let mut config = Config::default();
    config.chzzk.api_url = api.api_url();
    config.chzzk.chat_api_url = api.chat_api_url();
    config.chzzk.chat_ws_url = chat.url.clone();
    let mut config = RoomConfig::from_config(&config);
    config.timing = fast();
    ChzzkSetup {
        api,
        chat,
        config,
        cid,
    }
}

fn chzzk_channel() -> ChannelRef {
    ChannelRef::Chzzk(ChzzkId::parse(CHANNEL).unwrap())
}

fn texts(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l["text"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn chzzk_chat_and_donations_land_in_the_day_file_with_their_raw_json() {
    let mut h = Harness::start();
    let s = chzzk_setup().await;
    let t = now_ms();
    s.chat
        .set_recent(vec![json!({"userId": "old1", "content": "before we came",
        "messageTypeCode": 1, "messageTime": t - 60_000, "profile": "{\"nickname\":\"옛날\"}"})]);
    let room = h.room(chzzk_channel(), s.config.clone());
    // Recent chat is answered before anything pushed after its request.
    wait("the chat connection", || s.chat.seen().recent_requests == 1).await;
    let joined = h.wait_event("ChatJoined").await;
    assert_eq!(joined.login.as_ref().map(Login::as_str), Some(FOLDER));
    let connect = &s.chat.seen().connects[0];
    assert_eq!(connect["cid"], s.cid.as_str());
    assert_eq!(connect["bdy"]["accTkn"], "chat-access-token");
    assert_eq!(connect["bdy"]["auth"], "READ");

    s.chat.push(&chat_frame(
        &s.cid,
        &[
            ("u1", "치즈", "안녕하세요", t),
            ("u2", "두번째", "\"quoted\"\n", t + 1),
        ],
    ));
    s.chat.push(&donation_frame(
        &s.cid,
        "anonymous",
        None,
        "후원합니다",
        1000,
        t + 2,
    ));
    s.chat
        .push(&json!({"cmd": 94008, "bdy": {"blindType": "CBOTBLIND"}}).to_string());
    let lines = h
        .wait_lines("four messages and the blind command", |l| l.len() >= 5)
        .await;
    assert_eq!(
        texts(&lines),
        ["before we came", "안녕하세요", "\"quoted\"\n", "후원합니다"]
    );
    let chat = &lines[1];
    assert_eq!(chat["platform"], "chzzk");
    assert_eq!(chat["cmd"], "93101");
    assert_eq!(chat["channel"], CHANNEL);
    assert_eq!(chat["user_id"], "u1");
    assert_eq!(chat["display_name"], "치즈");
    assert_eq!(chat["sent_ms"], t);
    assert!(chat["recv_ms"].as_i64().unwrap() >= t);
    assert!(chat.get("amount").is_none());
    let raw: Value = serde_json::from_str(chat["raw"].as_str().unwrap()).unwrap();
    let frame: Value = serde_json::from_str(&chat_frame(
        &s.cid,
        &[
            ("u1", "치즈", "안녕하세요", t),
            ("u2", "두번째", "\"quoted\"\n", t + 1),
        ],
    ))
    .unwrap();
    assert_eq!(raw, frame["bdy"][0], "the message's JSON is kept whole");
    let donation = &lines[3];
    assert_eq!(donation["cmd"], "93102");
    assert_eq!(donation["user_id"], "anonymous");
    assert!(donation.get("display_name").is_none(), "anonymous donor");
    assert_eq!(donation["amount"], json!({"value": 1000, "unit": "KRW"}));
    assert_eq!(lines[0]["cmd"], "15101");
    assert_eq!(lines[0]["display_name"], "옛날");
    let blind = &lines[4];
    assert_eq!(blind["cmd"], "94008");
    assert!(blind["raw"].as_str().unwrap().contains("CBOTBLIND"));

    let status = room.status();
    assert!(status.joined);
    assert_eq!(status.lines, 5);
    assert!(status.last_line.is_some());
    assert!(
        s.api
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/chats/access-token") && r.query.contains(&s.cid)),
        "the access token is asked for the broadcast's chat channel"
    );

    // `recbot logs` reads the records back, the donation with its amount.
    let query = logs::Query::parse(logs::Args {
        login: FOLDER.into(),
        ..logs::Args::default()
    })
    .unwrap();
    let mut out = Vec::new();
    let shown = logs::print(h.dir.path(), &query, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(shown, 4, "{out}");
    assert!(out.contains("] 치즈: 안녕하세요\n"), "{out}");
    assert!(
        out.contains("] anonymous: 후원합니다 [1000 KRW]\n"),
        "{out}"
    );
    assert!(out.contains("] 두번째: \"quoted\"␊\n"), "{out}");
    let by_user = logs::Query {
        user: Some("치즈".into()),
        ..query
    };
    let mut out = Vec::new();
    assert_eq!(logs::print(h.dir.path(), &by_user, &mut out).unwrap(), 1);

    room.stop().await;
    assert_eq!(h.count("ChatJoined"), 1);
    assert_eq!(h.count("ChatUnreadable"), 0);
}

#[tokio::test]
async fn chzzk_pings_are_answered() {
    let h = Harness::start();
    let s = chzzk_setup().await;
    let room = h.room(chzzk_channel(), s.config.clone());
    wait("the chat connection", || s.chat.seen().connects.len() == 1).await;
    assert_eq!(s.chat.seen().pongs, 0);
    s.chat.push(r#"{"cmd":0}"#);
    s.chat.push(r#"{"cmd":0,"ver":"1"}"#);
    wait("two pongs", || s.chat.seen().pongs == 2).await;
    assert!(h.lines().await.is_empty(), "pings are not chat");
    room.stop().await;
}

#[tokio::test]
async fn chzzk_pings_after_quiet_and_reconnects_when_silent() {
    let h = Harness::start();
    let mut s = chzzk_setup().await;
    s.config.timing.chzzk_ping_after = Duration::from_millis(100);
    s.config.timing.chzzk_silence = Duration::from_millis(400);
    let room = h.room(chzzk_channel(), s.config.clone());
    // The fake answers our PING with a PONG, which counts as heard: no reconnect.
    wait("our pings", || s.chat.seen().pings >= 3).await;
    assert_eq!(s.chat.seen().connects.len(), 1);
    room.stop().await;
}

#[tokio::test]
async fn chzzk_reconnects_after_a_drop_without_duplicates_or_loss() {
    let h = Harness::start();
    let s = chzzk_setup().await;
    let t = now_ms();
    let before = [("u1", "a", "one", t), ("u2", "b", "two", t + 1)];
    let room = h.room(chzzk_channel(), s.config.clone());
    wait("the chat connection", || s.chat.seen().connects.len() == 1).await;
    s.chat.push(&chat_frame(&s.cid, &before));
    h.wait_lines("two lines", |l| l.len() == 2).await;

    // Recent chat on the new connection repeats both, plus one sent while we were away.
    let recent: Vec<Value> = before
        .iter()
        .chain([("u3", "c", "while away", t + 2)].iter())
        .map(|(uid, nick, msg, time)| {
            json!({"userId": uid, "content": msg, "messageTypeCode": 1, "messageTime": time,
                   "profile": json!({"nickname": nick}).to_string()})
        })
        .collect();
    s.chat.set_recent(recent);
    s.chat.drop_connections();
    // Recent chat is answered before anything pushed after its request.
    wait("the reconnect", || s.chat.seen().recent_requests == 2).await;
    s.chat
        .push(&chat_frame(&s.cid, &[("u4", "d", "after", t + 3)]));
    let lines = h
        .wait_lines("the line after the reconnect", |l| {
            texts(l).contains(&"after".to_string())
        })
        .await;
    assert_eq!(texts(&lines), ["one", "two", "while away", "after"]);
    assert_eq!(s.chat.seen().recent_requests, 2);
    wait("the status", || room.status().reconnects == 1).await;
    assert!(room.status().joined);
    room.stop().await;
}

#[tokio::test]
async fn chzzk_unreadable_frames_are_logged_raw_counted_and_reported_once() {
    let mut h = Harness::start();
    let s = chzzk_setup().await;
    let t = now_ms();
    let room = h.room(chzzk_channel(), s.config.clone());
    wait("the chat connection", || s.chat.seen().connects.len() == 1).await;
    s.chat.push("{not json");
    s.chat.push(r#"{"cmd":"ninety"}"#);
    s.chat
        .push(&chat_frame(&s.cid, &[("u1", "a", "still here", t)]));
    let lines = h
        .wait_lines("the line after the garbage", |l| l.len() == 3)
        .await;
    assert_eq!(lines[0]["raw"], "{not json");
    assert!(lines[0]["error"].as_str().unwrap().contains("not JSON"));
    assert_eq!(lines[1]["raw"], r#"{"cmd":"ninety"}"#);
    assert!(lines[1]["error"].as_str().is_some());
    assert_eq!(lines[2]["text"], "still here");
    let event = h.wait_event("ChatUnreadable").await;
    let EventKind::ChatUnreadable { platform, reason } = event.kind else {
        panic!()
    };
    assert_eq!(platform, "chzzk");
    assert!(reason.contains("not JSON"), "{reason}");
    assert_eq!(h.count("ChatUnreadable"), 1, "reported once");
    let status = room.status();
    assert_eq!(status.unreadable, 2);
    assert!(status.joined, "the room keeps running");
    assert_eq!(s.chat.seen().connects.len(), 1);
    room.stop().await;
}

#[tokio::test]
async fn chzzk_a_new_broadcast_means_a_new_chat_channel() {
    let h = Harness::start();
    let mut s = chzzk_setup().await;
    s.config.timing.chzzk_recheck = Duration::from_millis(100);
    let room = h.room(chzzk_channel(), s.config.clone());
    wait("the chat connection", || s.chat.seen().connects.len() == 1).await;
    s.api.set(CHANNEL, Live::Close);
    s.api.set(
        CHANNEL,
        Live::Open {
            master: format!("{}/hls/master.m3u8", s.api.api_url()),
        },
    );
    let new_cid = s.api.state.lock().unwrap().channels[CHANNEL]
        .chat_channel_id
        .clone();
    assert_ne!(new_cid, s.cid);
    wait("the new chat channel", || s.chat.seen().connects.len() == 2).await;
    assert_eq!(s.chat.seen().connects[1]["cid"], new_cid.as_str());
    room.stop().await;
}

#[tokio::test]
async fn chzzk_gives_up_after_bounded_attempts_and_at_once_for_adult_channels() {
    let mut h = Harness::start();
    let mut s = chzzk_setup().await;
    // Nobody listens at the chat address.
    s.config.chzzk_chat_ws_url = "ws://127.0.0.1:9/chat".into();
    let room = h.room(chzzk_channel(), s.config.clone());
    let event = h.wait_event("ChatGaveUp").await;
    let EventKind::ChatGaveUp {
        platform, attempts, ..
    } = event.kind
    else {
        panic!()
    };
    assert_eq!((platform.as_str(), attempts), ("chzzk", 5));
    assert!(room.status().gave_up);
    room.stop().await;

    // An adult channel without cookies: no chat channel id, a clear reason, no retries.
    let s = chzzk_setup().await;
    s.api.set_adult(CHANNEL, true);
    let mut h = Harness::start();
    let room = h.room(chzzk_channel(), s.config.clone());
    let event = h.wait_event("ChatGaveUp").await;
    let EventKind::ChatGaveUp { reason, .. } = event.kind else {
        panic!()
    };
    assert!(reason.contains("adults only"), "{reason}");
    assert!(s.chat.seen().connects.is_empty());
    room.stop().await;
}

// --- Bilibili ---

const DANMU: &str = r#"{"cmd":"DANMU_MSG:4:0:2:2:2:0","info":[[0,1,25,16777215,TIME,-1312973962,0,"0bc8acd0",0,0,0,"",0],"hello",[6088969,"tim1997",0,0,0,10000,1,""],[],[39,0,10512625,42523,2],["",""],0,0,null,{"ts":1723979200,"ct":"AFFF4206"}],"dm_v2":""}"#;
const MASKED: &str = r#"{"cmd":"DANMU_MSG","info":[[0,1,25,16777215,TIME,0,0,"",0,0,0,"",0],"hi",[0,"提***",0,0,0,10000,1,""],[],[],["",""],0,0,null,{"ts":1,"ct":"X"}]}"#;
const SUPER_CHAT: &str = r#"{"cmd":"SUPER_CHAT_MESSAGE","data":{"id":1,"uid":42,"message":"加油","price":30,"start_time":SECS,"user_info":{"uname":"富哥"}},"roomid":23058}"#;
const GIFT: &str = r#"{"cmd":"SEND_GIFT","data":{"giftName":"辣条","num":3,"uname":"送礼人","uid":7,"coin_type":"gold","total_coin":300,"timestamp":SECS}}"#;
const LIVE: &str = r#"{"cmd":"LIVE","roomid":23058}"#;
const RANK: &str = r#"{"cmd":"ONLINE_RANK_COUNT","data":{"count":5}}"#;
const PREPARING: &str = r#"{"cmd":"PREPARING","roomid":"23058"}"#;

fn timed(json: &str, t: i64) -> String {
    json.replace("TIME", &t.to_string())
        .replace("SECS", &(t / 1000).to_string())
}

struct BiliSetup {
    api: BiliFake,
    config: RoomConfig,
}

async fn bili_setup(danmaku: &DanmakuServer) -> BiliSetup {
    let api = BiliFake::start().await;
    api.add(ROOM, Some(3), "主播");
    let port: u16 = danmaku
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/sub")
        .parse()
        .unwrap();
    api.state.lock().unwrap().danmu_host = ("127.0.0.1".into(), port);
    let mut config = Config::default();
    config.bilibili.api_url = api.url();
    config.bilibili.live_api_url = api.url();
    let mut config = RoomConfig::from_config(&config);
    assert!(!config.danmaku_tls, "a plain http API: plain ws danmaku");
    config.timing = fast();
    BiliSetup { api, config }
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

fn danmu_info_requests(api: &BiliFake) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.path.ends_with("/getDanmuInfo"))
        .count()
}

#[tokio::test]
async fn bilibili_danmaku_in_compressed_batches_land_in_the_day_file() {
    let mut h = Harness::start();
    let t = now_ms();
    let (danmu, masked, sc, gift) = (
        timed(DANMU, t),
        timed(MASKED, t + 1),
        timed(SUPER_CHAT, t),
        timed(GIFT, t),
    );
    let server = DanmakuServer::start(script(vec![
        brotli_batch(&[&danmu, LIVE, &masked]),
        zlib_batch(&[&sc, &gift, RANK]),
        support::bilibili::plain_packets(&[PREPARING]),
    ]))
    .await;
    let s = bili_setup(&server).await;
    // The short id: room_init resolves it.
    let room = h.room(
        ChannelRef::Bilibili(RoomId::parse("3").unwrap()),
        s.config.clone(),
    );
    let mut signals = room.signals();
    let lines = h.wait_lines("seven commands", |l| l.len() == 7).await;
    let cmds: Vec<&str> = lines.iter().map(|l| l["cmd"].as_str().unwrap()).collect();
    assert_eq!(
        cmds,
        [
            "DANMU_MSG",
            "LIVE",
            "DANMU_MSG",
            "SUPER_CHAT_MESSAGE",
            "SEND_GIFT",
            "ONLINE_RANK_COUNT",
            "PREPARING"
        ]
    );
    for (line, raw) in lines
        .iter()
        .zip([&danmu, LIVE, &masked, &sc, &gift, RANK, PREPARING])
    {
        assert_eq!(line["raw"], *raw, "every command kept as received");
        assert_eq!(line["platform"], "bilibili");
        assert_eq!(line["channel"], "3");
    }
    let d = &lines[0];
    assert_eq!(
        (&d["user_id"], &d["display_name"], &d["text"], &d["sent_ms"]),
        (
            &json!("6088969"),
            &json!("tim1997"),
            &json!("hello"),
            &json!(t)
        )
    );
    assert_eq!(
        lines[2]["display_name"], "提***",
        "masked names kept as sent"
    );
    assert_eq!(lines[2]["user_id"], "0");
    assert_eq!(lines[3]["amount"], json!({"value": 30, "unit": "CNY"}));
    assert_eq!(lines[3]["display_name"], "富哥");
    assert_eq!(lines[3]["text"], "加油");
    assert_eq!(lines[4]["amount"], json!({"value": 300, "unit": "gold"}));
    assert_eq!(lines[4]["text"], "辣条 x3");

    // LIVE then PREPARING reached the caller.
    signals.wait_for(|s| s.live == Some(false)).await.unwrap();

    let seen = server.seen();
    assert_eq!(seen.auth[0]["roomid"], ROOM, "the real room id");
    assert_eq!(seen.auth[0]["key"], support::bilibili::DANMU_TOKEN);
    assert_eq!(seen.auth[0]["protover"], 3);
    wait("heartbeats", || server.seen().heartbeats >= 3).await;
    assert!(room.status().joined);
    assert_eq!(danmu_info_requests(&s.api), 1);
    h.wait_event("ChatJoined").await;

    let query = logs::Query::parse(logs::Args {
        login: FOLDER.into(),
        ..logs::Args::default()
    })
    .unwrap();
    let mut out = Vec::new();
    logs::print(h.dir.path(), &query, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("] tim1997: hello\n"), "{out}");
    assert!(out.contains("] 富哥: 加油 [30 CNY]\n"), "{out}");
    assert!(out.contains("] ▶ the stream started\n"), "{out}");
    assert!(!out.contains("ONLINE_RANK"), "{out}");
    room.stop().await;
}

#[tokio::test]
async fn bilibili_reconnects_with_the_same_token_and_after_a_refusal_with_a_new_one() {
    let h = Harness::start();
    // The first auth is refused (-101); each session is dropped after 3 heartbeats.
    let server = DanmakuServer::start(DanmakuScript {
        refuse_first: 1,
        close_after_heartbeats: Some(3),
        ..script(vec![plain_danmu(now_ms())])
    })
    .await;
    let s = bili_setup(&server).await;
    let room = h.room(
        ChannelRef::Bilibili(RoomId::parse("23058").unwrap()),
        s.config.clone(),
    );
    wait("three auths", || server.seen().auth.len() >= 3).await;
    // Refused → new token (2 getDanmuInfo); the drop after heartbeats keeps the token.
    assert_eq!(danmu_info_requests(&s.api), 2);
    h.wait_lines("danmaku from two sessions", |l| l.len() >= 2)
        .await;
    room.stop().await;
}

fn plain_danmu(t: i64) -> Vec<u8> {
    support::bilibili::plain_packets(&[&timed(DANMU, t)])
}

#[tokio::test]
async fn bilibili_unreadable_bodies_are_logged_raw_and_reported_once() {
    let mut h = Harness::start();
    let t = now_ms();
    let server = DanmakuServer::start(script(vec![
        support::bilibili::plain_packets(&["not json", "[1,2]"]),
        plain_danmu(t),
    ]))
    .await;
    let s = bili_setup(&server).await;
    let room = h.room(
        ChannelRef::Bilibili(RoomId::parse("23058").unwrap()),
        s.config.clone(),
    );
    let lines = h.wait_lines("three lines", |l| l.len() == 3).await;
    assert_eq!(lines[0]["raw"], "not json");
    assert!(lines[0]["error"].is_string());
    assert_eq!(lines[1]["raw"], "[1,2]");
    assert_eq!(lines[2]["text"], "hello");
    h.wait_event("ChatUnreadable").await;
    assert_eq!(h.count("ChatUnreadable"), 1);
    assert_eq!(room.status().unreadable, 2);
    room.stop().await;
}

#[tokio::test]
async fn bilibili_risk_control_pauses_and_is_reported_once() {
    let mut h = Harness::start();
    let server = DanmakuServer::start(script(vec![plain_danmu(now_ms())])).await;
    let s = bili_setup(&server).await;
    s.api.set_mode(Mode::RiskControl);
    let room = h.room(
        ChannelRef::Bilibili(RoomId::parse("23058").unwrap()),
        s.config.clone(),
    );
    let event = h.wait_event("ChatPaused").await;
    let EventKind::ChatPaused {
        platform, reason, ..
    } = event.kind
    else {
        panic!()
    };
    assert_eq!(platform, "bilibili");
    assert!(reason.contains("-352"), "{reason}");
    // Several pauses of 300 ms go by: still one report, and requests are paced by the pause.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(h.count("ChatPaused"), 1);
    let asked = s.api.requests().len();
    assert!(
        (2..=6).contains(&asked),
        "{asked} requests in ~1 s of 300 ms pauses"
    );
    assert!(room.status().paused);
    assert!(
        !room.status().gave_up,
        "risk control is not a failed attempt"
    );

    s.api.set_mode(Mode::Normal);
    h.wait_lines("danmaku once the pause is over", |l| l.len() == 1)
        .await;
    assert!(!room.status().paused);
    room.stop().await;
}

#[tokio::test]
async fn bilibili_gives_up_on_a_room_that_does_not_exist() {
    let mut h = Harness::start();
    let server = DanmakuServer::start(script(vec![])).await;
    let s = bili_setup(&server).await;
    let room = h.room(
        ChannelRef::Bilibili(RoomId::parse("999").unwrap()),
        s.config.clone(),
    );
    let event = h.wait_event("ChatGaveUp").await;
    let EventKind::ChatGaveUp { reason, .. } = event.kind else {
        panic!()
    };
    assert!(reason.contains("no room 999"), "{reason}");
    assert!(server.seen().auth.is_empty());
    room.stop().await;
}

#[test]
fn room_config_reads_the_cookie_and_endpoints() {
    let mut config = Config::default();
    config.bilibili.cookie = Some(recbot::secret::Secret::new(
        "SESSDATA=abc; buvid3=B-UV-ID; DedeUserID=12345",
    ));
    let room = RoomConfig::from_config(&config);
    assert_eq!(room.bilibili_uid, 12345);
    assert_eq!(room.bilibili_buvid.as_deref(), Some("B-UV-ID"));
    assert!(room.danmaku_tls, "the real API: wss danmaku");
    assert_eq!(room.chzzk_chat_ws_url, "wss://kr-ss{n}.chat.naver.com/chat");
    let guest = RoomConfig::from_config(&Config::default());
    assert_eq!((guest.bilibili_uid, guest.bilibili_buvid), (0, None));
}
