//! The store's test suite, independent of the database engine: every function takes a
//! [`Harness`] that opens a [`Store`] on one backend. Each backend runs all of it with
//! [`store_suite!`] (SQLite in `sqlite/mod.rs`); a new backend adds its harness and one line.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use recbot_commands::{Login, PostMode, Quality, Source};

use super::{
    clamp_non_finite, JobState, NewUploadJob, PostState, PostedMessage, SessionTotals, Store,
    StoredToken, StreamSample, WaitReason, Watch, EVENTSUB_CONDUIT,
};
use crate::event::{Event, EventKind, Room};
use crate::secret::Secret;

/// A database for one test, on one backend.
#[async_trait::async_trait]
pub(crate) trait Harness: Send + Sync {
    /// A store on the test's database, its schema up to date. Opening again (after `close`)
    /// gives the same data, as after a restart.
    async fn open(&self) -> Store;

    /// The schema version the backend's newest migration brings.
    fn latest_schema_version(&self) -> i64;

    /// Writes an event-log row as given, past [`super::EventLog::append_event`]'s checks: what
    /// an older recbot or a damaged database leaves.
    async fn write_raw_event(
        &self,
        store: &Store,
        at: DateTime<Utc>,
        kind: &str,
        name: &str,
        payload: &str,
    );
}

/// One `#[tokio::test]` per suite function, on the harness `$harness` (an expression making a
/// fresh one for each test). A suite function left out of this list is never used, which
/// clippy's `-D warnings` refuses.
macro_rules! store_suite {
    ($harness:expr) => {
        $crate::core::store::suite::store_suite!(@each $harness;
            watches_survive_reopening,
            events_are_appended_in_order,
            non_finite_floats_are_clamped_or_refused_never_stored_unreadable,
            an_unreadable_row_is_skipped_by_every_reader,
            finds_the_newest_event_of_a_kind,
            cursor_and_messages_survive_reopening_and_never_go_back,
            events_after_pages_through_the_log,
            sessions_and_parts_round_trip,
            tokens_round_trip_and_never_print,
            jobs_are_queued_once_and_picked_in_order,
            the_quota_ledger_never_goes_down,
            a_watch_added_again_keeps_its_room_and_who_added_it,
            a_session_keeps_its_first_end,
            a_token_set_is_replaced_whole,
            a_job_waiting_for_its_chat_file_is_due_only_when_released_or_its_wait_ends,
            a_pending_vod_fill_survives_reopening_until_removed,
            an_upload_waiting_for_post_processing_is_due_only_once_released,
            settings_are_replaced_and_survive_reopening,
            sessions_are_listed_newest_first_by_login_and_start,
            stream_samples_are_kept_per_session_in_time_order,
            text_with_a_nul_character_is_stored_with_a_replacement_character,
            a_login_is_leased_to_one_node_at_a_time_with_a_growing_fence,
            a_node_that_leaves_hands_its_logins_over_at_once,
            a_node_takes_only_its_own_upload_jobs_and_those_of_no_node,
        );
    };
    (@each $harness:expr; $($test:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                let harness = $harness;
                $crate::core::store::suite::$test(&harness).await;
            }
        )+
    };
}
pub(crate) use store_suite;

/// The time now in whole microseconds: PostgreSQL keeps no finer, and times read back are
/// compared with the ones written.
fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

fn watch(name: &str) -> Watch {
    Watch {
        name: Login::parse(name).unwrap(),
        source: Source::Twitch,
        quality: Quality::BEST,
        upload: true,
        chat: false,
        post: None,
        display_name: None,
        room: Room::Slack("C1".into()),
        added_by: "U1".into(),
        added_at: now(),
    }
}

fn new_job(path: &str) -> NewUploadJob {
    NewUploadJob {
        login: Some(Login::parse("foo").unwrap()),
        session: Some(3),
        path: PathBuf::from(path),
        sidecar: Some(PathBuf::from(path).with_extension("json")),
        total_bytes: 1000,
        node: None,
    }
}

pub(crate) async fn watches_survive_reopening(h: &dyn Harness) {
    let store = h.open().await;
    let latest = h.latest_schema_version();
    assert_eq!(store.schema_version().await.unwrap(), latest);
    store.put_watch(&watch("foo")).await.unwrap();
    let mut hls = watch("studio");
    hls.source = Source::Hls {
        url: "https://example.com/a.m3u8".into(),
    };
    store.put_watch(&hls).await.unwrap();
    let chzzk = Watch {
        name: Login::from_stored("chzzk:c68b8ef525fb3d2fa146344d84991753").unwrap(),
        source: Source::Chzzk,
        display_name: Some("치지직".into()),
        ..watch("foo")
    };
    store.put_watch(&chzzk).await.unwrap();
    store.close().await;

    let store = h.open().await;
    let mut all = store.watches().await.unwrap();
    assert_eq!(all.len(), 3);
    // By name: `chzzk:…` before `foo`.
    assert_eq!(all.remove(0), chzzk);
    assert_eq!(all[0].name.as_str(), "foo");
    assert_eq!(all[0].room, Room::Slack("C1".into()));
    assert_eq!(all[0].display_name, None);
    assert!(!all[0].chat);
    assert_eq!(all[1].source, hls.source);
    assert!(store.delete_watch(&all[0].name).await.unwrap());
    assert!(!store.delete_watch(&all[0].name).await.unwrap());
    assert!(store.watch(&all[0].name).await.unwrap().is_none());
}

pub(crate) async fn events_are_appended_in_order(h: &dyn Harness) {
    let store = h.open().await;
    let foo = Login::parse("foo").unwrap();
    for i in 0..5 {
        let kind = crate::event::EventKind::ServiceStarted {
            version: i.to_string(),
            watching: i,
        };
        let login = (i % 2 == 0).then(|| foo.clone());
        store.append_event(&Event::now(login, kind)).await.unwrap();
    }
    let all = store.recent_events(None, 3).await.unwrap();
    assert_eq!(all.len(), 3);
    let of_foo = store.recent_events(Some(&foo), 10).await.unwrap();
    assert_eq!(of_foo.len(), 3);
    assert!(of_foo.iter().all(|e| e.login.as_ref() == Some(&foo)));
    let newest_of_foo = store.recent_events(Some(&foo), 2).await.unwrap();
    assert_eq!(newest_of_foo, of_foo[1..]);
}

pub(crate) async fn non_finite_floats_are_clamped_or_refused_never_stored_unreadable(
    h: &dyn Harness,
) {
    let store = h.open().await;
    let foo = Login::parse("foo").unwrap();
    let finished = |duration_secs| EventKind::RecordingFinished {
        parts: 1,
        duration_secs,
        bytes: 10,
        gaps: 0,
    };
    // Written as-is, an infinite duration becomes `null` and the row cannot be read.
    let bad = Event::now(Some(foo.clone()), finished(f64::INFINITY));
    assert!(store.append_event(&bad).await.is_err());
    // Clamped, it is stored and reads back.
    let mut clamped = bad.clone();
    assert!(clamp_non_finite(&mut clamped));
    assert_eq!(clamped.kind, finished(0.0));
    store.append_event(&clamped).await.unwrap();
    for kind in [
        EventKind::DiskLow {
            used_percent: f64::NAN,
            free_gb: f64::NEG_INFINITY,
            stopped_recording: false,
        },
        EventKind::UploadProgress {
            job: 1,
            sent_bytes: 1,
            total_bytes: 2,
            bytes_per_sec: f64::NAN,
        },
        EventKind::LiveDetected {
            stream_id: None,
            display_name: None,
            title: "t".into(),
            game: None,
            viewers: None,
            started_at: None,
            latency_secs: Some(f64::INFINITY),
        },
    ] {
        let mut event = Event::now(Some(foo.clone()), kind);
        assert!(clamp_non_finite(&mut event), "{event:?}");
        assert!(!clamp_non_finite(&mut event), "clamped once");
        store.append_event(&event).await.unwrap();
    }
    assert_eq!(store.recent_events(Some(&foo), 10).await.unwrap().len(), 4);
}

pub(crate) async fn an_unreadable_row_is_skipped_by_every_reader(h: &dyn Harness) {
    let store = h.open().await;
    let foo = Login::parse("foo").unwrap();
    let stalled = |seconds| Event::now(Some(foo.clone()), EventKind::RecordingStalled { seconds });
    store.append_event(&stalled(1)).await.unwrap();
    // What an older recbot wrote for an infinite duration.
    h.write_raw_event(
        &store,
        now(),
        "RecordingFinished",
        "foo",
        r#"{"at":"2026-01-01T00:00:00Z","login":"foo","kind":{"type":"RecordingFinished","parts":1,"duration_secs":null,"bytes":1,"gaps":0}}"#,
    )
    .await;
    store.append_event(&stalled(3)).await.unwrap();

    let recent = store.recent_events(Some(&foo), 10).await.unwrap();
    let kinds: Vec<EventKind> = recent.into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [stalled(1).kind, stalled(3).kind]);
    assert_eq!(store.recent_events(None, 10).await.unwrap().len(), 2);
    // The outbox's page goes past it.
    let page = store.events_after(0, 2).await.unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.scanned_to, Some(2), "the bad row counts as scanned");
    let page = store.events_after(1, 1).await.unwrap();
    assert!(page.events.is_empty());
    assert_eq!(page.scanned_to, Some(2));
    let page = store.events_after(2, 10).await.unwrap();
    assert_eq!(
        page.events.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [3]
    );
}

pub(crate) async fn finds_the_newest_event_of_a_kind(h: &dyn Harness) {
    let store = h.open().await;
    assert!(store
        .last_event_of_kind("ChatDisconnected")
        .await
        .unwrap()
        .is_none());
    for reason in ["first", "second"] {
        let kind = EventKind::ChatDisconnected {
            reason: reason.into(),
        };
        store.append_event(&Event::now(None, kind)).await.unwrap();
        store
            .append_event(&Event::now(None, EventKind::ChatDropped { lines: 1 }))
            .await
            .unwrap();
    }
    let last = store
        .last_event_of_kind("ChatDisconnected")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        last.kind,
        EventKind::ChatDisconnected {
            reason: "second".into()
        }
    );
}

pub(crate) async fn cursor_and_messages_survive_reopening_and_never_go_back(h: &dyn Harness) {
    let store = h.open().await;
    assert_eq!(store.outbox_cursor("slack").await.unwrap(), None);
    let thread = PostedMessage {
        key: "thread:C1:7".into(),
        channel: "C1".into(),
        id: "1700000000.000100".into(),
    };
    store
        .outbox_delivered("slack", 5, std::slice::from_ref(&thread))
        .await
        .unwrap();
    store.outbox_delivered("slack", 3, &[]).await.unwrap();
    store.close().await;

    let store = h.open().await;
    assert_eq!(store.outbox_cursor("slack").await.unwrap(), Some(5));
    assert_eq!(store.outbox_cursor("discord").await.unwrap(), None);
    assert_eq!(
        store.outbox_messages("slack").await.unwrap(),
        vec![thread.clone()]
    );
    assert!(store.outbox_messages("discord").await.unwrap().is_empty());
    // Webhooks and e-mail have cursors of their own, by name.
    store.outbox_delivered("webhook:ops", 9, &[]).await.unwrap();
    assert_eq!(store.outbox_cursor("webhook:ops").await.unwrap(), Some(9));
    assert_eq!(store.outbox_cursor("webhook:other").await.unwrap(), None);
    assert_eq!(store.outbox_cursor("slack").await.unwrap(), Some(5));

    // A step of notice 6 survives a restart until the cursor passes it.
    let step = PostedMessage {
        key: PostedMessage::step_key(6, "thread"),
        channel: "C1".into(),
        id: "1700000000.000200".into(),
    };
    store
        .outbox_posted("slack", std::slice::from_ref(&step))
        .await
        .unwrap();
    store.close().await;
    let store = h.open().await;
    assert_eq!(store.outbox_cursor("slack").await.unwrap(), Some(5));
    assert_eq!(
        store.outbox_messages("slack").await.unwrap(),
        vec![step, thread.clone()]
    );
    store.outbox_delivered("slack", 6, &[]).await.unwrap();
    assert_eq!(store.outbox_messages("slack").await.unwrap(), vec![thread]);
}

pub(crate) async fn events_after_pages_through_the_log(h: &dyn Harness) {
    let store = h.open().await;
    assert_eq!(store.newest_event_id().await.unwrap(), 0);
    for _ in 0..5 {
        store
            .append_event(&Event::now(None, EventKind::ServiceStopping))
            .await
            .unwrap();
    }
    let page = store.events_after(2, 2).await.unwrap();
    let ids: Vec<i64> = page.events.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [3, 4]);
    assert_eq!(page.scanned_to, Some(4));
    let page = store.events_after(5, 2).await.unwrap();
    assert!(page.events.is_empty());
    assert_eq!(page.scanned_to, None);
    assert_eq!(
        store.last_event_id("ServiceStopping").await.unwrap(),
        Some(5)
    );
    assert_eq!(store.last_event_id("ServiceStarted").await.unwrap(), None);
    assert_eq!(store.newest_event_id().await.unwrap(), 5);
}

pub(crate) async fn sessions_and_parts_round_trip(h: &dyn Harness) {
    let store = h.open().await;
    let now = now();
    let s = store
        .create_session("foo", Some("42"), "hi", Some("Chess"), now)
        .await
        .unwrap();
    assert_eq!(store.open_sessions().await.unwrap().len(), 1);
    store
        .start_part(s, 1, Path::new("/r/a.ts"), now)
        .await
        .unwrap();
    store
        .start_part(s, 2, Path::new("/r/b.ts"), now)
        .await
        .unwrap();
    assert_eq!(store.parts_in_progress().await.unwrap().len(), 2);
    store
        .finish_part(s, 1, Path::new("/r/a.ts"), 100, 2.0, 1, false, now)
        .await
        .unwrap();
    // A recovered part that was never recorded as started.
    store
        .finish_part(s, 3, Path::new("/r/c.ts"), 50, 1.0, 0, true, now)
        .await
        .unwrap();
    store.fail_part(s, 2, now).await.unwrap();
    assert!(store.parts_in_progress().await.unwrap().is_empty());
    let totals = store.session_totals(s).await.unwrap();
    assert_eq!(
        totals,
        SessionTotals {
            parts: 2,
            bytes: 150,
            duration_secs: 3.0,
            gaps: 1
        }
    );
    let states: Vec<String> = store
        .parts_of(s)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.state)
        .collect();
    assert_eq!(states, ["finished", "failed", "finished"]);
    store.update_session_title(s, "new", None).await.unwrap();
    let unknown = store
        .create_session("bar", None, "t", None, now)
        .await
        .unwrap();
    store.learn_session_stream_id(unknown, "77").await.unwrap();
    store.learn_session_stream_id(unknown, "78").await.unwrap();
    store.learn_session_stream_id(s, "99").await.unwrap();
    let learnt = store.session(unknown).await.unwrap().unwrap();
    assert_eq!(learnt.stream_id.as_deref(), Some("77"));
    assert_eq!(
        store
            .session(s)
            .await
            .unwrap()
            .unwrap()
            .stream_id
            .as_deref(),
        Some("42")
    );
    store.end_session(unknown, now).await.unwrap();
    store.end_session(s, now).await.unwrap();
    let row = store.session(s).await.unwrap().unwrap();
    assert_eq!(row.title.as_deref(), Some("new"));
    assert!(row.ended_at.is_some());
    assert!(store.open_sessions().await.unwrap().is_empty());
    assert_eq!(store.sessions_of("foo", 5).await.unwrap().len(), 1);
}

pub(crate) async fn tokens_round_trip_and_never_print(h: &dyn Harness) {
    let store = h.open().await;
    assert!(store.token("twitch").await.unwrap().is_none());
    let token = StoredToken {
        access_token: Secret::new("AT-secret"),
        refresh_token: Some(Secret::new("RT-secret")),
        expires_at: Some(now()),
        scopes: "chat:read".into(),
        client_id: Some("ue6666".into()),
        account: Some("viewer".into()),
    };
    store.put_token("twitch", &token).await.unwrap();
    let back = store.token("twitch").await.unwrap().unwrap();
    assert_eq!(back.access_token.expose(), "AT-secret");
    assert_eq!(back.refresh_token.as_ref().unwrap().expose(), "RT-secret");
    assert_eq!(back.client_id.as_deref(), Some("ue6666"));
    assert_eq!(back.account.as_deref(), Some("viewer"));
    assert!(!format!("{back:?}").contains("secret"));
    assert!(store.delete_token("twitch").await.unwrap());
    assert!(store.token("twitch").await.unwrap().is_none());
}

pub(crate) async fn jobs_are_queued_once_and_picked_in_order(h: &dyn Harness) {
    let store = h.open().await;
    let a = store
        .insert_upload_job(&new_job("/r/a.ts"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.insert_upload_job(&new_job("/r/a.ts")).await.unwrap(),
        None
    );
    let b = store
        .insert_upload_job(&new_job("/r/b.ts"))
        .await
        .unwrap()
        .unwrap();
    let now = now();
    assert_eq!(
        store.next_due_upload(now, None).await.unwrap().unwrap().id,
        a
    );

    // A deferred job is not due before its time; an interrupted upload goes first.
    let mut job_a = store.upload_job(a).await.unwrap().unwrap();
    job_a.state = JobState::Deferred;
    job_a.wait_reason = Some(WaitReason::Quota);
    job_a.next_attempt_at = Some(now + Duration::hours(1));
    store.save_upload_job(&job_a).await.unwrap();
    assert_eq!(
        store.next_due_upload(now, None).await.unwrap().unwrap().id,
        b
    );
    assert_eq!(
        store.upload_hold(now).await.unwrap(),
        Some((job_a.next_attempt_at.unwrap(), WaitReason::Quota))
    );
    assert_eq!(
        store.next_upload_wakeup(None).await.unwrap(),
        job_a.next_attempt_at
    );
    let later = now + Duration::hours(2);
    assert_eq!(
        store
            .next_due_upload(later, None)
            .await
            .unwrap()
            .unwrap()
            .id,
        b
    );

    let mut job_b = store.upload_job(b).await.unwrap().unwrap();
    job_b.state = JobState::Paused;
    store.save_upload_job(&job_b).await.unwrap();
    assert_eq!(store.next_due_upload(now, None).await.unwrap(), None);
    assert_eq!(
        store.requeue_upload_jobs(JobState::Paused).await.unwrap(),
        1
    );
    let back = store.upload_job(b).await.unwrap().unwrap();
    assert_eq!(back.state, JobState::Queued);
    assert_eq!(back.login.unwrap().as_str(), "foo");
    assert_eq!(back.session, Some(3));

    job_b.state = JobState::Finished;
    job_b.video_id = Some("vid".into());
    store.save_upload_job(&job_b).await.unwrap();
    let listed = store.upload_jobs(10).await.unwrap();
    assert_eq!(listed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![a, b]);
    assert_eq!(listed[1].video_id.as_deref(), Some("vid"));
    // `/metrics` counts them by state.
    let mut counts = store.upload_counts().await.unwrap();
    counts.sort_by_key(|(state, _)| state.as_str());
    assert_eq!(
        counts,
        vec![(JobState::Deferred, 1), (JobState::Finished, 1)]
    );
}

pub(crate) async fn the_quota_ledger_never_goes_down(h: &dyn Harness) {
    let store = h.open().await;
    let day = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
    assert_eq!(store.quota_used(day).await.unwrap(), 0);
    store.set_quota_used(day, 2).await.unwrap();
    store.set_quota_used(day, 1).await.unwrap();
    assert_eq!(store.quota_used(day).await.unwrap(), 2);
    store.release_quota(day).await.unwrap();
    assert_eq!(store.quota_used(day).await.unwrap(), 1);
    store.release_quota(day).await.unwrap();
    store.release_quota(day).await.unwrap();
    assert_eq!(store.quota_used(day).await.unwrap(), 0);
    assert_eq!(store.quota_used(day.succ_opt().unwrap()).await.unwrap(), 0);
}

// Contracts the traits document that the tests above do not reach. Times are whole seconds:
// not every engine keeps nanoseconds.

/// `put_watch` on a watched login changes its options, not where or by whom it was added.
pub(crate) async fn a_watch_added_again_keeps_its_room_and_who_added_it(h: &dyn Harness) {
    let store = h.open().await;
    let mut first = watch("foo");
    first.added_at = Utc.with_ymd_and_hms(2026, 3, 8, 12, 0, 0).unwrap();
    store.put_watch(&first).await.unwrap();
    let again = Watch {
        source: Source::Hls {
            url: "https://example.com/b.m3u8".into(),
        },
        quality: Quality::parse("720p").unwrap(),
        upload: false,
        chat: true,
        post: Some(recbot_commands::PostMode::Remux),
        display_name: Some("치지직 채널\0".into()),
        room: Room::Slack("C2".into()),
        added_by: "U2".into(),
        added_at: first.added_at + Duration::hours(1),
        ..first.clone()
    };
    store.put_watch(&again).await.unwrap();
    let stored = store.watch(&first.name).await.unwrap().unwrap();
    assert_eq!(stored.display_name.as_deref(), Some("치지직 채널\u{FFFD}"));
    assert_eq!(
        stored,
        Watch {
            display_name: stored.display_name.clone(),
            room: first.room.clone(),
            added_by: first.added_by.clone(),
            added_at: first.added_at,
            ..again
        }
    );
    assert_eq!(store.watches().await.unwrap().len(), 1);
}

/// Ending a session again (a late duplicate event) leaves its end time alone.
pub(crate) async fn a_session_keeps_its_first_end(h: &dyn Harness) {
    let store = h.open().await;
    let start = Utc.with_ymd_and_hms(2026, 3, 8, 12, 0, 0).unwrap();
    let s = store
        .create_session("foo", None, "t", None, start)
        .await
        .unwrap();
    let end = start + Duration::hours(2);
    store.end_session(s, end).await.unwrap();
    store
        .end_session(s, end + Duration::hours(1))
        .await
        .unwrap();
    let row = store.session(s).await.unwrap().unwrap();
    assert_eq!(row.started_at, start);
    assert_eq!(row.ended_at, Some(end));
    assert!(store.session(s + 1).await.unwrap().is_none());
}

/// `put_token` replaces the whole set: a new one without a refresh token has none.
pub(crate) async fn a_token_set_is_replaced_whole(h: &dyn Harness) {
    let store = h.open().await;
    let first = StoredToken {
        access_token: Secret::new("AT-1"),
        refresh_token: Some(Secret::new("RT-1")),
        expires_at: Some(Utc.with_ymd_and_hms(2026, 3, 8, 12, 0, 0).unwrap()),
        scopes: "a".into(),
        client_id: None,
        account: None,
    };
    store.put_token("youtube", &first).await.unwrap();
    let second = StoredToken {
        access_token: Secret::new("AT-2"),
        refresh_token: None,
        expires_at: None,
        scopes: "a b".into(),
        client_id: None,
        account: None,
    };
    store.put_token("youtube", &second).await.unwrap();
    assert_eq!(store.token("youtube").await.unwrap(), Some(second));
    assert!(store.token("twitch").await.unwrap().is_none());
    assert!(!store.delete_token("twitch").await.unwrap());
}

/// A job waiting for its chat file is never due before its wait ends (then the upload
/// worker takes it without the chat file), is due at once when released, and holds back
/// no other upload.
pub(crate) async fn a_job_waiting_for_its_chat_file_is_due_only_when_released_or_its_wait_ends(
    h: &dyn Harness,
) {
    let store = h.open().await;
    let job = |name: &str| NewUploadJob {
        login: Some(Login::parse("foo").unwrap()),
        session: Some(1),
        path: PathBuf::from(format!("/r/foo/{name}.ts")),
        sidecar: Some(PathBuf::from(format!("/r/foo/{name}.json"))),
        total_bytes: 10,
        node: None,
    };
    let now = now();
    let until = now + chrono::Duration::seconds(300);
    let a = store
        .insert_upload_job_waiting_for_chat(&job("a"), until, "waiting for its chat file")
        .await
        .unwrap()
        .unwrap();
    let again = store
        .insert_upload_job_waiting_for_chat(&job("a"), until, "x")
        .await
        .unwrap();
    assert_eq!(again, None, "one job per file");
    let row = store.upload_job(a).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Deferred);
    assert_eq!(row.wait_reason, Some(WaitReason::ChatFile));
    assert_eq!(row.last_error.as_deref(), Some("waiting for its chat file"));
    assert_eq!(store.next_due_upload(now, None).await.unwrap(), None);
    assert_eq!(store.upload_hold(now).await.unwrap(), None);
    assert_eq!(store.next_upload_wakeup(None).await.unwrap(), Some(until));
    // The wait ends: due without the chat file.
    let due = store.next_due_upload(until, None).await.unwrap().unwrap();
    assert_eq!(due.id, a);
    let waiting = store.upload_jobs_waiting_for_chat().await.unwrap();
    assert_eq!(waiting.iter().map(|j| j.id).collect::<Vec<_>>(), [a]);

    // Released by the chat logger's answer: queued, due now, released once.
    let b = store
        .insert_upload_job_waiting_for_chat(&job("b"), until, "w")
        .await
        .unwrap()
        .unwrap();
    assert!(store.release_chat_wait(b).await.unwrap());
    assert!(!store.release_chat_wait(b).await.unwrap());
    let row = store.upload_job(b).await.unwrap().unwrap();
    assert_eq!(
        (
            row.state,
            row.wait_reason,
            row.next_attempt_at,
            row.last_error
        ),
        (JobState::Queued, None, None, None)
    );
    assert_eq!(
        store.next_due_upload(now, None).await.unwrap().unwrap().id,
        b
    );

    // Asked again after a restart: the wait moves.
    let later = until + chrono::Duration::seconds(60);
    store.extend_chat_wait(a, later).await.unwrap();
    assert_eq!(
        store.upload_job(a).await.unwrap().unwrap().next_attempt_at,
        Some(later)
    );
    store.close().await;
}

pub(crate) async fn a_pending_vod_fill_survives_reopening_until_removed(h: &dyn Harness) {
    let store = h.open().await;
    let at = now();
    let s1 = store
        .create_session("foo", Some("1"), "t", None, at)
        .await
        .unwrap();
    let s2 = store
        .create_session("bar", None, "t", None, at)
        .await
        .unwrap();
    assert!(store.add_vod_fill(s1, "foo", at).await.unwrap());
    assert!(store.add_vod_fill(s2, "bar", at).await.unwrap());
    // A second decision for the same session keeps the first (its wait counts from then).
    let later = at + chrono::TimeDelta::hours(1);
    assert!(!store.add_vod_fill(s1, "foo", later).await.unwrap());
    drop(store);
    let store = h.open().await;
    let rows = store.vod_fills().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].session, rows[0].login.as_str()), (s1, "foo"));
    assert_eq!(rows[0].created_at.timestamp_millis(), at.timestamp_millis());
    store.remove_vod_fill(s1).await.unwrap();
    store.remove_vod_fill(s1).await.unwrap();
    let rows = store.vod_fills().await.unwrap();
    assert_eq!(rows.iter().map(|r| r.session).collect::<Vec<_>>(), [s2]);
}

pub(crate) async fn settings_are_replaced_and_survive_reopening(h: &dyn Harness) {
    let store = h.open().await;
    assert_eq!(store.setting(EVENTSUB_CONDUIT).await.unwrap(), None);
    store.put_setting(EVENTSUB_CONDUIT, "c-1").await.unwrap();
    store.put_setting(EVENTSUB_CONDUIT, "c-2").await.unwrap();
    store.put_setting("other", "x").await.unwrap();
    store.close().await;
    let store = h.open().await;
    assert_eq!(
        store.setting(EVENTSUB_CONDUIT).await.unwrap().as_deref(),
        Some("c-2")
    );
    assert_eq!(store.setting("other").await.unwrap().as_deref(), Some("x"));
}

pub(crate) async fn sessions_are_listed_newest_first_by_login_and_start(h: &dyn Harness) {
    let store = h.open().await;
    let t0 = now() - chrono::Duration::hours(10);
    let mut ids = Vec::new();
    for (i, name) in ["foo", "bar", "foo"].into_iter().enumerate() {
        let at = t0 + chrono::Duration::hours(i as i64 * 3);
        ids.push(
            store
                .create_session(name, None, "t", None, at)
                .await
                .unwrap(),
        );
    }
    let listed = |rows: Vec<super::SessionRow>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
    let all = store.sessions(None, None, 10).await.unwrap();
    assert_eq!(listed(all), [ids[2], ids[1], ids[0]]);
    let foo = store.sessions(Some("foo"), None, 10).await.unwrap();
    assert_eq!(listed(foo), [ids[2], ids[0]]);
    let since = t0 + chrono::Duration::hours(2);
    let recent = store.sessions(None, Some(since), 10).await.unwrap();
    assert_eq!(listed(recent), [ids[2], ids[1]]);
    let both = store.sessions(Some("foo"), Some(since), 1).await.unwrap();
    assert_eq!(listed(both), [ids[2]]);
    assert!(store
        .sessions(Some("baz"), None, 10)
        .await
        .unwrap()
        .is_empty());
    // Parts carry what they recorded.
    store
        .finish_part(ids[0], 1, Path::new("/r/x.ts"), 7, 1.5, 2, true, t0)
        .await
        .unwrap();
    let part = &store.parts_of(ids[0]).await.unwrap()[0];
    assert_eq!(
        (part.bytes, part.duration_secs, part.gaps, part.recovered),
        (7, 1.5, 2, true)
    );
}

pub(crate) async fn an_upload_waiting_for_post_processing_is_due_only_once_released(
    h: &dyn Harness,
) {
    let store = h.open().await;
    let login = Login::parse("foo").unwrap();
    let (ts, side) = (Path::new("/r/a.ts"), Path::new("/r/a.json"));
    let post = store
        .insert_post_job(Some(&login), Some(3), ts, Some(side), PostMode::Transcode)
        .await
        .unwrap()
        .unwrap();
    // One job per part.
    assert_eq!(
        store
            .insert_post_job(None, None, ts, None, PostMode::Remux)
            .await
            .unwrap(),
        None
    );
    let other = store
        .insert_post_job(None, None, Path::new("/r/b.ts"), None, PostMode::Remux)
        .await
        .unwrap()
        .unwrap();
    // The part's upload job waits for its post-processing from its insertion on.
    let upload = store
        .insert_upload_job(&new_job("/r/a.ts"))
        .await
        .unwrap()
        .unwrap();
    let now = now();
    assert_eq!(store.next_due_upload(now, None).await.unwrap(), None);
    store.close().await;

    // After a restart the job is still pending, and the upload still waits.
    let store = h.open().await;
    let pending = store.pending_post_jobs().await.unwrap();
    assert_eq!(
        pending.iter().map(|j| j.id).collect::<Vec<_>>(),
        [post, other]
    );
    assert_eq!(pending[0].login.as_ref(), Some(&login));
    assert_eq!(pending[0].session, Some(3));
    assert_eq!(
        (pending[0].video.as_path(), pending[0].sidecar.as_deref()),
        (ts, Some(side))
    );
    assert_eq!(pending[0].state, PostState::Pending);
    // Each keeps the mode it was started with.
    assert_eq!(
        pending.iter().map(|j| j.mode).collect::<Vec<_>>(),
        [Some(PostMode::Transcode), Some(PostMode::Remux)]
    );
    assert_eq!(store.next_due_upload(now, None).await.unwrap(), None);

    let mp4 = Path::new("/r/a.mp4");
    store.end_post_job(post, Some(mp4), None).await.unwrap();
    assert_eq!(
        store
            .release_post_wait(post, Some((mp4, 777)))
            .await
            .unwrap(),
        1
    );
    let due = store.next_due_upload(now, None).await.unwrap().unwrap();
    assert_eq!(
        (due.id, due.path.as_path(), due.total_bytes),
        (upload, mp4, 777)
    );
    let ended = store.post_job(post).await.unwrap().unwrap();
    assert_eq!(
        (ended.state, ended.output.as_deref()),
        (PostState::Finished, Some(mp4))
    );
    // A failed job releases its upload with the part as it was.
    store
        .end_post_job(other, None, Some("ffmpeg exited with 1"))
        .await
        .unwrap();
    assert_eq!(store.release_post_wait(other, None).await.unwrap(), 0);
    let failed = store.post_job(other).await.unwrap().unwrap();
    assert_eq!(failed.state, PostState::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("ffmpeg exited with 1"));
    assert!(store.pending_post_jobs().await.unwrap().is_empty());
}

pub(crate) async fn stream_samples_are_kept_per_session_in_time_order(h: &dyn Harness) {
    let store = h.open().await;
    let at = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap();
    let s1 = store
        .create_session("foo", None, "t", None, at)
        .await
        .unwrap();
    let s2 = store
        .create_session("bar", None, "t", None, at)
        .await
        .unwrap();
    assert_eq!(store.peak_viewers(s1).await.unwrap(), None);
    let sample = |session, minutes, viewers, title: &str| StreamSample {
        session,
        at: at + Duration::minutes(minutes),
        viewers,
        title: title.into(),
        game: Some("Chess".into()),
    };
    // Stored out of order: read back by time.
    store
        .add_stream_sample(&sample(s1, 2, Some(40), "b"))
        .await
        .unwrap();
    store
        .add_stream_sample(&sample(s1, 1, None, "a"))
        .await
        .unwrap();
    store
        .add_stream_sample(&sample(s1, 3, Some(u64::MAX), "c"))
        .await
        .unwrap();
    store
        .add_stream_sample(&sample(s2, 1, Some(7), "x"))
        .await
        .unwrap();
    store.close().await;
    let store = h.open().await;
    let got = store.stream_samples(s1).await.unwrap();
    let titles: Vec<&str> = got.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(titles, ["a", "b", "c"]);
    assert_eq!(got[0], sample(s1, 1, None, "a"));
    assert_eq!(got[1].viewers, Some(40));
    // A count beyond the database's integers is clamped, never wrapped negative.
    assert_eq!(got[2].viewers, Some(i64::MAX as u64));
    assert_eq!(store.peak_viewers(s2).await.unwrap(), Some(7));
    assert_eq!(store.stream_samples(s2).await.unwrap().len(), 1);
    assert!(store.stream_samples(s2 + 100).await.unwrap().is_empty());
}

/// A NUL in outside text (a hostile stream title) is stored as U+FFFD on every engine
/// (PostgreSQL's text cannot hold one), never failing the write.
pub(crate) async fn text_with_a_nul_character_is_stored_with_a_replacement_character(
    h: &dyn Harness,
) {
    let store = h.open().await;
    let at = now();
    let s = store
        .create_session("foo", Some("s\u{0}1"), "a\0b", Some("g\0"), at)
        .await
        .unwrap();
    let row = store.session(s).await.unwrap().unwrap();
    assert_eq!(
        (
            row.stream_id.as_deref(),
            row.title.as_deref(),
            row.game.as_deref()
        ),
        (Some("s\u{FFFD}1"), Some("a\u{FFFD}b"), Some("g\u{FFFD}"))
    );
    store.update_session_title(s, "\0", None).await.unwrap();
    let row = store.session(s).await.unwrap().unwrap();
    assert_eq!(row.title.as_deref(), Some("\u{FFFD}"));
    store
        .add_stream_sample(&StreamSample {
            session: s,
            at,
            viewers: None,
            title: "t\0".into(),
            game: Some("\0".into()),
        })
        .await
        .unwrap();
    let sample = &store.stream_samples(s).await.unwrap()[0];
    assert_eq!(
        (sample.title.as_str(), sample.game.as_deref()),
        ("t\u{FFFD}", Some("\u{FFFD}"))
    );
    let mut w = watch("foo");
    w.added_by = "U\0".into();
    store.put_watch(&w).await.unwrap();
    let stored = store.watch(&w.name).await.unwrap().unwrap();
    assert_eq!(stored.added_by, "U\u{FFFD}");
    let id = store
        .insert_upload_job(&new_job("/r/n.ts"))
        .await
        .unwrap()
        .unwrap();
    let mut job = store.upload_job(id).await.unwrap().unwrap();
    job.last_error = Some("bad\0".into());
    store.save_upload_job(&job).await.unwrap();
    let job = store.upload_job(id).await.unwrap().unwrap();
    assert_eq!(job.last_error.as_deref(), Some("bad\u{FFFD}"));
}

pub(crate) async fn a_login_is_leased_to_one_node_at_a_time_with_a_growing_fence(h: &dyn Harness) {
    let store = h.open().await;
    for name in ["foo", "bar"] {
        store.put_watch(&watch(name)).await.unwrap();
    }
    let (foo, bar) = (Login::parse("foo").unwrap(), Login::parse("bar").unwrap());
    let lease = 30_000;
    assert_eq!(
        store.unowned(1_000).await.unwrap(),
        vec![bar.clone(), foo.clone()]
    );
    store.heartbeat("a", None, 0, 1_000, lease).await.unwrap();
    store
        .heartbeat("b", Some(4), 0, 1_000, lease)
        .await
        .unwrap();
    assert_eq!(store.claim("a", &foo, 1_000, lease).await.unwrap(), Some(1));
    // Held: nobody else gets it, not even the same node twice.
    assert_eq!(store.claim("b", &foo, 2_000, lease).await.unwrap(), None);
    assert_eq!(store.claim("a", &foo, 2_000, lease).await.unwrap(), None);
    assert_eq!(store.unowned(2_000).await.unwrap(), vec![bar.clone()]);
    assert!(store.holds(&foo, 1, 2_000).await.unwrap());
    // Renewed by a's heartbeat: still a's past the first expiry.
    let held = store.heartbeat("a", None, 0, 20_000, lease).await.unwrap();
    assert_eq!(held, vec![(foo.clone(), 1)]);
    assert_eq!(store.claim("b", &foo, 40_000, lease).await.unwrap(), None);
    // a stops renewing: after its lease b takes foo with a newer fence, and a's writes
    // (fence 1) are refused from then on, even when a renews again.
    assert_eq!(
        store.claim("b", &foo, 50_001, lease).await.unwrap(),
        Some(2)
    );
    assert!(!store.holds(&foo, 1, 50_002).await.unwrap());
    assert!(store.holds(&foo, 2, 50_002).await.unwrap());
    assert_eq!(
        store.holder(&foo, 50_002).await.unwrap(),
        Some(("b".to_string(), 2))
    );
    assert_eq!(store.holder(&bar, 50_002).await.unwrap(), None);
    let held = store.heartbeat("a", None, 0, 50_003, lease).await.unwrap();
    assert!(held.is_empty(), "{held:?}");
    let nodes = store.nodes(50_003).await.unwrap();
    let ids: Vec<(&str, u64, Option<u32>)> = nodes
        .iter()
        .map(|n| (n.node_id.as_str(), n.leases, n.capacity))
        .collect();
    assert_eq!(ids, vec![("a", 0, None), ("b", 1, Some(4))]);
    // A lease that ran out without a taker is not renewed: claiming it again moves the fence.
    let held = store
        .heartbeat("b", Some(4), 0, 90_000, lease)
        .await
        .unwrap();
    assert!(held.is_empty(), "{held:?}");
    assert_eq!(
        store.claim("b", &foo, 90_000, lease).await.unwrap(),
        Some(3)
    );
    // Released (the watch was removed): free at once.
    assert!(store.release("b", &foo).await.unwrap());
    assert!(!store.release("a", &foo).await.unwrap());
    assert_eq!(store.unowned(90_001).await.unwrap(), vec![bar, foo.clone()]);
    let leases = store.leases().await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!((leases[0].owner.as_deref(), leases[0].fence), (None, 3));
}

pub(crate) async fn a_node_that_leaves_hands_its_logins_over_at_once(h: &dyn Harness) {
    let store = h.open().await;
    store.put_watch(&watch("foo")).await.unwrap();
    let foo = Login::parse("foo").unwrap();
    store.heartbeat("a", None, 0, 1_000, 30_000).await.unwrap();
    assert_eq!(
        store.claim("a", &foo, 1_000, 30_000).await.unwrap(),
        Some(1)
    );
    assert_eq!(store.leave("a", 2_000).await.unwrap(), 1);
    let nodes = store.nodes(2_000).await.unwrap();
    assert!(nodes[0].stopped && !nodes[0].alive(2_000));
    assert_eq!(
        store.claim("b", &foo, 2_001, 30_000).await.unwrap(),
        Some(2)
    );
    // A new run of a joins again, alive, and holds nothing.
    let held = store
        .heartbeat("a", None, 3_000, 3_000, 30_000)
        .await
        .unwrap();
    assert!(held.is_empty());
    assert!(store.nodes(3_000).await.unwrap()[0].alive(3_000));
    store.close().await;
    // Everything survives reopening.
    let store = h.open().await;
    assert!(store.holds(&foo, 2, 3_000).await.unwrap());
}

pub(crate) async fn a_node_takes_only_its_own_upload_jobs_and_those_of_no_node(h: &dyn Harness) {
    let store = h.open().await;
    let now = now();
    let mut job = new_job("/r/foo/b.ts");
    job.node = Some("b".into());
    let b = store.insert_upload_job(&job).await.unwrap().unwrap();
    let mut job = new_job("/r/foo/a.ts");
    job.node = Some("a".into());
    let a = store.insert_upload_job(&job).await.unwrap().unwrap();
    let due = |node: Option<&'static str>| {
        let store = store.clone();
        async move {
            store
                .next_due_upload(now, node)
                .await
                .unwrap()
                .map(|j| j.id)
        }
    };
    assert_eq!(due(Some("a")).await, Some(a));
    assert_eq!(due(Some("b")).await, Some(b));
    assert_eq!(due(Some("c")).await, None);
    // One node (no cluster): every job.
    assert_eq!(due(None).await, Some(b));
    // A job of no node (queued before the nodes shared the state) is anyone's.
    let old = store
        .insert_upload_job(&new_job("/r/foo/old.ts"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(due(Some("c")).await, Some(old));
}
