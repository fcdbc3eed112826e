use std::sync::Mutex;

use tokio::sync::mpsc;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::config::Twitch;
use crate::work::Call;

#[derive(Debug, Default)]
struct Stored(Mutex<Option<StoredToken>>);

#[async_trait::async_trait]
impl TokenSource for Stored {
    async fn token(&self, service: Service) -> anyhow::Result<Option<StoredToken>> {
        assert_eq!(service, Service::TwitchViewer);
        Ok(self.0.lock().unwrap().clone())
    }
}

fn token(client_id: Option<&str>, account: Option<&str>) -> StoredToken {
    StoredToken {
        access_token: Secret::new("viewer-token-secret"),
        refresh_token: None,
        expires_at: None,
        scopes: String::new(),
        client_id: client_id.map(str::to_string),
        account: account.map(str::to_string),
    }
}

struct Running {
    login: ViewerLogin,
    calls: mpsc::Receiver<Call>,
    cancel: CancellationToken,
    _server: MockServer,
}

/// A keeper over `stored`, validating at a fake id endpoint answering `validate`.
async fn keeper(stored: StoredToken, validate: ResponseTemplate) -> Running {
    let server = MockServer::start().await;
    Mock::given(path("/oauth2/validate"))
        .respond_with(validate)
        .mount(&server)
        .await;
    let config = Twitch {
        id_url: format!("{}/oauth2", server.uri()),
        ..Twitch::default()
    };
    let (publisher, login) = channel();
    let (tx, calls) = mpsc::channel(8);
    let cancel = CancellationToken::new();
    let keeper = ViewerKeeper {
        oauth: TwitchOAuth::viewer(&config).unwrap(),
        stored: Arc::new(Stored(Mutex::new(Some(stored)))),
        calls: Calls::new(tx),
        publisher,
        token_saved: Arc::default(),
        validate_every: Duration::from_secs(3600),
        cancel: cancel.clone(),
    };
    tokio::spawn(keeper.run());
    Running {
        login,
        calls,
        cancel,
        _server: server,
    }
}

fn validated(client_id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "client_id": client_id, "login": "viewerperson", "scopes": [], "user_id": "1",
        "expires_in": 0,
    }))
}

async fn published(login: &ViewerLogin) -> Option<Arc<ViewerCredential>> {
    let mut rx = login.current.clone();
    let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(Option::is_some)).await;
    login.current()
}

async fn asked_for(calls: &mut mpsc::Receiver<Call>) -> String {
    match tokio::time::timeout(Duration::from_secs(5), calls.recv()).await {
        Ok(Some(Call::AuthNeeded { service, reason })) => {
            assert_eq!(service, Service::TwitchViewer);
            reason
        }
        other => panic!("expected AuthNeeded, got {other:?}"),
    }
}

#[tokio::test]
async fn a_validated_login_is_published_with_the_client_twitch_names() {
    let r = keeper(token(None, None), validated("webclient")).await;
    let credential = published(&r.login).await.expect("published");
    assert_eq!(credential.client_id, "webclient");
    assert_eq!(credential.login, "viewerperson");
    assert_eq!(credential.token.expose(), "viewer-token-secret");
    assert!(!format!("{credential:?}").contains("viewer-token-secret"));
    r.cancel.cancel();
}

#[tokio::test]
async fn a_login_twitch_no_longer_accepts_is_withdrawn_and_asked_for() {
    let refused = ResponseTemplate::new(401)
        .set_body_json(serde_json::json!({"status": 401, "message": "invalid access token"}));
    let mut r = keeper(token(Some("tv"), Some("viewerperson")), refused).await;
    let reason = asked_for(&mut r.calls).await;
    assert!(reason.contains("invalid access token"), "{reason}");
    assert!(reason.contains("above 1080p"), "{reason}");
    assert!(r.login.current().is_none());
    r.cancel.cancel();
}

#[tokio::test]
async fn a_token_gql_refuses_but_twitch_validates_stays_withdrawn() {
    let mut r = keeper(token(None, None), validated("someapp")).await;
    let credential = published(&r.login).await.expect("published");
    r.login.refused(&credential);
    let reason = asked_for(&mut r.calls).await;
    assert!(reason.contains("third-party"), "{reason}");
    assert!(r.login.current().is_none());
    r.cancel.cancel();
}

#[tokio::test]
async fn twitch_id_down_keeps_a_login_validated_before_but_not_an_unknown_one() {
    let down = ResponseTemplate::new(503);
    let r = keeper(token(Some("tv"), Some("viewerperson")), down.clone()).await;
    let credential = published(&r.login).await.expect("kept");
    assert_eq!(credential.client_id, "tv");
    r.cancel.cancel();

    let r = keeper(token(None, None), down).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(r.login.current().is_none());
    r.cancel.cancel();
}
