use super::*;

#[test]
fn absurd_rate_limit_waits_are_clamped() {
    for value in [1e30, u64::MAX as f64, f64::INFINITY, f64::NAN] {
        assert_eq!(seconds(value), MAX_RESET, "{value}");
    }
    assert_eq!(seconds(-1.0), Duration::ZERO);
    assert_eq!(seconds(0.25), Duration::from_millis(250));
    // A bucket whose reset is absurdly far waits at most MAX_RESET, and no arithmetic on
    // it panics.
    let mut buckets = Buckets::default();
    let mut headers = HeaderMap::new();
    headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
    headers.insert("x-ratelimit-reset-after", "1e300".parse().unwrap());
    let now = Instant::now();
    buckets.update("GET /x", &headers, now);
    assert_eq!(buckets.reserve("GET /x", now), Some(MAX_RESET));
}

#[test]
fn routes_keep_the_channel_and_drop_the_message_id() {
    assert_eq!(
        route_key(&Method::PATCH, "/channels/12/messages/34"),
        "PATCH /channels/12/messages/:id"
    );
    assert_eq!(
        route_key(&Method::POST, "/channels/12/messages/34/threads"),
        "POST /channels/12/messages/:id/threads"
    );
    assert_eq!(
        route_key(&Method::POST, "/channels/12/messages"),
        "POST /channels/12/messages"
    );
    assert_ne!(
        route_key(&Method::POST, "/channels/12/messages"),
        route_key(&Method::POST, "/channels/13/messages")
    );
    assert_eq!(
        route_key(&Method::PATCH, "/webhooks/1/tok/messages/@original"),
        "PATCH /webhooks/1/tok/messages/@original"
    );
}

fn headers(remaining: &str, reset_after: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-ratelimit-remaining", remaining.parse().unwrap());
    h.insert("x-ratelimit-reset-after", reset_after.parse().unwrap());
    h
}

#[test]
fn an_empty_bucket_waits_until_its_reset_and_counts_calls_meanwhile() {
    let mut buckets = Buckets::default();
    let now = Instant::now();
    let route = "POST /channels/1/messages";
    assert_eq!(buckets.reserve(route, now), None, "unknown route: go");
    buckets.update(route, &headers("1", "2.5"), now);
    assert_eq!(buckets.reserve(route, now), None, "one left");
    assert_eq!(
        buckets.reserve(route, now),
        Some(Duration::from_millis(2500)),
        "that one was taken"
    );
    assert_eq!(
        buckets.reserve("POST /channels/2/messages", now),
        None,
        "another channel has its own bucket"
    );
    let later = now + Duration::from_millis(2500);
    assert_eq!(buckets.reserve(route, later), None, "reset");
    // Garbage headers change nothing; absurd resets are capped.
    buckets.update(route, &headers("x", "1"), now);
    assert_eq!(buckets.reserve(route, now), None);
    buckets.update(route, &headers("0", "1e12"), now);
    assert_eq!(buckets.reserve(route, now), Some(MAX_RESET));
    // A global 429 holds every route.
    buckets.global_until = Some(now + Duration::from_secs(1));
    assert_eq!(buckets.reserve("GET /x", now), Some(Duration::from_secs(1)));
}
