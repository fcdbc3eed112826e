//! Applying commands to the state: rights first, then validate against what is stored,
//! persist, record the audit entry, and only then answer.

use chrono::Utc;
use recbot_commands::{Access, AddRequest, Command, Login, Source};
use tokio::sync::oneshot;
use tracing::{error, info};
use url::Url;

use super::calls::CheckedAdd;
use super::store::Watch;
use super::{Answer, Core, Origin, Reply};
use crate::event::{Event, EventKind};
use crate::frontend::render;
use crate::recorder::source_guard::{Refusal, SourceGuard, UrlCheck};

impl Core {
    pub(super) async fn apply(&mut self, command: Command, origin: Origin) -> Answer {
        if command.access() == Access::Operator && !origin.operator {
            info!(user = %origin.user, room = %origin.room, command = %command, "refused: not an operator");
            self.publish(Event::now(
                None,
                EventKind::CommandRefused {
                    by: origin.user.clone(),
                    room: origin.room.clone(),
                    command: command.to_string(),
                },
            ))
            .await;
            return Answer::Now(Reply::refused(format!(
                "Only operators may run `{}`. Ask an operator, or have your user id added to \
                 the operators list in recbot's config.",
                command.name()
            )));
        }
        let name = command.name();
        let private = command.private_reply();
        let result = match command {
            // An HLS source's address is checked first; a name is resolved off the core loop
            // and the add applied after (see `CheckedAdd`).
            Command::Add(request) => match self.check_source(&request) {
                Err(refused) => return Answer::Now(refused),
                Ok(Some((guard, url))) => {
                    return self.add_after_lookup(request, origin, guard, url)
                }
                Ok(None) => self.add(request, &origin).await,
            },
            Command::Remove { name } => self.remove(name, &origin).await,
            Command::List => self.list(origin.operator).await,
            // Finished from a worker task: the chat logger may take its time to answer, and a
            // flood of `status` must not hold the core (and so the recorders' events) up.
            Command::Status { name } => {
                return self.status(name, render::Markup::of(&origin.room)).await
            }
            Command::Help { topic } => Ok(Reply::ok(recbot_commands::help(topic))),
            // Answered from a worker task: they talk to Google or Twitch.
            Command::Auth { service, device } => return self.auth(service, device).await,
            Command::Code { service, code } => return self.code(service, code).await,
            Command::Uploads => {
                let markup = render::Markup::of(&origin.room);
                self.uploads_list(origin.operator, markup).await
            }
            Command::Retry { id } => self.retry(id, &origin).await,
            Command::Quota => self.quota().await,
            // Answered from a worker task: walking big folders must not hold the core up.
            Command::Disk => return self.disk_command(origin.operator),
        };
        let mut reply = result.unwrap_or_else(|e| failed(name, e));
        reply.private |= private;
        Answer::Now(reply)
    }

    /// Where an `add hls` source may be read from, as far as that is known without resolving
    /// its name: `Err` is the refusal, `Ok(Some(..))` a name still to resolve.
    fn check_source(&self, request: &AddRequest) -> Result<Option<(SourceGuard, Url)>, Reply> {
        let Source::Hls { url } = &request.source else {
            return Ok(None);
        };
        let url = Url::parse(url).map_err(|e| refused_source(&request.name, &e.to_string()))?;
        let guard = SourceGuard::from_config(&self.config.recording);
        match guard.check_url(&url) {
            Err(Refusal(why)) => Err(refused_source(&request.name, &why)),
            Ok(UrlCheck::Allowed) => Ok(None),
            Ok(UrlCheck::Resolve { .. }) => Ok(Some((guard, url))),
        }
    }

    /// Resolves the source's name in a worker task; the add itself comes back to the core as
    /// [`CheckedAdd`], so the watch list still has one writer.
    fn add_after_lookup(
        &self,
        request: AddRequest,
        origin: Origin,
        guard: SourceGuard,
        url: Url,
    ) -> Answer {
        let adds = self.adds_tx.clone();
        Answer::Later(Box::pin(async move {
            if let Err(Refusal(why)) = guard.check_source(&url).await {
                return refused_source(&request.name, &why);
            }
            let (ack, reply) = oneshot::channel();
            if adds
                .send(CheckedAdd {
                    request,
                    origin,
                    ack,
                })
                .await
                .is_err()
            {
                return Reply::refused("recbot is shutting down; nothing was changed");
            }
            reply.await.unwrap_or_else(|_| {
                Reply::refused("recbot stopped before adding the source; nothing was changed")
            })
        }))
    }

    /// `add` once its source was checked (`CheckedAdd`).
    pub(super) async fn add_checked(&mut self, request: AddRequest, origin: Origin) -> Reply {
        if self.shutdown.is_cancelled() {
            return Reply::refused("recbot is shutting down; nothing was changed");
        }
        self.add(request, &origin)
            .await
            .unwrap_or_else(|e| failed("add", e))
    }

    async fn add(&mut self, request: AddRequest, origin: &Origin) -> anyhow::Result<Reply> {
        let AddRequest {
            name,
            source,
            options,
        } = request;
        let existing = self.store.watch(&name).await?;
        let updated = existing.is_some();
        let watch = match existing {
            Some(old) if old.source != source => {
                return Ok(Reply::refused(format!(
                    "`{name}` is already watched as {}; `remove {name}` first to change the source.",
                    describe_source(&old.source)
                )));
            }
            Some(old)
                if options.quality.is_none()
                    && options.upload.is_none()
                    && options.chat.is_none() =>
            {
                return Ok(Reply::ok(format!(
                    "Already watching {name} ({}).",
                    old.options_text()
                )));
            }
            Some(old) => Watch {
                quality: options.quality.unwrap_or(old.quality),
                upload: options.upload.unwrap_or(old.upload),
                chat: options.chat.unwrap_or(old.chat),
                ..old
            },
            None => Watch {
                chat: matches!(source, Source::Twitch) && options.chat.unwrap_or(true),
                name,
                source,
                quality: options.quality.unwrap_or(self.config.recording.quality),
                upload: options.upload.unwrap_or(true),
                room: origin.room.clone(),
                added_by: origin.user.clone(),
                added_at: Utc::now(),
            },
        };
        self.store.put_watch(&watch).await?;
        self.watches_changed().await;
        self.publish(Event::now(
            Some(watch.name.clone()),
            EventKind::WatchAdded {
                by: origin.user.clone(),
                room: origin.room.clone(),
                options: watch.options_text(),
            },
        ))
        .await;
        let mut text = if updated {
            format!("Updated {}: {}.", watch.name, watch.options_text())
        } else {
            format!(
                "Watching {} ({}). Its events will be posted here.",
                watch.name,
                watch.options_text()
            )
        };
        if watch.upload && !self.config.youtube.enabled {
            text.push_str(" Note: YouTube uploads are disabled in the config ([youtube] enabled).");
        }
        Ok(Reply::ok(text))
    }

    async fn remove(&mut self, name: Login, origin: &Origin) -> anyhow::Result<Reply> {
        if !self.store.delete_watch(&name).await? {
            return Ok(Reply::refused(format!(
                "`{name}` is not watched; `list` shows what is."
            )));
        }
        self.watches_changed().await;
        self.publish(Event::now(
            Some(name.clone()),
            EventKind::WatchRemoved {
                by: origin.user.clone(),
                room: origin.room.clone(),
            },
        ))
        .await;
        Ok(Reply::ok(format!(
            "Stopped watching {name}. Its recordings and chat logs are kept."
        )))
    }

    /// `list`. Anyone in the room may read it: who added a login and from which room is for
    /// operators (user ids are the key to the operators list).
    async fn list(&self, operator: bool) -> anyhow::Result<Reply> {
        let watches = self.store.watches().await?;
        if watches.is_empty() {
            return Ok(Reply::ok(
                "Not watching anything yet. Add a channel with `add <login>`.",
            ));
        }
        let mut text = format!("Watching {}:", watches.len());
        for w in &watches {
            let added = if operator {
                format!(
                    "added by {} in {}, {}",
                    w.added_by,
                    w.room,
                    w.added_at.format("%Y-%m-%d")
                )
            } else {
                format!("added {}", w.added_at.format("%Y-%m-%d"))
            };
            text.push_str(&format!(
                "\n• {} — {}, {} ({added})",
                w.name,
                describe_source(&w.source),
                w.options_text(),
            ));
        }
        Ok(Reply::ok(text))
    }

    /// `status [name]`: what the core knows is gathered now; the chat logger's line and the
    /// recent events are added by a worker task (at most [`STATUS_QUERIES`] at a time, so a
    /// flood of `status` cannot flood the chat logger either).
    /// Recent events are rendered for the `markup` of the room that asked.
    async fn status(&self, name: Option<Login>, markup: render::Markup) -> Answer {
        let head = match name {
            None => self
                .service_status()
                .await
                .map(|text| Ok((text, Tail::Service))),
            Some(name) => self.login_status(name).await,
        };
        let (mut text, tail) = match head {
            Ok(Ok(found)) => found,
            Ok(Err(refused)) => return Answer::Now(refused),
            Err(e) => {
                error!(error = %e, command = "status", "command failed");
                return Answer::Now(Reply::refused(format!(
                    "`status` failed: {e:#}. Nothing was changed; see the service log for details."
                )));
            }
        };
        let chat = self.chat.clone();
        let store = self.store.clone();
        Answer::Later(Box::pin(async move {
            let _permit = STATUS_QUERIES.acquire().await;
            let (chat_of, recent_of) = match tail {
                Tail::Service => (Some(None), None),
                Tail::Login { name, chat: true } => (Some(Some(name.clone())), Some(name)),
                Tail::Login { name, chat: false } => (None, Some(name)),
            };
            if let Some(login) = chat_of {
                if let Some(line) = super::chat::chat_status_of(chat, store.clone(), login).await {
                    text.push('\n');
                    text.push_str(&line);
                }
            }
            if let Some(name) = recent_of {
                match store.recent_events(Some(&name), 5).await {
                    Ok(recent) if !recent.is_empty() => {
                        text.push_str("\nRecent:");
                        for event in recent {
                            text.push_str(&format!(
                                "\n  {} {}",
                                event.at.format("%Y-%m-%d %H:%M:%S"),
                                render::event_line_for(&event, markup)
                            ));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => error!(error = %e, "status: cannot read recent events"),
                }
            }
            Reply::ok(text)
        }))
    }

    /// The core's part of `status <name>` (or the refusal of an unknown name).
    async fn login_status(&self, name: Login) -> anyhow::Result<Result<(String, Tail), Reply>> {
        let Some(watch) = self.store.watch(&name).await? else {
            return Ok(Err(Reply::refused(format!(
                "`{name}` is not watched; `list` shows what is."
            ))));
        };
        let mut text = format!(
            "{} — {}, {}; events go to {}.",
            watch.name,
            describe_source(&watch.source),
            watch.options_text(),
            watch.room
        );
        if watch.source == Source::Twitch {
            if let Some(live) = self.live_status_of(&watch.name) {
                text.push_str(&format!("\n{live}"));
            }
        }
        if let Some(line) = self.recording_status(&name) {
            text.push('\n');
            text.push_str(&line);
        }
        let chat = watch.chat && matches!(watch.source, Source::Twitch);
        Ok(Ok((text, Tail::Login { name, chat })))
    }

    /// The core's part of `status` (the chat line is added by [`Core::status`]).
    async fn service_status(&self) -> anyhow::Result<String> {
        let watches = self.store.watches().await?;
        let hls = watches
            .iter()
            .filter(|w| matches!(w.source, Source::Hls { .. }))
            .count();
        let up = self.started.elapsed().as_secs();
        let mut frontends = Vec::new();
        if self.config.console_enabled() {
            frontends.push("console");
        }
        if self.config.slack.is_configured() {
            frontends.push("slack");
        }
        if self.config.discord.is_configured() {
            frontends.push("discord");
        }
        let mut text = format!(
            "recbot {} up {}h {:02}m · watching {} ({} Twitch, {} HLS) · recording {} · \
             front-ends: {} · state schema v{}",
            env!("CARGO_PKG_VERSION"),
            up / 3600,
            up % 3600 / 60,
            watches.len(),
            watches.len() - hls,
            hls,
            self.recordings_running(),
            frontends.join(", "),
            self.store.schema_version().await?
        );
        if let Some(line) = self.live_status_line() {
            text.push('\n');
            text.push_str(&line);
        }
        Ok(text)
    }
}

fn failed(name: &str, e: anyhow::Error) -> Reply {
    error!(error = %e, command = name, "command failed");
    Reply::refused(format!(
        "`{name}` failed: {e:#}. Nothing was changed; see the service log for details."
    ))
}

/// `add hls` refused by the source guard: the reason (an address or host, never the URL,
/// which may carry a credential).
fn refused_source(name: &Login, why: &str) -> Reply {
    Reply::refused(format!("Not adding {name}: {why}. Nothing was changed."))
}

/// `status` replies finished at the same time; the others wait their turn.
static STATUS_QUERIES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// What a `status` reply still needs once the core's part is done.
enum Tail {
    /// The chat logger's service line.
    Service,
    /// The login's chat line (when it logs chat) and its recent events.
    Login { name: Login, chat: bool },
}

/// A source as replies show it. Anyone in the room may read `list` and `status`, so an HLS
/// URL is shown without what may be a credential: no `user:pass@`, no query (a signed URL's
/// `?token=…`), no fragment.
fn describe_source(source: &Source) -> String {
    match source {
        Source::Twitch => "Twitch".into(),
        Source::Hls { url } => format!("HLS {}", public_url(url)),
    }
}

/// Scheme, host, port and path of `url` (`?…` marks a query left out).
fn public_url(url: &str) -> String {
    let Ok(url) = url::Url::parse(url) else {
        return "(URL not shown)".into();
    };
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    if url.query().is_some() {
        shown.push_str("?…");
    }
    shown
}
