//! The one test harness for a core running in this process: the test plays the workers (it
//! sends their events through `Core::events()`), talks to the core as the console does, and
//! reads the notices a front-end would get. A real front-end can run beside it
//! ([`Bot::with_front_end`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use recbot::config::Config;
use recbot::core::{Core, CoreHandle, Notice, Origin};
use recbot::event::{Event, EventKind};
use recbot::frontend::render::{self, Markup, Rendered};
use recbot::work::Events;
use recbot_commands::Login;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Part;

/// How long [`Bot::wait_for`] waits for a matching notice.
const WAIT: Duration = Duration::from_secs(20);
/// How long [`Bot::stop`] gives the core (and the front-end) to finish.
const STOP: Duration = Duration::from_secs(10);

/// A core running in this process, with a front-end's view of it.
pub struct Bot {
    pub core: CoreHandle,
    pub events: Events,
    pub notices: broadcast::Receiver<Arc<Notice>>,
    pub config: Arc<Config>,
    /// Notices `wait_for` passed over, kept for later waits when `keep_unmatched`; a test
    /// may look at them (and clear them) itself.
    pub seen: Vec<Arc<Notice>>,
    keep_unmatched: bool,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Bot {
    pub async fn start(config: Arc<Config>) -> Bot {
        Bot::with_front_end(config, |_, _, _, _, _| async { Ok(()) }).await
    }

    /// Opens the core, starts the front-end `run` (subscribed before the core starts, so it
    /// misses nothing), then the core.
    pub async fn with_front_end<F, Fut>(config: Arc<Config>, run: F) -> Bot
    where
        F: FnOnce(
            Arc<Config>,
            CoreHandle,
            broadcast::Receiver<Arc<Notice>>,
            CancellationToken,
            TaskTracker,
        ) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (core, handle) = Core::open(config.clone(), shutdown.clone()).await.unwrap();
        let events = core.events();
        let notices = handle.subscribe();
        let task = run(
            config.clone(),
            handle.clone(),
            handle.subscribe(),
            shutdown.clone(),
            tracker.clone(),
        );
        tracker.spawn(async move { task.await.unwrap() });
        core.spawn(&tracker).await.unwrap();
        Bot {
            core: handle,
            events,
            notices,
            config,
            seen: Vec::new(),
            keep_unmatched: false,
            shutdown,
            tracker,
        }
    }

    /// From now on, notices that `wait_for` passes over stay available to later waits
    /// (for tests that do not care in which order independent notices arrive).
    pub fn keeping_unmatched(mut self) -> Bot {
        self.keep_unmatched = true;
        self
    }

    /// A command as typed on the console; its reply as the console shows it.
    pub async fn run(&self, text: &str) -> Rendered {
        self.core.ask(text, Origin::console()).await
    }

    /// A command that must succeed; its reply text.
    pub async fn command(&self, text: &str) -> String {
        let reply = self.run(text).await;
        assert!(reply.ok, "{text}: {reply:?}");
        reply.text
    }

    /// Plays a worker: an event about `login`, in `session` when given.
    pub async fn emit(&self, login: &str, session: Option<i64>, kind: EventKind) {
        let mut event = Event::now(Some(Login::parse(login).unwrap()), kind);
        event.session = session;
        self.events.send(event).await;
    }

    /// Plays a worker: an event about `login`.
    pub async fn send(&self, login: &str, kind: EventKind) {
        self.emit(login, None, kind).await;
    }

    /// Plays the live watcher: `login` went live with `stream_id`.
    pub async fn live(&self, login: &str, stream_id: &str, title: &str) {
        let kind = EventKind::LiveDetected {
            stream_id: Some(stream_id.into()),
            display_name: None,
            title: title.into(),
            game: Some("Chess".into()),
            viewers: Some(3),
            started_at: Some(Utc::now()),
            latency_secs: Some(1.0),
        };
        self.send(login, kind).await;
    }

    /// Plays the recorder: a part of `login` is finished on disk.
    pub async fn part_finished(&self, part: &Part) {
        let kind = EventKind::RecordingPartFinished {
            part: 1,
            file: part.file.clone(),
            sidecar: part.sidecar.clone(),
            bytes: part.bytes,
            duration_secs: 7200.0,
            gaps: 0,
            recovered: false,
        };
        self.send(&part.login, kind).await;
    }

    /// The next notice whose event matches; panics after 20 s. Notices passed over are
    /// dropped, unless the bot was built [`keeping_unmatched`](Bot::keeping_unmatched).
    pub async fn wait_for(&mut self, what: &str, matches: impl Fn(&Event) -> bool) -> Event {
        if let Some(i) = self.seen.iter().position(|n| matches(&n.event)) {
            return self.seen.remove(i).event.clone();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notice = match tokio::time::timeout_at(deadline, self.notices.recv()).await {
                Ok(notice) => notice.expect("notices"),
                Err(_) => {
                    let kinds: Vec<_> = self.seen.iter().map(|n| n.event.kind.clone()).collect();
                    panic!("no {what} within 20 s; saw {kinds:#?}")
                }
            };
            if matches(&notice.event) {
                return notice.event.clone();
            }
            if self.keep_unmatched {
                self.seen.push(notice);
            }
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(STOP, self.tracker.wait())
            .await
            .expect("the core and the front-end stop within 10 s");
    }
}

/// Matches events of one kind by name.
pub fn is(name: &str) -> impl Fn(&Event) -> bool + '_ {
    move |e| e.kind_name() == name
}

/// A command's reply as the front-end of its room words it (the core answers with data).
pub trait Ask {
    fn ask(&self, text: &str, origin: Origin) -> impl Future<Output = Rendered> + Send;
}

impl Ask for CoreHandle {
    async fn ask(&self, text: &str, origin: Origin) -> Rendered {
        let markup = Markup::of(&origin.room);
        render::reply(&self.submit(text, origin).await, markup)
    }
}
