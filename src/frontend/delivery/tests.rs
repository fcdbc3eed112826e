use std::path::Path;
use std::sync::Mutex;

use recbot_commands::Login;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::*;
use crate::backoff::jitter;
use crate::config::Config;
use crate::core::{Core, Origin};
use crate::frontend::render::Ask;
use crate::work::Events;

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Post(Place, String),
    Thread(MessageRef, String),
    Edit(MessageRef, String),
    /// A file posted: where, its name, its bytes, the comment.
    Upload(Place, String, Vec<u8>, String),
}

/// Which calls a partly-down platform fails.
type Outage = fn(&Call) -> bool;

/// Records every call; fails the next calls with scripted errors first, and every call
/// `down` matches (a platform partly down).
#[derive(Debug, Default)]
struct FakePoster {
    calls: Mutex<Vec<Call>>,
    failures: Mutex<Vec<PostError>>,
    next_id: Mutex<u32>,
    down: Mutex<Option<Outage>>,
    refused: Mutex<u32>,
    edit_delay: Mutex<Duration>,
    /// How many of the next posts never get an answer (a half-open connection).
    hang: Mutex<u32>,
}

impl FakePoster {
    fn set_down(&self, down: Outage) {
        *self.down.lock().unwrap() = Some(down);
    }

    fn refused(&self) -> u32 {
        *self.refused.lock().unwrap()
    }

    /// Records `call`, or fails it when scripted to or when it is down.
    fn attempt(&self, call: Call) -> Result<(), PostError> {
        self.take_failure()?;
        if self.down.lock().unwrap().is_some_and(|down| down(&call)) {
            *self.refused.lock().unwrap() += 1;
            return Err(PostError::Retry {
                after: None,
                reason: "down".into(),
            });
        }
        self.calls.lock().unwrap().push(call);
        Ok(())
    }

    fn fail_next(&self, errors: Vec<PostError>) {
        *self.failures.lock().unwrap() = errors;
    }

    fn take_failure(&self) -> Result<(), PostError> {
        let mut failures = self.failures.lock().unwrap();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.remove(0))
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn id(&self) -> String {
        let mut n = self.next_id.lock().unwrap();
        *n += 1;
        format!("m{n}")
    }
}

impl Poster for FakePoster {
    async fn post(&self, place: &Place, text: &str) -> Result<MessageRef, PostError> {
        let hang = {
            let mut hang = self.hang.lock().unwrap();
            let now = *hang > 0;
            *hang = hang.saturating_sub(1);
            now
        };
        if hang {
            std::future::pending::<()>().await;
        }
        self.attempt(Call::Post(place.clone(), text.to_string()))?;
        Ok(MessageRef {
            channel: place.thread.clone().unwrap_or(place.channel.clone()),
            id: self.id(),
        })
    }

    async fn start_thread(&self, starter: &MessageRef, name: &str) -> Result<String, PostError> {
        self.attempt(Call::Thread(starter.clone(), name.to_string()))?;
        Ok(format!("t-{}", starter.id))
    }

    async fn edit(&self, message: &MessageRef, text: &str) -> Result<(), PostError> {
        // A paced platform: the edit takes a while (Slack's tier wait happens in the call).
        let delay = *self.edit_delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        self.attempt(Call::Edit(message.clone(), text.to_string()))
    }

    async fn upload_file(
        &self,
        place: &Place,
        name: &str,
        bytes: Vec<u8>,
        text: &str,
    ) -> Result<MessageRef, PostError> {
        let call = Call::Upload(place.clone(), name.into(), bytes, text.into());
        self.attempt(call)?;
        Ok(MessageRef {
            channel: place.channel.clone(),
            id: self.id(),
        })
    }
}

fn config(dir: &Path) -> Arc<Config> {
    // Only the events the tests emit: no chat worker announcing its connection attempts.
    let text = crate::config::testing::offline(&format!(
        "[storage]\ndata_dir = {:?}\n[chat]\nenabled = false\n",
        dir.to_str().unwrap()
    ));
    Arc::new(Config::from_text(&text, &dir.join("recbot.toml"), &[]).unwrap())
}

struct Bot {
    core: CoreHandle,
    events: Events,
    poster: Arc<FakePoster>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Bot {
    async fn start(dir: &Path, poster: Arc<FakePoster>, events_room: Option<&str>) -> Bot {
        Bot::start_with(dir, poster, events_room, POST_TIMEOUT).await
    }

    async fn start_with(
        dir: &Path,
        poster: Arc<FakePoster>,
        events_room: Option<&str>,
        post_timeout: Duration,
    ) -> Bot {
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (core, handle) = Core::open(config(dir), shutdown.clone()).await.unwrap();
        let events = core.events();
        let backoff = RetryPacing {
            first: Duration::from_millis(10),
            max: Duration::from_millis(50),
        };
        let delivery = Delivery::new(
            Platform::Slack,
            poster.clone(),
            handle.clone(),
            events_room.map(String::from),
            backoff,
        )
        .with_post_timeout(post_timeout);
        tracker.spawn(delivery.run(handle.subscribe()));
        core.spawn(&tracker).await.unwrap();
        Bot {
            core: handle,
            events,
            poster,
            shutdown,
            tracker,
        }
    }

    async fn add(&self, login: &str, room: &str) {
        let origin = Origin {
            room: Room::Slack(room.into()),
            user: "U1".into(),
            operator: true,
        };
        let reply = self.core.ask(&format!("add {login}"), origin).await;
        assert!(reply.ok, "{reply:?}");
    }

    async fn emit(&self, login: &str, session: Option<i64>, kind: EventKind) {
        let mut event = Event::now(Some(Login::parse(login).unwrap()), kind);
        event.session = session;
        self.events.send(event).await;
    }

    /// Waits until the poster saw `n` calls (5 s at most).
    async fn wait_calls(&self, n: usize) -> Vec<Call> {
        for _ in 0..500 {
            let calls = self.poster.calls();
            if calls.len() >= n {
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {n} calls, saw {:#?}", self.poster.calls());
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

fn live(title: &str) -> EventKind {
    EventKind::LiveDetected {
        stream_id: Some("1".into()),
        display_name: None,
        started_at: None,
        title: title.into(),
        game: None,
        viewers: None,
        latency_secs: None,
    }
}

fn progress(job: i64, sent: u64) -> EventKind {
    EventKind::UploadProgress {
        job,
        sent_bytes: sent,
        total_bytes: 100,
        bytes_per_sec: 0.0,
    }
}

fn finished(job: i64) -> EventKind {
    EventKind::UploadFinished {
        job,
        video_id: "vid".into(),
        url: "https://youtu.be/vid".into(),
    }
}

fn place(channel: &str, thread: Option<&str>) -> Place {
    Place {
        channel: channel.into(),
        thread: thread.map(String::from),
    }
}

fn posts_of(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::Post(_, text) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn routing_follows_the_room_then_the_events_room() {
    let foo = || Some(Login::parse("foo").unwrap());
    let notice = |login, kind, room: Option<Room>| Notice {
        seq: 1,
        event: Event::now(login, kind),
        room,
    };
    let slack = Some(Room::Slack("C1".into()));
    let discord = Some(Room::Discord("42".into()));
    let cases = [
        // A login added from this platform: its room, events_room or not.
        (
            notice(foo(), live("x"), slack.clone()),
            Some("C9"),
            Some("C1"),
        ),
        (notice(foo(), live("x"), slack.clone()), None, Some("C1")),
        // Added elsewhere (Discord, console) or no longer watched: events_room when set.
        (
            notice(foo(), live("x"), discord.clone()),
            Some("C9"),
            Some("C9"),
        ),
        (notice(foo(), live("x"), discord.clone()), None, None),
        (
            notice(foo(), live("x"), Some(Room::Console)),
            Some("C9"),
            Some("C9"),
        ),
        (notice(foo(), live("x"), None), Some("C9"), Some("C9")),
        // Service-wide events, even when they name a login: events_room only.
        (
            notice(
                foo(),
                EventKind::AuthRequired {
                    service: "youtube".into(),
                    reason: "expired".into(),
                    url: None,
                },
                slack.clone(),
            ),
            Some("C9"),
            Some("C9"),
        ),
        (notice(None, EventKind::ServiceStopping, None), None, None),
        (
            notice(
                None,
                EventKind::DiskLow {
                    used_percent: 91.0,
                    free_gb: 3.0,
                    stopped_recording: false,
                },
                None,
            ),
            Some("C9"),
            Some("C9"),
        ),
    ];
    for (notice, events_room, want) in cases {
        assert_eq!(
            route(&notice, Platform::Slack, events_room).as_deref(),
            want,
            "{notice:?} with events_room {events_room:?}"
        );
    }
    let n = notice(foo(), live("x"), discord);
    assert_eq!(route(&n, Platform::Discord, None).as_deref(), Some("42"));
}

#[tokio::test]
async fn one_thread_per_broadcast_progress_edited_and_the_link_also_in_the_room() {
    let dir = tempfile::tempdir().unwrap();
    let poster = Arc::new(FakePoster::default());
    let bot = Bot::start(dir.path(), poster.clone(), Some("C9")).await;
    // ServiceStarted goes to the events room.
    bot.wait_calls(1).await;
    bot.add("foo", "C1").await;
    bot.emit("foo", Some(7), live("Speedrun")).await;
    bot.emit(
        "foo",
        Some(7),
        EventKind::RecordingStarted {
            file: "foo/a.ts".into(),
            quality: "best".into(),
            part: 1,
        },
    )
    .await;
    // (Each progress is let through before the next: a burst would be folded.)
    bot.emit("foo", Some(7), progress(3, 10)).await;
    bot.wait_calls(5).await;
    bot.emit("foo", Some(7), progress(3, 60)).await;
    bot.wait_calls(6).await;
    bot.emit("foo", Some(7), finished(3)).await;
    // A second broadcast gets its own thread.
    bot.emit("foo", Some(8), live("Day 2")).await;
    let calls = bot.wait_calls(10).await;
    bot.stop().await;

    assert!(
        matches!(&calls[0], Call::Post(p, t) if *p == place("C9", None) && t.contains("started"))
    );
    let expected_thread = "t-m2";
    assert_eq!(
        calls[1],
        Call::Post(place("C1", None), "🔴 foo is live: Speedrun".into())
    );
    assert_eq!(
        calls[2],
        Call::Thread(
            MessageRef {
                channel: "C1".into(),
                id: "m2".into()
            },
            "foo — Speedrun".into()
        )
    );
    assert!(
        matches!(&calls[3], Call::Post(p, t) if *p == place("C1", Some(expected_thread)) && t.contains("recording"))
    );
    assert!(
        matches!(&calls[4], Call::Post(p, t) if *p == place("C1", Some(expected_thread)) && t.contains("10%"))
    );
    // The progress message (m4, in the thread) is edited in place.
    assert!(matches!(&calls[5], Call::Edit(m, t) if m.id == "m4" && t.contains("60%")));
    assert!(
        matches!(&calls[6], Call::Post(p, t) if *p == place("C1", Some(expected_thread)) && t.contains("youtu.be"))
    );
    assert!(
        matches!(&calls[7], Call::Post(p, t) if *p == place("C1", None) && t.contains("youtu.be"))
    );
    assert_eq!(
        calls[8],
        Call::Post(place("C1", None), "🔴 foo is live: Day 2".into())
    );
    assert!(matches!(&calls[9], Call::Thread(m, _) if m.id == "m7"));
}

#[tokio::test]
async fn rate_limits_and_outages_delay_but_never_drop() {
    let dir = tempfile::tempdir().unwrap();
    let poster = Arc::new(FakePoster::default());
    let bot = Bot::start(dir.path(), poster.clone(), Some("C9")).await;
    bot.wait_calls(1).await;
    bot.add("foo", "C1").await;
    poster.fail_next(vec![
        PostError::Retry {
            after: Some(Duration::from_millis(30)),
            reason: "429".into(),
        },
        PostError::Retry {
            after: None,
            reason: "connection refused".into(),
        },
    ]);
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 30 })
        .await;
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 60 })
        .await;
    let calls = bot.wait_calls(3).await;
    assert_eq!(
        posts_of(&calls[1..]),
        [
            "⚠ foo: no new video for 30s although the stream is live; still trying",
            "⚠ foo: no new video for 1m 00s although the stream is live; still trying"
        ]
    );
    // A permanent refusal skips that event (it stays in the log) and goes on.
    poster.fail_next(vec![PostError::Permanent("channel_not_found".into())]);
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 90 })
        .await;
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 120 })
        .await;
    let calls = bot.wait_calls(4).await;
    assert!(posts_of(&calls).last().unwrap().contains("2m 00s"));
    bot.stop().await;
}

#[tokio::test]
async fn the_outbox_is_delivered_after_a_restart_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    // First run: the platform is down the whole time.
    let down = Arc::new(FakePoster::default());
    down.fail_next(
        (0..10_000)
            .map(|_| PostError::Retry {
                after: None,
                reason: "down".into(),
            })
            .collect(),
    );
    let bot = Bot::start(dir.path(), down.clone(), None).await;
    bot.add("foo", "C1").await;
    bot.emit("foo", Some(1), live("First")).await;
    bot.emit("foo", Some(1), progress(5, 20)).await;
    bot.emit("foo", Some(1), progress(5, 40)).await;
    bot.emit("foo", Some(1), progress(5, 80)).await;
    bot.emit("foo", Some(1), finished(5)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    bot.stop().await;
    assert!(down.calls().is_empty());

    // Second run: everything arrives, in order; progress made obsolete by the finished
    // upload is folded away.
    let up = Arc::new(FakePoster::default());
    let bot = Bot::start(dir.path(), up.clone(), None).await;
    let calls = bot.wait_calls(4).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    bot.stop().await;
    assert_eq!(up.calls().len(), 4, "{:#?}", up.calls());
    assert_eq!(
        calls[0],
        Call::Post(place("C1", None), "🔴 foo is live: First".into())
    );
    assert!(matches!(&calls[1], Call::Thread(..)));
    assert!(matches!(&calls[2], Call::Post(p, t) if p.thread.is_some() && t.contains("youtu.be")));
    assert!(matches!(&calls[3], Call::Post(p, t) if p.thread.is_none() && t.contains("youtu.be")));

    // Third run: nothing is posted twice; the thread of session 1 is remembered.
    let again = Arc::new(FakePoster::default());
    let bot = Bot::start(dir.path(), again.clone(), None).await;
    bot.emit("foo", Some(1), EventKind::RecordingStalled { seconds: 5 })
        .await;
    let calls = bot.wait_calls(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    bot.stop().await;
    assert_eq!(again.calls().len(), 1, "{:#?}", again.calls());
    assert!(matches!(&calls[0], Call::Post(p, _) if p.thread.as_deref() == Some("t-m1")));
}

/// Waits until `poster` refused `n` calls (5 s at most).
async fn wait_refused(poster: &FakePoster, n: u32) {
    for _ in 0..500 {
        if poster.refused() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("expected {n} refused calls, saw {}", poster.refused());
}

/// Restarts on `dir` with the platform up, waits for the one call left over from the last
/// run, posts one more event of session 1 and returns every call (exactly two).
async fn restart_with_one_more_in_the_thread(dir: &Path) -> Vec<Call> {
    let poster = Arc::new(FakePoster::default());
    let bot = Bot::start(dir, poster.clone(), None).await;
    bot.wait_calls(1).await;
    bot.emit("foo", Some(1), EventKind::RecordingStalled { seconds: 5 })
        .await;
    bot.wait_calls(2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    bot.stop().await;
    let calls = poster.calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    calls
}

#[tokio::test]
async fn a_restart_between_the_link_in_the_thread_and_in_the_room_posts_only_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let first = Arc::new(FakePoster::default());
    let bot = Bot::start(dir.path(), first.clone(), None).await;
    bot.add("foo", "C1").await;
    bot.emit("foo", Some(1), live("First")).await;
    bot.wait_calls(2).await;
    // The room becomes unreachable after the link was posted in the thread.
    first.set_down(|call| matches!(call, Call::Post(p, _) if p.thread.is_none()));
    bot.emit("foo", Some(1), finished(5)).await;
    bot.wait_calls(3).await;
    wait_refused(&first, 1).await;
    bot.stop().await;
    let calls = first.calls();
    assert!(
        matches!(&calls[2], Call::Post(p, t) if *p == place("C1", Some("t-m1")) && t.contains("youtu.be"))
    );

    // After the restart only the room's copy is posted, then life goes on in the thread.
    let calls = restart_with_one_more_in_the_thread(dir.path()).await;
    assert!(
        matches!(&calls[0], Call::Post(p, t) if *p == place("C1", None) && t.contains("youtu.be"))
    );
    assert!(matches!(&calls[1], Call::Post(p, _) if *p == place("C1", Some("t-m1"))));
}

#[tokio::test]
async fn a_restart_between_the_first_message_and_its_thread_does_not_post_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let first = Arc::new(FakePoster::default());
    first.set_down(|call| matches!(call, Call::Thread(..)));
    let bot = Bot::start(dir.path(), first.clone(), None).await;
    bot.add("foo", "C1").await;
    bot.emit("foo", Some(1), live("First")).await;
    bot.wait_calls(1).await;
    wait_refused(&first, 1).await;
    bot.stop().await;
    assert_eq!(first.calls().len(), 1);

    // The thread is started from the message the first run posted.
    let calls = restart_with_one_more_in_the_thread(dir.path()).await;
    assert_eq!(
        calls[0],
        Call::Thread(
            MessageRef {
                channel: "C1".into(),
                id: "m1".into()
            },
            "foo — First".into()
        )
    );
    assert!(matches!(&calls[1], Call::Post(p, _) if *p == place("C1", Some("t-m1"))));
}

#[tokio::test]
async fn a_burst_of_progress_while_an_edit_is_paced_becomes_one_edit() {
    let dir = tempfile::tempdir().unwrap();
    let poster = Arc::new(FakePoster::default());
    *poster.edit_delay.lock().unwrap() = Duration::from_millis(500);
    let bot = Bot::start(dir.path(), poster.clone(), None).await;
    bot.add("foo", "C1").await;
    bot.emit("foo", None, progress(9, 1)).await;
    bot.wait_calls(1).await;
    for sent in 2..=30 {
        bot.emit("foo", None, progress(9, sent)).await;
    }
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 5 })
        .await;
    let mut calls = bot.wait_calls(3).await;
    for _ in 0..500 {
        if posts_of(&calls).len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        calls = poster.calls();
    }
    bot.stop().await;
    let edits: Vec<&String> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Edit(_, text) => Some(text),
            _ => None,
        })
        .collect();
    assert!(edits.len() < 10, "{edits:#?}");
    assert!(edits.last().unwrap().contains("30%"), "{edits:#?}");
    assert!(posts_of(&calls).last().unwrap().contains("no new video"));
}

#[test]
fn reconnect_pauses_grow_with_jitter_and_start_over_after_a_healthy_run() {
    let backoff = RetryPacing {
        first: Duration::from_millis(100),
        max: Duration::from_millis(400),
    };
    let mut pacer = backoff.pacer();
    let pauses: Vec<Duration> = (0..5).map(|_| pacer.pause(false)).collect();
    let bases = [100, 200, 400, 400, 400];
    for (pause, base) in pauses.iter().zip(bases) {
        let base = Duration::from_millis(base);
        assert!(*pause >= base / 2 && *pause <= base, "{pauses:?}");
    }
    assert!(pacer.pause(true) <= Duration::from_millis(100));
    let jittered: std::collections::HashSet<Duration> =
        (0..20).map(|_| jitter(Duration::from_secs(1))).collect();
    assert!(jittered.len() > 1, "jitter varies");
}

/// The state database of a test bot, opened beside the running core.
async fn side_store(dir: &Path) -> crate::core::store::Store {
    crate::core::store::Store::open(&dir.join("recbot.sqlite"))
        .await
        .unwrap()
}

async fn sql(store: &crate::core::store::Store, statement: &str) {
    sqlx::query(statement)
        .execute(&store.pool_for_tests())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_store_error_delays_delivery_but_does_not_stop_it() {
    let dir = tempfile::tempdir().unwrap();
    let poster = Arc::new(FakePoster::default());
    let bot = Bot::start(dir.path(), poster.clone(), None).await;
    bot.add("foo", "C1").await;
    // The delivery cannot be recorded for a while (e.g. a full disk).
    let side = side_store(dir.path()).await;
    sql(
        &side,
        "ALTER TABLE outbox_cursors RENAME TO outbox_cursors_away",
    )
    .await;
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 5 })
        .await;
    bot.wait_calls(1).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    sql(
        &side,
        "ALTER TABLE outbox_cursors_away RENAME TO outbox_cursors",
    )
    .await;
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 10 })
        .await;
    let calls = bot.wait_calls(2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    bot.stop().await;
    // Posted once each: the retry records the delivery, it does not post again.
    let posts = posts_of(&poster.calls());
    assert_eq!(posts.len(), 2, "{calls:#?}");
    assert!(
        posts[0].contains("5s") && posts[1].contains("10s"),
        "{posts:#?}"
    );
    let cursor = side.outbox_cursor("slack").await.unwrap().unwrap();
    let last = side
        .last_event_id("RecordingStalled")
        .await
        .unwrap()
        .unwrap();
    assert!(cursor >= last, "cursor {cursor}, last notice {last}");
    side.close().await;
}

#[tokio::test]
async fn an_unreadable_row_in_the_log_is_passed_over_and_what_follows_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let first = Arc::new(FakePoster::default());
    let bot = Bot::start(dir.path(), first.clone(), None).await;
    bot.add("foo", "C1").await;
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 5 })
        .await;
    bot.wait_calls(1).await;
    bot.stop().await;

    // While recbot is down: a row an older recbot wrote for an infinite duration (JSON null),
    // then a notice still to be posted.
    let side = side_store(dir.path()).await;
    sql(
        &side,
        r#"INSERT INTO events (at, kind, name, payload) VALUES ('2026-01-01T00:00:00Z',
           'RecordingFinished', 'foo', '{"at":"2026-01-01T00:00:00Z","login":"foo","kind":
           {"type":"RecordingFinished","parts":1,"duration_secs":null,"bytes":1,"gaps":0}}')"#,
    )
    .await;
    let after = Event::now(
        Some(Login::parse("foo").unwrap()),
        EventKind::RecordingStalled { seconds: 7 },
    );
    side.append_event(&after).await.unwrap();
    side.close().await;

    let second = Arc::new(FakePoster::default());
    let bot = Bot::start(dir.path(), second.clone(), None).await;
    let calls = bot.wait_calls(1).await;
    assert!(posts_of(&calls)[0].contains("7s"), "{calls:#?}");
    // A non-finite number in a new event is stored as 0, so it does not happen again.
    bot.emit(
        "foo",
        None,
        EventKind::RecordingFinished {
            parts: 1,
            duration_secs: f64::INFINITY,
            bytes: 1,
            gaps: 0,
        },
    )
    .await;
    bot.wait_calls(2).await;
    let status = bot.core.ask("status foo", Origin::console()).await;
    bot.stop().await;
    assert!(status.ok, "{status:?}");
    assert!(status.text.contains("Recent:"), "{}", status.text);
    let side = side_store(dir.path()).await;
    let foo = Login::parse("foo").unwrap();
    let stored = side.recent_events(Some(&foo), 1).await.unwrap();
    assert!(
        matches!(stored[0].kind, EventKind::RecordingFinished { duration_secs, .. } if duration_secs == 0.0),
        "{stored:?}"
    );
    side.close().await;
}

/// Waits until the stored cursor of `slack` reaches `seq` (5 s at most).
async fn wait_stored_cursor(dir: &Path, seq: i64) -> i64 {
    let side = side_store(dir).await;
    let mut cursor = None;
    for _ in 0..500 {
        cursor = side.outbox_cursor("slack").await.unwrap();
        if cursor.is_some_and(|c| c >= seq) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    side.close().await;
    cursor.unwrap_or(0)
}

#[tokio::test]
async fn notices_for_no_room_here_move_the_stored_cursor_past_them() {
    let dir = tempfile::tempdir().unwrap();
    // No events_room: service-wide events and events without a login have no Slack room.
    let poster = Arc::new(FakePoster::default());
    let bot = Bot::start(dir.path(), poster.clone(), None).await;
    for seconds in 1..=5 {
        let event = Event::now(None, EventKind::RecordingStalled { seconds });
        bot.events.send(event).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    bot.stop().await;
    let side = side_store(dir.path()).await;
    let last = side
        .last_event_id("ServiceStopping")
        .await
        .unwrap()
        .unwrap();
    side.close().await;

    // The next start pages through them once and stores how far it got.
    let bot = Bot::start(dir.path(), poster.clone(), None).await;
    let cursor = wait_stored_cursor(dir.path(), last).await;
    bot.stop().await;
    assert!(cursor >= last, "stored cursor {cursor}, log up to {last}");
    assert!(poster.calls().is_empty(), "{:#?}", poster.calls());
}

#[tokio::test]
async fn a_refused_token_pauses_posting_and_skips_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let poster = Arc::new(FakePoster::default());
    let bot = Bot::start(dir.path(), poster.clone(), None).await;
    bot.add("foo", "C1").await;
    // The token was revoked; an operator fixes it after a while.
    poster.fail_next(vec![
        PostError::Unauthorized("token_revoked".into()),
        PostError::Unauthorized("token_revoked".into()),
        PostError::Unauthorized("invalid_auth".into()),
    ]);
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 5 })
        .await;
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 10 })
        .await;
    let calls = bot.wait_calls(2).await;
    bot.stop().await;
    let posts = posts_of(&calls);
    assert!(
        posts[0].contains("5s") && posts[1].contains("10s"),
        "{posts:#?}"
    );
}

#[tokio::test]
async fn a_post_without_an_answer_is_abandoned_and_tried_again() {
    let dir = tempfile::tempdir().unwrap();
    let poster = Arc::new(FakePoster::default());
    *poster.hang.lock().unwrap() = 1;
    let timeout = Duration::from_millis(100);
    let bot = Bot::start_with(dir.path(), poster.clone(), None, timeout).await;
    bot.add("foo", "C1").await;
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 5 })
        .await;
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 10 })
        .await;
    let calls = bot.wait_calls(2).await;
    bot.stop().await;
    let posts = posts_of(&calls);
    assert!(
        posts[0].contains("5s") && posts[1].contains("10s"),
        "{posts:#?}"
    );
}

#[tokio::test]
async fn a_post_without_an_answer_does_not_hold_up_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let poster = Arc::new(FakePoster::default());
    *poster.hang.lock().unwrap() = u32::MAX;
    let bot = Bot::start_with(dir.path(), poster.clone(), None, Duration::from_secs(3600)).await;
    bot.add("foo", "C1").await;
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 5 })
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(Duration::from_secs(5), bot.stop())
        .await
        .expect("delivery stops with the core, hung post or not");
}

#[tokio::test]
async fn while_the_token_is_refused_the_stored_cursor_stays_before_the_notice() {
    let dir = tempfile::tempdir().unwrap();
    let refused = Arc::new(FakePoster::default());
    let bot = Bot::start(dir.path(), refused.clone(), None).await;
    bot.add("foo", "C1").await;
    refused.fail_next(vec![PostError::Unauthorized("token_revoked".into()); 1000]);
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 5 })
        .await;
    // Tried (and refused) a few times, then recbot is stopped while still refused.
    for _ in 0..500 {
        if refused.failures.lock().unwrap().len() <= 997 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused.failures.lock().unwrap().len() <= 997);
    bot.stop().await;
    assert!(refused.calls().is_empty(), "{:#?}", refused.calls());
    let side = side_store(dir.path()).await;
    let notice = side
        .last_event_id("RecordingStalled")
        .await
        .unwrap()
        .unwrap();
    let cursor = side.outbox_cursor("slack").await.unwrap().unwrap_or(0);
    side.close().await;
    assert!(
        cursor < notice,
        "stored cursor {cursor}, refused notice {notice}"
    );

    // With the token fixed, the next start posts it.
    let fixed = Arc::new(FakePoster::default());
    let bot = Bot::start(dir.path(), fixed.clone(), None).await;
    let calls = bot.wait_calls(1).await;
    bot.stop().await;
    assert!(posts_of(&calls)[0].contains("5s"), "{calls:#?}");
}

#[tokio::test]
async fn a_platform_call_is_given_up_after_30_seconds_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (core, handle) = Core::open(config(dir.path()), CancellationToken::new())
        .await
        .unwrap();
    let delivery = Delivery::new(
        Platform::Slack,
        Arc::new(FakePoster::default()),
        handle,
        None,
        RetryPacing::default(),
    );
    // Only this call's timers run on the stopped clock (the core is not running).
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    let hung = std::future::pending::<Result<(), PostError>>();
    let outcome = tokio::time::timeout(Duration::from_secs(60), delivery.call(hung)).await;
    let took = start.elapsed();
    tokio::time::resume();
    drop(core);
    // (The timer wheel counts whole milliseconds.)
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_millis(30_010),
        "{took:?}"
    );
    assert!(
        matches!(outcome, Ok(Err(Failed::Post(PostError::Retry { .. })))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn notices_for_no_room_here_move_the_stored_cursor_while_running_too() {
    let dir = tempfile::tempdir().unwrap();
    let poster = Arc::new(FakePoster::default());
    let bot = Bot::start(dir.path(), poster.clone(), None).await;
    // Delivery has read the log (ServiceStarted) and waits for live notices.
    wait_stored_cursor(dir.path(), 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    // More than a page of notices with no Slack room, as they happen.
    let many = CATCH_UP_PAGE + 5;
    for seconds in 1..=many as u64 {
        let event = Event::now(None, EventKind::RecordingStalled { seconds });
        bot.events.send(event).await;
    }
    // Stored after a page of them, without waiting for a restart or a post.
    let cursor = wait_stored_cursor(dir.path(), CATCH_UP_PAGE).await;
    bot.stop().await;
    assert!(cursor >= CATCH_UP_PAGE, "stored cursor {cursor}");
    assert!(poster.calls().is_empty(), "{:#?}", poster.calls());
}

fn summary(path: &Path) -> EventKind {
    EventKind::SummaryReady {
        path: path.to_path_buf(),
        samples: 3,
        chat_lines: 40,
    }
}

#[tokio::test]
async fn the_summary_chart_is_posted_in_its_thread_and_retried_after_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("a.summary.png");
    std::fs::write(&chart, b"\x89PNG chart").unwrap();
    let poster = Arc::new(FakePoster::default());
    let bot = Bot::start(dir.path(), poster.clone(), None).await;
    bot.add("foo", "C1").await;
    bot.emit("foo", Some(1), live("First")).await;
    bot.wait_calls(2).await;
    // The platform fails the upload once (a 500): tried again, posted once.
    poster.fail_next(vec![PostError::Retry {
        after: None,
        reason: "HTTP 500".into(),
    }]);
    bot.emit("foo", Some(1), summary(&chart)).await;
    let calls = bot.wait_calls(3).await;
    // A chart deleted meanwhile is refused for good: the next notice still goes out.
    bot.emit("foo", Some(1), summary(&dir.path().join("gone.png")))
        .await;
    bot.emit("foo", Some(1), EventKind::RecordingStalled { seconds: 5 })
        .await;
    let after = bot.wait_calls(4).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    bot.stop().await;
    let Call::Upload(place, name, bytes, text) = &calls[2] else {
        panic!("{calls:#?}")
    };
    assert_eq!(place.thread.as_deref(), Some("t-m1"));
    assert_eq!(name, "a.summary.png");
    assert_eq!(bytes, b"\x89PNG chart");
    assert!(
        text.contains("summary") && text.contains("40 chat lines"),
        "{text}"
    );
    assert_eq!(poster.calls().len(), 4, "{:#?}", poster.calls());
    assert!(matches!(&after[3], Call::Post(_, t) if t.contains("no new video")));
}

#[tokio::test]
async fn a_summary_chart_not_posted_before_a_restart_is_posted_after_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("a.summary.png");
    std::fs::write(&chart, b"png").unwrap();
    // First run: the thread opens, then uploads fail until the service stops.
    let poster = Arc::new(FakePoster::default());
    let bot = Bot::start(dir.path(), poster.clone(), None).await;
    bot.add("foo", "C1").await;
    bot.emit("foo", Some(1), live("First")).await;
    bot.wait_calls(2).await;
    poster.set_down(|c| matches!(c, Call::Upload(..)));
    bot.emit("foo", Some(1), summary(&chart)).await;
    wait_refused(&poster, 1).await;
    bot.stop().await;
    // Second run: replayed from the outbox into the same thread, once.
    let poster = Arc::new(FakePoster::default());
    let bot = Bot::start(dir.path(), poster.clone(), None).await;
    let calls = bot.wait_calls(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    bot.stop().await;
    assert_eq!(poster.calls().len(), 1, "{:#?}", poster.calls());
    assert!(
        matches!(&calls[0], Call::Upload(p, n, ..) if p.thread.as_deref() == Some("t-m1") && n == "a.summary.png")
    );
    // Third run: nothing again.
    let poster = Arc::new(FakePoster::default());
    let bot = Bot::start(dir.path(), poster.clone(), None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    bot.stop().await;
    assert!(poster.calls().is_empty(), "{:#?}", poster.calls());
}
