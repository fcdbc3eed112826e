//! The JSON of replies and events, built from the core's typed data (`Said`, `StatusReport`,
//! `Watch`, `UploadJob`, `Event`). Nothing secret is in that data; an upload's resumable
//! session address is left out like in chat.

use serde_json::{json, Map, Value};

use crate::core::store::{UploadJob, Watch};
use crate::core::{video_url, LoginStatus, Notice, Said, ServiceStatus, StatusReport};
use crate::event::Event;
use crate::frontend::render::{self, Markup};
use recbot_commands::Source;

/// A reply's data as JSON (`Said::Refused` is answered as a problem before this).
pub(super) fn said(said: &Said) -> Value {
    match said {
        Said::Added {
            watch,
            updated,
            uploads_disabled,
        } => json!({
            "added": !updated,
            "updated": updated,
            "uploads_disabled": uploads_disabled,
            "login": self::watch(watch, true),
        }),
        Said::AlreadyWatching(w) => {
            json!({ "added": false, "updated": false, "login": watch(w, true) })
        }
        Said::Removed(login) => json!({ "removed": login.as_str() }),
        Said::List { watches, operator } => json!({
            "logins": watches.iter().map(|w| watch(w, *operator)).collect::<Vec<_>>(),
        }),
        Said::Status(report) => status(report),
        Said::Disk(report) => json!(report),
        Said::Uploads {
            jobs,
            links,
            enabled,
        } => json!({
            "enabled": enabled,
            "uploads": jobs.iter().map(|j| upload(j, *links)).collect::<Vec<_>>(),
        }),
        Said::Requeued { id, enabled } => json!({ "requeued": id, "enabled": enabled }),
        Said::Quota(report) => json!(report),
        Said::Cut(report) => json!(report),
        Said::AuthLink(link) => json!(link),
        Said::Connected(connected) => json!({ "connected": connected }),
        // Not reachable through the API's routes; the words are still the data.
        Said::Help(_) | Said::Refused(_) => json!({ "text": render::said(said, Markup::Plain) }),
    }
}

/// A watch-list entry; who added it and from where only for operators (as `list` in chat).
pub(super) fn watch(w: &Watch, operator: bool) -> Value {
    let mut value = json!({
        "login": w.name.as_str(),
        "quality": w.quality.as_str(),
        "upload": w.upload,
        "chat": w.chat,
        "added_at": w.added_at,
    });
    let object = value.as_object_mut().expect("an object");
    if let Some(post) = w.post {
        object.insert("post".into(), post.as_str().into());
    }
    object.insert("source".into(), w.source.as_str().into());
    if let (Source::Hls { url }, true) = (&w.source, operator) {
        object.insert("hls_url".into(), url.as_str().into());
    }
    if let Some(name) = &w.display_name {
        object.insert("display_name".into(), name.as_str().into());
    }
    if operator {
        object.insert("added_by".into(), w.added_by.as_str().into());
        object.insert("room".into(), w.room.to_string().into());
    }
    value
}

/// An upload job (its resumable session address never).
fn upload(j: &UploadJob, links: bool) -> Value {
    let url = match (&j.video_id, links) {
        (Some(id), true) => Some(video_url(id)),
        _ => None,
    };
    json!({
        "id": j.id,
        "login": j.login.as_ref().map(|l| l.as_str()),
        "session": j.session,
        "file": j.file_name(),
        "state": j.state.as_str(),
        "sent_bytes": j.confirmed_bytes,
        "total_bytes": j.total_bytes,
        "attempts": j.attempts,
        "next_attempt_at": j.next_attempt_at,
        "wait_reason": j.wait_reason.map(|w| w.as_str()),
        "video_id": j.video_id.as_ref().filter(|_| links),
        "url": url,
        "last_error": j.last_error,
        "created_at": j.created_at,
        "updated_at": j.updated_at,
    })
}

fn status(report: &StatusReport) -> Value {
    let text = render::status(report, Markup::Plain);
    match report {
        StatusReport::Service(s) => service(s, text),
        StatusReport::Login(l) => login(l, text),
    }
}

fn service(s: &ServiceStatus, text: String) -> Value {
    json!({
        "version": s.version,
        "up_secs": s.up_secs,
        "watching": s.watching,
        "hls": s.hls,
        "recording": s.recording,
        "frontends": s.frontends,
        "schema": s.schema,
        "live_detection": s.live,
        "viewer": s.viewer,
        "text": text,
    })
}

fn login(l: &LoginStatus, text: String) -> Value {
    json!({
        "login": watch(&l.watch, false),
        "live": l.live,
        "recording": l.recording,
        "next_check_secs": l.next_check_secs,
        "recent": l.recent.iter().map(|e| event(None, e)).collect::<Vec<_>>(),
        "text": text,
    })
}

/// A notice as the event stream sends it.
pub(super) fn notice(n: &Notice) -> Value {
    event(Some(n.seq), &n.event)
}

/// An event: `id` (its event-log id, when known), `type` (its stable name), `login`,
/// `session`, `at`, then the kind's own fields.
pub(super) fn event(id: Option<i64>, e: &Event) -> Value {
    let mut object = Map::new();
    if let Some(id) = id {
        object.insert("id".into(), id.into());
    }
    object.insert("type".into(), e.kind_name().into());
    object.insert("login".into(), json!(e.login.as_ref().map(|l| l.as_str())));
    object.insert("session".into(), json!(e.session));
    object.insert("at".into(), json!(e.at));
    if let Ok(Value::Object(fields)) = serde_json::to_value(&e.kind) {
        for (key, value) in fields {
            if key != "type" {
                object.entry(key).or_insert(value);
            }
        }
    }
    Value::Object(object)
}
