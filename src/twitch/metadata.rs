//! Stream metadata (stream id, display name, title, game, viewers, start time) from Twitch GQL,
//! for live detection without Helix credentials. Many logins per request through aliases; the
//! logins travel as GraphQL variables, never spliced into the query text.

use chrono::{DateTime, Utc};
use recbot_commands::Login;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Logins per GQL request (biliup uses 30; the web client's own batches are of this order).
pub const BATCH: usize = 35;

#[derive(Debug, Clone, PartialEq)]
pub struct StreamMetadata {
    pub display_name: Option<String>,
    /// `None` when the login exists but is not live (by GQL's account, which can lag usher).
    pub stream: Option<StreamFacts>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamFacts {
    pub id: String,
    pub title: String,
    pub game: Option<String>,
    pub viewers: Option<u64>,
    pub started_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct Metadata {
    http: reqwest::Client,
    gql_url: String,
    client_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    display_name: Option<String>,
    stream: Option<Stream>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stream {
    id: String,
    #[serde(default)]
    title: Option<String>,
    created_at: Option<DateTime<Utc>>,
    viewers_count: Option<u64>,
    game: Option<Game>,
}

#[derive(Deserialize)]
struct Game {
    name: Option<String>,
}

impl Metadata {
    pub fn new(http: reqwest::Client, twitch: &crate::config::Twitch) -> Metadata {
        Metadata {
            http,
            gql_url: twitch.gql_url.clone(),
            client_id: twitch.gql_client_id.clone(),
        }
    }

    /// Metadata for up to [`BATCH`] logins; logins Twitch does not know are absent.
    pub async fn fetch(&self, logins: &[Login]) -> Result<Vec<(Login, StreamMetadata)>, String> {
        if logins.is_empty() {
            return Ok(Vec::new());
        }
        let mut params = Vec::new();
        let mut fields = Vec::new();
        let mut variables = Map::new();
        for (i, login) in logins.iter().enumerate() {
            params.push(format!("$l{i}: String!"));
            fields.push(format!(
                "u{i}: user(login: $l{i}) {{ displayName stream {{ id title createdAt viewersCount game {{ name }} }} }}"
            ));
            variables.insert(format!("l{i}"), Value::String(login.as_str().into()));
        }
        let query = format!("query({}) {{ {} }}", params.join(", "), fields.join(" "));
        let response = self
            .http
            .post(&self.gql_url)
            .header("Client-ID", &self.client_id)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .map_err(|e| format!("cannot reach Twitch GQL: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("Twitch GQL answered HTTP {}", response.status()));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("unreadable GQL answer: {e}"))?;
        let data = body.get("data").and_then(Value::as_object).ok_or_else(|| {
            let message = body
                .pointer("/errors/0/message")
                .and_then(Value::as_str)
                .unwrap_or("no data");
            format!("Twitch GQL refused the metadata query: {message}")
        })?;
        let mut out = Vec::new();
        for (i, login) in logins.iter().enumerate() {
            let Some(user) = data.get(&format!("u{i}")).filter(|v| !v.is_null()) else {
                continue;
            };
            let Ok(user) = serde_json::from_value::<User>(user.clone()) else {
                continue;
            };
            out.push((
                login.clone(),
                StreamMetadata {
                    display_name: user.display_name,
                    stream: user.stream.map(|s| StreamFacts {
                        id: s.id,
                        title: s.title.unwrap_or_default(),
                        game: s.game.and_then(|g| g.name).filter(|n| !n.is_empty()),
                        viewers: s.viewers_count,
                        started_at: s.created_at,
                    }),
                },
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{body_partial_json, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    #[tokio::test]
    async fn batches_logins_as_variables() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(body_partial_json(
                json!({"variables": {"l0": "foo", "l1": "bar", "l2": "nobody"}}),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {
                "u0": {"displayName": "Foo", "stream": {"id": "99", "title": "hello",
                        "createdAt": "2026-11-21T10:00:00Z", "viewersCount": 12,
                        "game": {"name": "Chess"}}},
                "u1": {"displayName": "Bar", "stream": null},
                "u2": null
            }})))
            .expect(1)
            .mount(&server)
            .await;
        let twitch = crate::config::Twitch {
            gql_url: server.uri(),
            ..Default::default()
        };
        let meta = Metadata::new(reqwest::Client::new(), &twitch);
        let logins: Vec<Login> = ["foo", "bar", "nobody"]
            .iter()
            .map(|l| Login::parse(l).unwrap())
            .collect();
        let got = meta.fetch(&logins).await.unwrap();
        assert_eq!(got.len(), 2);
        let foo = &got[0].1;
        assert_eq!(foo.display_name.as_deref(), Some("Foo"));
        let stream = foo.stream.as_ref().unwrap();
        assert_eq!(stream.id, "99");
        assert_eq!(stream.game.as_deref(), Some("Chess"));
        assert!(got[1].1.stream.is_none());
        let sent = &server.received_requests().await.unwrap()[0];
        let body: Value = serde_json::from_slice(&sent.body).unwrap();
        let query = body["query"].as_str().unwrap();
        assert!(
            !query.contains("foo"),
            "logins must not be spliced in: {query}"
        );
    }
}
