//! The Prometheus metrics of one running service (`GET /metrics`): one [`Metrics`] per core
//! (never a global: tests run many services in one process), every name and `# HELP` text
//! here. Workers hold an `Arc<Metrics>` and count where things happen (segments, chat lines,
//! upload bytes); the gauges that are facts of the core's state are not tracked twice but set
//! from a [`CoreGauges`] snapshot the core gives at each scrape ([`Metrics::encode`]).
//!
//! Labels are bounded: logins (of the watch list: a scrape drops the series of logins no
//! longer watched) and fixed words (segment result, upload state, outbox reader names from the
//! config). Never URLs, titles or other free text. This module imports neither `core` nor
//! `frontend`, so workers may hold it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::encode`]'s text: Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of `recbot_segment_fetch_seconds` (a segment lasts about 2 s).
const FETCH_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0];
/// Upper bounds of `recbot_live_detection_seconds` (poll intervals are tens of seconds).
const DETECTION_BUCKETS: [f64; 11] = [
    5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0,
];
/// Segments one gap counts at most: a hostile jump in the numbering must not wrap a counter.
pub const MAX_GAP_SEGMENTS: u64 = 1_000_000;

/// `{login="…"}`. An `Arc<str>` so a lookup allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LoginLabel {
    login: Arc<str>,
}

/// What became of a segment of a live recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum SegmentResult {
    /// Written to the part file.
    ok,
    /// Missing from the recording (a reported gap).
    gap,
    /// An ad, skipped.
    ad,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SegmentLabels {
    login: Arc<str>,
    result: SegmentResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FrontendLabel {
    frontend: String,
}

/// The upload job states, as `recbot_uploads{state}` names them (all always exported).
pub const UPLOAD_STATES: [&str; 6] = [
    "queued",
    "uploading",
    "deferred",
    "paused",
    "finished",
    "failed",
];

/// The core's facts at one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CoreGauges {
    /// Every watched login and whether it is live now.
    pub watched: Vec<(String, bool)>,
    pub recordings_active: u64,
    /// Upload jobs per state (states not listed have none).
    pub uploads: Vec<(&'static str, u64)>,
    /// Uploads counted today (Pacific day) in the local quota ledger.
    pub quota_used: u64,
    /// Per outbox reader (`slack`, `discord`, `email`, `webhook:<name>`): event-log entries
    /// after its cursor.
    pub outbox_backlog: Vec<(String, u64)>,
    /// Free space on the recordings disk, when it could be measured.
    pub disk_free_bytes: Option<u64>,
}

/// One login's counters, looked up once and kept by whoever counts (a recording session, the
/// chat writer): incrementing them allocates nothing and takes no lock.
#[derive(Debug, Clone)]
pub struct LoginCounters {
    pub recorded_bytes: Counter,
    pub segments_ok: Counter,
    pub segments_gap: Counter,
    pub segments_ad: Counter,
    pub chat_lines: Counter,
    pub segment_fetch: Histogram,
    pub live_detection: Histogram,
}

/// A login's series and the scrape epoch they were created in.
#[derive(Debug)]
struct Known {
    counters: LoginCounters,
    epoch: u64,
}

/// The registry and every metric of one service.
pub struct Metrics {
    registry: Registry,
    recorded_bytes: Family<LoginLabel, Counter>,
    segments: Family<SegmentLabels, Counter>,
    segment_fetch: Histogram,
    live_detection: Histogram,
    chat_lines: Family<LoginLabel, Counter>,
    pub chat_dropped: Counter,
    pub chat_connections: Gauge,
    pub irc_reconnects: Counter,
    /// The chat stream on NATS JetStream (`chat::stream`): lines acknowledged by JetStream,
    /// lines written to the spool while NATS was unreachable, lines left out of the stream.
    pub chat_stream_published: Counter,
    pub chat_stream_spooled: Counter,
    pub chat_stream_dropped: Counter,
    pub upload_bytes: Counter,
    up: Gauge,
    logins_watched: Gauge,
    live: Family<LoginLabel, Gauge>,
    recordings_active: Gauge,
    uploads: Family<StateLabel, Gauge>,
    quota_used: Gauge,
    outbox_backlog: Family<FrontendLabel, Gauge>,
    disk_free_bytes: Gauge,
    /// Logins with series, by name.
    logins: Mutex<HashMap<Arc<str>, Known>>,
    /// Bumped by every scrape: series created after a scrape began are not dropped by it.
    epoch: AtomicU64,
    /// Bumped whenever a login's series are dropped: holders of cached handles look again.
    dropped: AtomicU64,
    /// One scrape at a time sets and encodes the gauges.
    scrape: Mutex<()>,
    /// One scrape at a time asks the core (see [`Metrics::one_scrape`]).
    asking: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            recorded_bytes: Family::default(),
            segments: Family::default(),
            segment_fetch: Histogram::new(FETCH_BUCKETS),
            live_detection: Histogram::new(DETECTION_BUCKETS),
            chat_lines: Family::default(),
            chat_dropped: Counter::default(),
            chat_connections: Gauge::default(),
            irc_reconnects: Counter::default(),
            chat_stream_published: Counter::default(),
            chat_stream_spooled: Counter::default(),
            chat_stream_dropped: Counter::default(),
            upload_bytes: Counter::default(),
            up: Gauge::default(),
            logins_watched: Gauge::default(),
            live: Family::default(),
            recordings_active: Gauge::default(),
            uploads: Family::default(),
            quota_used: Gauge::default(),
            outbox_backlog: Family::default(),
            disk_free_bytes: Gauge::default(),
            logins: Mutex::default(),
            epoch: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            scrape: Mutex::default(),
            asking: tokio::sync::Mutex::const_new(()),
        };
        m.register();
        m
    }

    /// Every name and help text, in the README's order. Counters are registered without
    /// `_total`: the encoder adds it.
    fn register(&mut self) {
        let r = &mut self.registry;
        r.register("recbot_up", "1 while the core answers", self.up.clone());
        r.register(
            "recbot_logins_watched",
            "Logins on the watch list",
            self.logins_watched.clone(),
        );
        r.register(
            "recbot_live",
            "1 while a watched login is live (an HLS source: while it is recorded)",
            self.live.clone(),
        );
        r.register(
            "recbot_recordings_active",
            "Recording sessions running",
            self.recordings_active.clone(),
        );
        self.register_counted();
        self.register_core_facts();
    }

    /// What the workers count.
    fn register_counted(&mut self) {
        let r = &mut self.registry;
        r.register(
            "recbot_recorded_bytes",
            "Bytes written to recording parts",
            self.recorded_bytes.clone(),
        );
        r.register(
            "recbot_segments",
            "Live segments by result: written (ok), missing (gap) or skipped ads (ad)",
            self.segments.clone(),
        );
        r.register(
            "recbot_segment_fetch_seconds",
            "Time to download one live segment that arrived whole",
            self.segment_fetch.clone(),
        );
        r.register(
            "recbot_live_detection_seconds",
            "From the stream's start as the platform reports it to its first segment written",
            self.live_detection.clone(),
        );
        r.register(
            "recbot_chat_lines",
            "Chat lines logged to the login's day files (as status counts them)",
            self.chat_lines.clone(),
        );
        r.register(
            "recbot_chat_dropped",
            "Chat lines dropped because the log writer could not keep up or write",
            self.chat_dropped.clone(),
        );
        r.register(
            "recbot_chat_connections",
            "IRC connections up",
            self.chat_connections.clone(),
        );
        r.register(
            "recbot_irc_reconnects",
            "IRC connections opened again after a drop or a RECONNECT",
            self.irc_reconnects.clone(),
        );
        r.register(
            "recbot_chat_stream_published",
            "Chat lines JetStream acknowledged on the chat stream",
            self.chat_stream_published.clone(),
        );
        r.register(
            "recbot_chat_stream_spooled",
            "Chat lines written to the stream spool while NATS could not be reached",
            self.chat_stream_spooled.clone(),
        );
        r.register(
            "recbot_chat_stream_dropped",
            "Chat lines left out of the chat stream (spool full; the day files keep them)",
            self.chat_stream_dropped.clone(),
        );
        r.register(
            "recbot_upload_bytes",
            "Bytes YouTube confirmed receiving",
            self.upload_bytes.clone(),
        );
    }

    /// The rest of what the core knows, set at each scrape.
    fn register_core_facts(&mut self) {
        let r = &mut self.registry;
        r.register(
            "recbot_uploads",
            "Upload jobs by state",
            self.uploads.clone(),
        );
        r.register(
            "recbot_youtube_quota_used",
            "Uploads counted today (Pacific time) against the daily upload limit",
            self.quota_used.clone(),
        );
        r.register(
            "recbot_outbox_backlog",
            "Event-log entries after an outbox reader's cursor (not yet delivered)",
            self.outbox_backlog.clone(),
        );
        r.register(
            "recbot_disk_free_bytes",
            "Free space on the recordings disk",
            self.disk_free_bytes.clone(),
        );
    }

    /// `login`'s counters (created, at zero, the first time). A lock and a lookup: callers
    /// keep the handles (a recording session for its life, the chat writer until
    /// [`Metrics::dropped_generation`] moves).
    pub fn login(&self, login: &str) -> LoginCounters {
        let mut logins = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = logins.get(login) {
            return known.counters.clone();
        }
        let name: Arc<str> = Arc::from(login);
        let label = LoginLabel {
            login: name.clone(),
        };
        let segment = |result| {
            self.segments.get_or_create_owned(&SegmentLabels {
                login: name.clone(),
                result,
            })
        };
        let counters = LoginCounters {
            recorded_bytes: self.recorded_bytes.get_or_create_owned(&label),
            segments_ok: segment(SegmentResult::ok),
            segments_gap: segment(SegmentResult::gap),
            segments_ad: segment(SegmentResult::ad),
            chat_lines: self.chat_lines.get_or_create_owned(&label),
            segment_fetch: self.segment_fetch.clone(),
            live_detection: self.live_detection.clone(),
        };
        let epoch = self.epoch.load(Ordering::Acquire);
        logins.insert(
            name,
            Known {
                counters: counters.clone(),
                epoch,
            },
        );
        counters
    }

    /// Moves whenever some login's series were dropped (see [`Metrics::login`]).
    pub fn dropped_generation(&self) -> u64 {
        self.dropped.load(Ordering::Acquire)
    }

    /// Held for a whole scrape (asking the core, then encoding): a flood of scrapes waits
    /// here and reaches the core's loop one at a time.
    pub async fn one_scrape(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.asking.lock().await
    }

    /// Starts a scrape: series created from now on survive it. Call before asking the core
    /// for its [`CoreGauges`].
    pub fn begin_scrape(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::AcqRel)
    }

    /// Drops the series of logins not in `watched` that existed when scrape `epoch` began.
    fn keep_logins(&self, watched: &[(String, bool)], epoch: u64) {
        let mut logins = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<Arc<str>> = logins
            .iter()
            .filter(|(name, known)| {
                known.epoch <= epoch && !watched.iter().any(|(w, _)| w.as_str() == name.as_ref())
            })
            .map(|(name, _)| name.clone())
            .collect();
        if gone.is_empty() {
            return;
        }
        for name in gone {
            logins.remove(&name);
            let label = LoginLabel { login: name };
            self.recorded_bytes.remove(&label);
            self.chat_lines.remove(&label);
            for result in [SegmentResult::ok, SegmentResult::gap, SegmentResult::ad] {
                self.segments.remove(&SegmentLabels {
                    login: label.login.clone(),
                    result,
                });
            }
        }
        self.dropped.fetch_add(1, Ordering::AcqRel);
    }

    /// The text to answer a scrape with: the core's gauges from `core` (`None`: the core did
    /// not answer, so `recbot_up` is 0 and its other gauges keep their last values), the
    /// series of logins no longer watched dropped (those created since scrape `epoch` began
    /// are kept), then everything encoded.
    pub fn encode(&self, core: Option<&CoreGauges>, epoch: u64) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        match core {
            Some(core) => {
                self.up.set(1);
                self.set_core(core, epoch);
            }
            None => {
                self.up.set(0);
            }
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }

    fn set_core(&self, core: &CoreGauges, epoch: u64) {
        self.keep_logins(&core.watched, epoch);
        for (login, _) in &core.watched {
            self.login(login);
        }
        self.logins_watched.set(gauge(core.watched.len() as u64));
        self.live.clear();
        for (login, live) in &core.watched {
            let label = LoginLabel {
                login: Arc::from(login.as_str()),
            };
            self.live.get_or_create(&label).set(i64::from(*live));
        }
        self.recordings_active.set(gauge(core.recordings_active));
        for state in UPLOAD_STATES {
            let n = core
                .uploads
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            self.uploads
                .get_or_create(&StateLabel { state })
                .set(gauge(n));
        }
        self.quota_used.set(gauge(core.quota_used));
        self.outbox_backlog.clear();
        for (frontend, backlog) in &core.outbox_backlog {
            let label = FrontendLabel {
                frontend: frontend.clone(),
            };
            self.outbox_backlog
                .get_or_create(&label)
                .set(gauge(*backlog));
        }
        if let Some(free) = core.disk_free_bytes {
            self.disk_free_bytes.set(gauge(free));
        }
    }
}

/// A count as a gauge value (gauges are `i64`).
fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core(watched: &[(&str, bool)]) -> CoreGauges {
        CoreGauges {
            watched: watched.iter().map(|(l, v)| (l.to_string(), *v)).collect(),
            recordings_active: 1,
            uploads: vec![("queued", 2), ("finished", 5)],
            quota_used: 3,
            outbox_backlog: vec![("slack".into(), 4), ("webhook:ci".into(), 0)],
            disk_free_bytes: Some(123_456),
        }
    }

    /// The value of the line `series` (name and labels as printed), if printed.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    }

    #[test]
    fn every_metric_is_named_typed_and_labelled_as_documented() {
        let m = Metrics::new();
        let c = m.login("foo");
        c.recorded_bytes.inc_by(1000);
        c.segments_ok.inc_by(3);
        c.segments_gap.inc();
        c.segments_ad.inc_by(2);
        c.chat_lines.inc_by(7);
        c.segment_fetch.observe(0.3);
        c.live_detection.observe(12.0);
        m.chat_dropped.inc();
        m.chat_connections.set(2);
        m.irc_reconnects.inc();
        m.upload_bytes.inc_by(99);
        let epoch = m.begin_scrape();
        let text = m.encode(Some(&core(&[("foo", true), ("bar", false)])), epoch);
        for (series, v) in [
            ("recbot_up", 1.0),
            ("recbot_logins_watched", 2.0),
            ("recbot_live{login=\"foo\"}", 1.0),
            ("recbot_live{login=\"bar\"}", 0.0),
            ("recbot_recordings_active", 1.0),
            ("recbot_recorded_bytes_total{login=\"foo\"}", 1000.0),
            ("recbot_recorded_bytes_total{login=\"bar\"}", 0.0),
            ("recbot_segments_total{login=\"foo\",result=\"ok\"}", 3.0),
            ("recbot_segments_total{login=\"foo\",result=\"gap\"}", 1.0),
            ("recbot_segments_total{login=\"foo\",result=\"ad\"}", 2.0),
            ("recbot_segment_fetch_seconds_count", 1.0),
            ("recbot_segment_fetch_seconds_bucket{le=\"0.5\"}", 1.0),
            ("recbot_segment_fetch_seconds_bucket{le=\"0.25\"}", 0.0),
            ("recbot_live_detection_seconds_count", 1.0),
            ("recbot_live_detection_seconds_sum", 12.0),
            ("recbot_chat_lines_total{login=\"foo\"}", 7.0),
            ("recbot_chat_dropped_total", 1.0),
            ("recbot_chat_connections", 2.0),
            ("recbot_irc_reconnects_total", 1.0),
            ("recbot_upload_bytes_total", 99.0),
            ("recbot_uploads{state=\"queued\"}", 2.0),
            ("recbot_uploads{state=\"failed\"}", 0.0),
            ("recbot_uploads{state=\"finished\"}", 5.0),
            ("recbot_youtube_quota_used", 3.0),
            ("recbot_outbox_backlog{frontend=\"slack\"}", 4.0),
            ("recbot_outbox_backlog{frontend=\"webhook:ci\"}", 0.0),
            ("recbot_disk_free_bytes", 123_456.0),
        ] {
            assert_eq!(value(&text, series), Some(v), "{series} in\n{text}");
        }
        assert!(
            text.contains("# TYPE recbot_recorded_bytes_total counter"),
            "{text}"
        );
        assert!(text.contains("# TYPE recbot_segment_fetch_seconds histogram"));
        assert!(text.contains("# TYPE recbot_live gauge"));
        assert!(text.contains("# HELP recbot_up "));
        assert!(CONTENT_TYPE.starts_with("text/plain; version=0.0.4"));
    }

    #[test]
    fn a_login_no_longer_watched_stops_being_exported() {
        let m = Metrics::new();
        m.login("foo").recorded_bytes.inc_by(5);
        let before = m.dropped_generation();
        let epoch = m.begin_scrape();
        let text = m.encode(Some(&core(&[("bar", false)])), epoch);
        assert!(!text.contains("login=\"foo\""), "{text}");
        assert!(text.contains("recbot_recorded_bytes_total{login=\"bar\"} 0"));
        assert_ne!(
            m.dropped_generation(),
            before,
            "holders of handles look again"
        );
        // Series created while a scrape waits for the core (a login added meanwhile) stay.
        let epoch = m.begin_scrape();
        m.login("new").chat_lines.inc();
        let text = m.encode(Some(&core(&[("bar", false)])), epoch);
        assert!(
            text.contains("recbot_chat_lines_total{login=\"new\"} 1"),
            "{text}"
        );
        // ... until the next scrape, when the watch list still does not have it.
        let epoch = m.begin_scrape();
        let text = m.encode(Some(&core(&[("bar", false)])), epoch);
        assert!(!text.contains("login=\"new\""), "{text}");
    }

    #[test]
    fn a_core_that_does_not_answer_is_down_and_label_values_are_escaped() {
        let m = Metrics::new();
        let epoch = m.begin_scrape();
        let mut gauges = core(&[("foo", true)]);
        gauges.outbox_backlog = vec![("webhook:a\"b\\c\nd".into(), 1)];
        let text = m.encode(Some(&gauges), epoch);
        assert!(
            text.contains("recbot_outbox_backlog{frontend=\"webhook:a\\\"b\\\\c\\nd\"} 1"),
            "{text}"
        );
        let text = m.encode(None, m.begin_scrape());
        assert_eq!(value(&text, "recbot_up"), Some(0.0));
        // The last known facts stay.
        assert_eq!(value(&text, "recbot_logins_watched"), Some(1.0));
    }
}
