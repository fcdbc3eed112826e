use super::*;
use slack_morphism::errors::{SlackClientApiError, SlackClientHttpError};

#[test]
fn slacks_escapes_are_undone_once() {
    for (sent, typed) in [
        ("add foo", "add foo"),
        (
            "add hls https://cdn/x.m3u8?a=1&amp;b=2 studio",
            "add hls https://cdn/x.m3u8?a=1&b=2 studio",
        ),
        ("help &lt;x&gt;", "help <x>"),
        ("a &amp;lt; b &amp;amp;", "a &lt; b &amp;"),
    ] {
        assert_eq!(unescape(sent), typed, "{sent}");
        assert_eq!(unescape(&escape(typed)), typed, "round trip of {typed}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_command_read_after_another_counts_its_window_from_where_it_may_have_queued() {
    let window = Duration::from_millis(2200);
    let clock = Mutex::new(AckClock::default());
    // Alone: the whole window.
    let first = Timed::start(&clock, window);
    assert_eq!(first.within, window);
    // Read right after the first ended (it had waited behind it): what is left of the
    // first one's window.
    tokio::time::advance(Duration::from_millis(2200)).await;
    drop(first);
    tokio::time::advance(Duration::from_millis(5)).await;
    let queued = Timed::start(&clock, window);
    assert_eq!(queued.within, Duration::ZERO, "acknowledged at once");
    // One that starts while another callback runs (another connection) counts from that
    // run's start too.
    let beside = Timed::start(&clock, window);
    assert_eq!(beside.within, Duration::ZERO);
    drop(queued);
    drop(beside);
    // After a pause nothing can have queued: the whole window again.
    tokio::time::advance(Duration::from_secs(1)).await;
    let later = Timed::start(&clock, window);
    assert_eq!(later.within, window);
    tokio::time::advance(Duration::from_millis(500)).await;
    let during = Timed::start(&clock, window);
    assert_eq!(during.within, Duration::from_millis(1700));
}

#[test]
fn a_refused_token_pauses_posting_and_other_refusals_are_for_good() {
    let api = |code: &str| {
        error(SlackClientError::ApiError(SlackClientApiError::new(
            code.into(),
        )))
    };
    for code in [
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
    ] {
        assert_eq!(api(code), PostError::Unauthorized(code.into()), "{code}");
    }
    let http = |status: StatusCode| {
        error(SlackClientError::HttpError(SlackClientHttpError::new(
            status,
        )))
    };
    assert!(matches!(
        http(StatusCode::UNAUTHORIZED),
        PostError::Unauthorized(_)
    ));
    for code in ["channel_not_found", "not_in_channel", "message_not_found"] {
        assert_eq!(api(code), PostError::Permanent(code.into()), "{code}");
    }
    assert!(matches!(
        http(StatusCode::FORBIDDEN),
        PostError::Permanent(_)
    ));
    assert!(matches!(api("ratelimited"), PostError::Retry { .. }));
    assert!(matches!(
        http(StatusCode::BAD_GATEWAY),
        PostError::Retry { .. }
    ));
}
