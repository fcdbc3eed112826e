//! A running core with one chat front-end, for the Slack and Discord tests. Tests play the
//! workers by sending events through `Core::events()`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use recbot::config::Config;
use recbot::core::{Core, CoreHandle, Notice};
use recbot::event::{Event, EventKind};
use recbot::work::Events;
use recbot_commands::Login;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub struct Bot {
    events: Events,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Bot {
    /// Opens the core, starts the front-end `run` (subscribed before the core starts), then
    /// the core.
    pub async fn start<F, Fut>(config: Arc<Config>, run: F) -> Bot
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
        let task = run(
            config,
            handle.clone(),
            handle.subscribe(),
            shutdown.clone(),
            tracker.clone(),
        );
        tracker.spawn(async move { task.await.unwrap() });
        core.spawn(&tracker).await.unwrap();
        Bot {
            events,
            shutdown,
            tracker,
        }
    }

    /// An event about `foo`, in `session` when given.
    pub async fn emit(&self, session: Option<i64>, kind: EventKind) {
        let mut event = Event::now(Some(Login::parse("foo").unwrap()), kind);
        event.session = session;
        self.events.send(event).await;
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(Duration::from_secs(10), self.tracker.wait())
            .await
            .expect("the front-end stops within 10 s");
    }
}
