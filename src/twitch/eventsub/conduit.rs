//! Helix's EventSub endpoints with the app token: the conduit (find, create, assign shard 0 to
//! a WebSocket session), the subscriptions (list all pages, create with the `conduit`
//! transport, delete) and user ids by login (`/users`, 100 a request). Every answer is read
//! through [`Helix::call`] (bounded body, 401 renewal, 429 waits) and parsed defensively: a
//! malformed answer is an error that changes nothing.

use std::collections::HashMap;

use recbot_commands::Login;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::twitch::helix::{Helix, HelixError};

/// Logins per `/users` request.
pub const USERS_PER_REQUEST: usize = 100;
/// Pages of subscriptions read at most (100 per page: far beyond any cost limit).
const MAX_PAGES: usize = 500;

/// The two subscription types recbot keeps per login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubKind {
    Online,
    Offline,
}

impl SubKind {
    pub const BOTH: [SubKind; 2] = [SubKind::Online, SubKind::Offline];

    pub fn as_str(self) -> &'static str {
        match self {
            SubKind::Online => "stream.online",
            SubKind::Offline => "stream.offline",
        }
    }

    pub fn parse(s: &str) -> Option<SubKind> {
        match s {
            "stream.online" => Some(SubKind::Online),
            "stream.offline" => Some(SubKind::Offline),
            _ => None,
        }
    }
}

/// One subscription of ours (on our conduit, of one of our two types).
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub kind: SubKind,
    pub broadcaster_id: String,
    /// `enabled`, or why not.
    pub status: String,
}

/// The subscription list: ours, and the cost figures of the whole app.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    pub ours: Vec<Subscription>,
    pub total_cost: u64,
    pub max_total_cost: u64,
}

/// What a create did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    Made {
        id: String,
        total_cost: Option<u64>,
        max_total_cost: Option<u64>,
    },
    /// Twitch already has it (409): a listing will say its id.
    Exists,
    /// Twitch refused it for cost (the app's `max_total_cost` is reached).
    CostExceeded,
}

#[derive(Debug, thiserror::Error)]
pub enum ConduitError {
    #[error(transparent)]
    Helix(#[from] HelixError),
    #[error("{0}")]
    Refused(String),
}

type Result<T> = std::result::Result<T, ConduitError>;

#[derive(Deserialize)]
struct Data<T> {
    data: Vec<T>,
}

#[derive(Deserialize)]
struct ConduitRow {
    id: String,
}

#[derive(Deserialize)]
struct ShardAnswer {
    #[serde(default)]
    errors: Vec<ShardError>,
}

#[derive(Deserialize)]
struct ShardError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: String,
}

#[derive(Deserialize)]
struct SubRow {
    id: String,
    #[serde(default)]
    status: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    condition: serde_json::Value,
    #[serde(default)]
    transport: serde_json::Value,
}

#[derive(Deserialize)]
struct SubPage {
    data: Vec<SubRow>,
    #[serde(default)]
    total_cost: Option<u64>,
    #[serde(default)]
    max_total_cost: Option<u64>,
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Deserialize)]
struct Pagination {
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Deserialize)]
struct UserRow {
    id: String,
    login: String,
}

fn refused(what: &str, answer: &crate::twitch::helix::HelixAnswer) -> ConduitError {
    ConduitError::Refused(format!(
        "{what}: Helix answered HTTP {}: {}",
        answer.status.as_u16(),
        answer.detail()
    ))
}

/// Whether the conduit `id` still exists.
pub async fn exists(helix: &Helix, id: &str) -> Result<bool> {
    let answer = helix
        .call(Method::GET, "eventsub/conduits", &[], None)
        .await?
        .ok()?;
    let rows: Data<ConduitRow> = answer.json()?;
    Ok(rows.data.iter().any(|c| c.id == id))
}

/// Creates a conduit with one shard; its id.
pub async fn create(helix: &Helix) -> Result<String> {
    let body = json!({"shard_count": 1});
    let answer = helix
        .call(Method::POST, "eventsub/conduits", &[], Some(&body))
        .await?;
    if !answer.status.is_success() {
        return Err(refused("creating the EventSub conduit", &answer));
    }
    let rows: Data<ConduitRow> = answer.json()?;
    rows.data
        .into_iter()
        .map(|c| c.id)
        .find(|id| !id.is_empty() && id.len() <= 256)
        .ok_or_else(|| ConduitError::Refused("Helix created no conduit".into()))
}

/// Assigns shard 0 of `conduit` to the WebSocket `session`. `Ok(false)`: Twitch does not
/// know the conduit (any more).
pub async fn assign(helix: &Helix, conduit: &str, session: &str) -> Result<bool> {
    let body = json!({
        "conduit_id": conduit,
        "shards": [{"id": "0", "transport": {"method": "websocket", "session_id": session}}],
    });
    let answer = helix
        .call(Method::PATCH, "eventsub/conduits/shards", &[], Some(&body))
        .await?;
    if answer.status == StatusCode::NOT_FOUND {
        return Ok(false);
    }
    if !answer.status.is_success() {
        return Err(refused("assigning the EventSub shard", &answer));
    }
    let shards: ShardAnswer = answer.json()?;
    if let Some(e) = shards.errors.first() {
        return Err(ConduitError::Refused(format!(
            "assigning the EventSub shard failed: {} ({})",
            e.message.chars().take(200).collect::<String>(),
            e.code.chars().take(64).collect::<String>()
        )));
    }
    Ok(true)
}

/// Every subscription of ours on `conduit`, and the app's cost figures, page by page.
pub async fn list(helix: &Helix, conduit: &str) -> Result<Listing> {
    let mut listing = Listing::default();
    let mut after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut query = Vec::new();
        if let Some(cursor) = &after {
            query.push(("after", cursor.as_str()));
        }
        let answer = helix
            .call(Method::GET, "eventsub/subscriptions", &query, None)
            .await?
            .ok()?;
        let page: SubPage = answer.json()?;
        listing.total_cost = page.total_cost.unwrap_or(listing.total_cost);
        listing.max_total_cost = page.max_total_cost.unwrap_or(listing.max_total_cost);
        listing
            .ours
            .extend(page.data.into_iter().filter_map(|row| ours(row, conduit)));
        after = page
            .pagination
            .and_then(|p| p.cursor)
            .filter(|c| !c.is_empty());
        if after.is_none() {
            return Ok(listing);
        }
    }
    Err(ConduitError::Refused(format!(
        "the subscription list went on for more than {MAX_PAGES} pages"
    )))
}

fn ours(row: SubRow, conduit: &str) -> Option<Subscription> {
    let on_conduit = row.transport.get("conduit_id").and_then(|v| v.as_str()) == Some(conduit);
    let kind = SubKind::parse(&row.kind)?;
    let broadcaster_id = row
        .condition
        .get("broadcaster_user_id")
        .and_then(|v| v.as_str())?
        .to_string();
    on_conduit.then_some(Subscription {
        id: row.id,
        kind,
        broadcaster_id,
        status: row.status,
    })
}

/// Subscribes `conduit` to `kind` of `broadcaster_id`.
pub async fn subscribe(
    helix: &Helix,
    conduit: &str,
    kind: SubKind,
    broadcaster_id: &str,
) -> Result<Created> {
    let body = json!({
        "type": kind.as_str(),
        "version": "1",
        "condition": {"broadcaster_user_id": broadcaster_id},
        "transport": {"method": "conduit", "conduit_id": conduit},
    });
    let answer = helix
        .call(Method::POST, "eventsub/subscriptions", &[], Some(&body))
        .await?;
    match answer.status {
        StatusCode::CONFLICT => return Ok(Created::Exists),
        // Twitch answers the cost limit with 403 ("subscription cost exceeded" / "maximum
        // total cost"); any 403 or 429 that says "cost" is read so.
        s if (s == StatusCode::FORBIDDEN || s == StatusCode::TOO_MANY_REQUESTS)
            && answer.detail().to_ascii_lowercase().contains("cost") =>
        {
            return Ok(Created::CostExceeded)
        }
        s if !s.is_success() => return Err(refused("subscribing", &answer)),
        _ => {}
    }
    let page: SubPage = answer.json()?;
    let id = page
        .data
        .into_iter()
        .next()
        .map(|s| s.id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ConduitError::Refused("Helix created no subscription".into()))?;
    Ok(Created::Made {
        id,
        total_cost: page.total_cost,
        max_total_cost: page.max_total_cost,
    })
}

/// Deletes subscription `id` (one Twitch no longer has counts as deleted).
pub async fn unsubscribe(helix: &Helix, id: &str) -> Result<()> {
    let answer = helix
        .call(
            Method::DELETE,
            "eventsub/subscriptions",
            &[("id", id)],
            None,
        )
        .await?;
    if answer.status.is_success() || answer.status == StatusCode::NOT_FOUND {
        return Ok(());
    }
    Err(refused("unsubscribing", &answer))
}

/// User ids of `logins` (at most [`USERS_PER_REQUEST`]); logins Twitch does not know are
/// absent.
pub async fn user_ids(helix: &Helix, logins: &[Login]) -> Result<HashMap<Login, String>> {
    assert!(logins.len() <= USERS_PER_REQUEST, "caller batches");
    let query: Vec<(&str, &str)> = logins.iter().map(|l| ("login", l.as_str())).collect();
    let answer = helix.call(Method::GET, "users", &query, None).await?.ok()?;
    let rows: Data<UserRow> = answer.json()?;
    Ok(rows
        .data
        .into_iter()
        .filter_map(|u| {
            let login = Login::parse(&u.login.to_ascii_lowercase()).ok()?;
            let valid = !u.id.is_empty() && u.id.len() <= 64;
            (valid && logins.contains(&login)).then_some((login, u.id))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_conduits_subscriptions_of_our_types_are_ours() {
        let row = |kind: &str, conduit: &str| SubRow {
            id: "s".into(),
            status: "enabled".into(),
            kind: kind.into(),
            condition: json!({"broadcaster_user_id": "1"}),
            transport: json!({"method": "conduit", "conduit_id": conduit}),
        };
        assert!(ours(row("stream.online", "c1"), "c1").is_some());
        assert!(ours(row("stream.offline", "c1"), "c1").is_some());
        assert!(ours(row("stream.online", "c2"), "c1").is_none());
        assert!(ours(row("channel.update", "c1"), "c1").is_none());
        let mut no_condition = row("stream.online", "c1");
        no_condition.condition = json!({});
        assert!(ours(no_condition, "c1").is_none());
    }
}
