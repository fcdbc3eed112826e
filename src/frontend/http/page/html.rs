//! The status page's HTML, written with `format!`/`write!`. Every value that comes from the
//! store, a platform or a person (logins, titles, file names, errors, token names) passes
//! through [`esc`], the one escaping helper, whether it lands in text or in an attribute; the
//! words for states come from `frontend/render` like everywhere else.

use std::fmt::Write;

use super::data::{PageData, Part, Uploads, MAX_LOGINS};
use crate::config::Role;
use crate::core::store::{JobState, UploadJob, WaitReason};
use crate::core::{LiveOf, LoginStatus, Notice, RecordingNow, StatusReport};
use crate::frontend::render::{self, Markup};

/// `text` made inert in HTML text and in double- or single-quoted attribute values.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The document around `body`; `script`: the page's live updates are loaded.
fn document(title: &str, body_attrs: &str, body: &str, script: bool) -> String {
    let script = if script {
        "<script src=\"/static/page.js\" defer></script>"
    } else {
        ""
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{}</title><link rel=\"icon\" href=\"/static/favicon.svg\">\
         <link rel=\"stylesheet\" href=\"/static/page.css\">{script}</head>\
         <body{body_attrs}>{body}</body></html>\n",
        esc(title)
    )
}

/// The login form, with why the last attempt failed when it did.
pub(super) fn login_form(message: Option<&str>) -> String {
    let message = message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(m)))
        .unwrap_or_default();
    let body = format!(
        "<main class=\"login\"><h1>recbot</h1>{message}\
         <form method=\"post\" action=\"/login\" id=\"login\">\
         <label for=\"token\">Token (an <code>[[http.tokens]]</code> entry)</label>\
         <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Log in</button></form></main>"
    );
    document("recbot — log in", "", &body, false)
}

/// A page saying why an action was refused, with the way back.
pub(super) fn message_page(title: &str, detail: &str) -> String {
    let body = format!(
        "<main><h1>{}</h1><p class=\"error\" role=\"alert\">{}</p>\
         <p><a href=\"/\">Back to the status page</a></p></main>",
        esc(title),
        esc(detail)
    );
    document(title, "", &body, false)
}

/// The status page.
pub(super) fn page(d: &PageData) -> String {
    let mut body = header(d);
    body.push_str("<main>");
    body.push_str(&logins(d));
    body.push_str(&events(&d.events));
    let retry_csrf = d
        .csrf
        .as_deref()
        .filter(|_| d.caller.role == Role::Operator);
    body.push_str(&uploads(&d.uploads, retry_csrf));
    body.push_str(&text_section("quota", "YouTube quota", &d.quota, |q| {
        render::said(&crate::core::Said::Quota(q.clone()), Markup::Plain)
    }));
    body.push_str(&text_section("disk", "Disk", &d.disk, render::disk));
    body.push_str("</main>");
    let attrs = format!(" data-after=\"{}\"", d.after);
    document("recbot status", &attrs, &body, true)
}

fn header(d: &PageData) -> String {
    let service = match &d.service {
        Ok(s) => render::status(&StatusReport::Service(s.clone()), Markup::Plain),
        Err(why) => why.clone(),
    };
    let role = match d.caller.role {
        Role::Operator => "operator",
        Role::Viewer => "viewer",
    };
    // Only a session logs out (a bearer header is the client's own).
    let logout = match &d.csrf {
        Some(csrf) => format!(
            "<form method=\"post\" action=\"/logout\" id=\"logout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">Log out</button></form>",
            esc(csrf)
        ),
        None => String::new(),
    };
    format!(
        "<header><h1>recbot</h1><p class=\"who\">{} ({role}) \
         <span id=\"live-updates\" data-state=\"connecting\">live updates: connecting</span></p>\
         {logout}<section id=\"service\"><pre>{}</pre></section></header>",
        esc(&d.caller.name),
        esc(&service)
    )
}

fn logins(d: &PageData) -> String {
    let mut out = String::from("<section id=\"logins\"><h2>Watched logins</h2>");
    match &d.logins {
        Err(why) => push_error(&mut out, why),
        Ok(logins) if logins.is_empty() => {
            out.push_str("<p class=\"empty\">Not watching anything yet.</p>")
        }
        Ok(logins) => {
            out.push_str(
                "<table><thead><tr><th>Login</th><th>State</th><th>Now</th><th>Chat</th></tr>\
                 </thead><tbody>",
            );
            for l in logins {
                out.push_str(&login_row(l));
            }
            out.push_str("</tbody></table>");
        }
    }
    if d.more_logins > 0 {
        let _ = write!(
            out,
            "<p class=\"more\">… and {} more (the first {MAX_LOGINS} are shown).</p>",
            d.more_logins
        );
    }
    out.push_str("</section>");
    out
}

/// A login's state in one word (the row's `data-state`) and its label.
fn state_of(l: &LoginStatus) -> (&'static str, &'static str) {
    match (&l.recording, &l.live) {
        (Some(RecordingNow::Recording { .. }), _) => ("recording", "⏺ recording"),
        (Some(RecordingNow::Waiting { .. }), _) => ("waiting", "waiting for the stream"),
        (None, Some(LiveOf::Live { .. })) => ("live", "🔴 live"),
        (None, Some(LiveOf::NotLive { .. })) => ("offline", "offline"),
        (None, Some(LiveOf::Unknown { .. })) => ("unknown", "unknown"),
        (None, None) => ("idle", "not recording"),
    }
}

fn login_row(l: &LoginStatus) -> String {
    let (state, label) = state_of(l);
    let mut now = Vec::new();
    if let Some(live) = &l.live {
        now.push(render::live_of(live));
    }
    if let Some(recording) = &l.recording {
        now.push(render::recording_now(recording));
    }
    let now: Vec<String> = now.iter().map(|line| esc(line)).collect();
    let chat = l
        .chat
        .as_ref()
        .and_then(render::chat_line)
        .unwrap_or_else(|| "—".into());
    let name = l.watch.name.as_str();
    format!(
        "<tr data-login=\"{}\" data-state=\"{state}\"><th scope=\"row\">{}</th>\
         <td class=\"state\">{label}</td><td class=\"now\">{}</td><td class=\"chat\">{}</td></tr>",
        esc(name),
        esc(name),
        now.join("<br>"),
        esc(&chat)
    )
}

fn events(events: &Part<Vec<Notice>>) -> String {
    let mut out = String::from("<section id=\"events\"><h2>Recent events</h2>");
    match events {
        Err(why) => push_error(&mut out, why),
        Ok(events) => {
            out.push_str("<ol id=\"event-list\">");
            for n in events {
                let at = n.event.at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
                let _ = write!(
                    out,
                    "<li data-id=\"{}\" data-type=\"{}\"><time>{}</time> {}</li>",
                    n.seq,
                    esc(n.event.kind_name()),
                    esc(&at),
                    esc(&render::event_line(&n.event))
                );
            }
            out.push_str("</ol>");
        }
    }
    out.push_str("</section>");
    out
}

fn uploads(uploads: &Part<Uploads>, csrf: Option<&str>) -> String {
    let mut out = String::from("<section id=\"uploads\"><h2>Uploads</h2>");
    match uploads {
        Err(why) => push_error(&mut out, why),
        Ok(u) => {
            if !u.enabled {
                out.push_str("<p>Uploads are disabled in the config ([youtube] enabled).</p>");
            }
            if u.jobs.is_empty() {
                out.push_str("<p class=\"empty\">No uploads yet.</p>");
            } else {
                out.push_str("<table><tbody>");
                for job in &u.jobs {
                    out.push_str(&upload_row(job, u.links, csrf));
                }
                out.push_str("</tbody></table>");
            }
        }
    }
    out.push_str("</section>");
    out
}

/// A job the page offers `retry` for (the core decides; these are the ones it accepts).
fn retryable(job: &UploadJob) -> bool {
    matches!(
        (job.state, job.wait_reason),
        (JobState::Failed, _) | (JobState::Deferred, Some(WaitReason::Retry))
    )
}

fn upload_row(job: &UploadJob, links: bool, csrf: Option<&str>) -> String {
    let line = render::describe_job(job, links, Markup::Plain);
    let progress = if job.total_bytes > 0 {
        format!(
            "<progress max=\"{}\" value=\"{}\">{:.0}%</progress>",
            job.total_bytes,
            job.confirmed_bytes.min(job.total_bytes),
            job.confirmed_bytes as f64 * 100.0 / job.total_bytes as f64
        )
    } else {
        String::new()
    };
    let retry = match csrf {
        Some(csrf) if retryable(job) => format!(
            "<form method=\"post\" action=\"/uploads/{}/retry\" class=\"retry\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">Retry</button></form>",
            job.id,
            esc(csrf)
        ),
        _ => String::new(),
    };
    format!(
        "<tr data-upload=\"{}\" data-state=\"{}\"><td>{}</td><td>{progress}</td><td>{retry}</td></tr>",
        job.id,
        esc(job.state.as_str()),
        esc(&line)
    )
}

/// A section that is one text from `render`.
fn text_section<T>(id: &str, title: &str, part: &Part<T>, words: impl Fn(&T) -> String) -> String {
    let mut out = format!("<section id=\"{id}\"><h2>{}</h2>", esc(title));
    match part {
        Ok(value) => {
            let _ = write!(out, "<pre>{}</pre>", esc(&words(value)));
        }
        Err(why) => push_error(&mut out, why),
    }
    out.push_str("</section>");
    out
}

fn push_error(out: &mut String, why: &str) {
    let _ = write!(out, "<p class=\"error\">{}</p>", esc(why));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            esc("<script>alert(1)</script> & \"x\" 'y'"),
            "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot; &#39;y&#39;"
        );
        assert_eq!(esc("plain ✓"), "plain ✓");
    }

    #[test]
    fn the_login_form_escapes_its_message() {
        let html = login_form(Some("<img src=x onerror=alert(1)>"));
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<script"), "no script on the login form");
    }
}
