//! Applying commands to the state: rights first, then validate against what is stored,
//! persist, record the audit entry, and only then answer.

use chrono::Utc;
use recbot_commands::{Access, AddRequest, Command, Login, Source};
use tokio::sync::oneshot;
use tracing::{error, info};
use url::Url;

use super::calls::CheckedAdd;
use super::store::Watch;
use super::{Answer, Core, Origin, Refusal, Reply, Said};
use crate::chzzk::api::ChzzkError;
use crate::event::{Event, EventKind};
use crate::recorder::source_guard::{self, SourceGuard, UrlCheck};

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
            return Answer::Now(Reply::refused(Refusal::NotOperator {
                command: command.name(),
            }));
        }
        let name = command.name();
        let private = command.private_reply();
        let result = match command {
            // An HLS source's address is checked first; a name is resolved off the core loop
            // and the add applied after (see `CheckedAdd`).
            // A Chzzk channel is looked up (it must exist; its display name is kept) off the
            // loop too; Bilibili Live cannot be recorded yet.
            Command::Add(request) if request.source == Source::Bilibili => {
                return Answer::Now(Reply::refused(Refusal::PlatformNotAvailable(
                    request.name.platform(),
                )))
            }
            Command::Add(request) if request.source == Source::Chzzk => {
                return self.add_chzzk(request, origin)
            }
            Command::Add(request) => match self.check_source(&request) {
                Err(refused) => return Answer::Now(Reply::refused(refused)),
                Ok(Some((guard, url))) => {
                    return self.add_after_lookup(request, origin, guard, url)
                }
                Ok(None) => self.add(request, &origin, None).await,
            },
            Command::Remove { name } => self.remove(name, &origin).await,
            Command::List => self.list(origin.operator).await,
            // Finished from a worker task: the chat logger may take its time to answer, and a
            // flood of `status` must not hold the core (and so the recorders' events) up.
            Command::Status { name } => return self.status(name).await,
            Command::Help { topic } => Ok(Reply::ok(Said::Help(topic))),
            // Answered from a worker task: they talk to Google or Twitch.
            Command::Auth { service, device } => return self.auth(service, device).await,
            Command::Code { service, code } => return self.code(service, code).await,
            Command::Uploads => self.uploads_list(origin.operator).await,
            Command::Retry { id } => self.retry(id, &origin).await,
            // Answered from the blocking pool: the cut reads and writes files.
            Command::Cut {
                name,
                from_ms,
                to_ms,
                session,
            } => match self.cut(name, from_ms, to_ms, session).await {
                Ok(Ok(answer)) => return answer,
                Ok(Err(refused)) => return Answer::Now(Reply::refused(refused)),
                Err(e) => Err(e),
            },
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
    fn check_source(&self, request: &AddRequest) -> Result<Option<(SourceGuard, Url)>, Refusal> {
        let Source::Hls { url } = &request.source else {
            return Ok(None);
        };
        let url = Url::parse(url).map_err(|e| source_refusal(&request.name, &e.to_string()))?;
        let guard = SourceGuard::from_config(&self.config.recording);
        match guard.check_url(&url) {
            Err(source_guard::Refusal(why)) => Err(source_refusal(&request.name, &why)),
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
            if let Err(source_guard::Refusal(why)) = guard.check_source(&url).await {
                return Reply::refused(source_refusal(&request.name, &why));
            }
            checked_add(&adds, request, origin, None).await
        }))
    }

    /// `add chzzk …`: the channel's name asked of Chzzk in a worker task; an unknown channel
    /// is refused with nothing stored, a known one comes back as [`CheckedAdd`] with its
    /// display name.
    fn add_chzzk(&self, request: AddRequest, origin: Origin) -> Answer {
        let adds = self.adds_tx.clone();
        let api = self.chzzk_api.clone();
        Answer::Later(Box::pin(async move {
            let Some(id) = request.name.chzzk_id() else {
                return Reply::refused(Refusal::NoSuchChannel(request.name));
            };
            let display_name = match api.channel_name(&id).await {
                Ok(name) => name,
                Err(ChzzkError::NoSuchChannel(_)) => {
                    return Reply::refused(Refusal::NoSuchChannel(request.name))
                }
                Err(e) => {
                    return Reply::refused(Refusal::ChannelLookupFailed {
                        name: request.name,
                        error: e.to_string(),
                    })
                }
            };
            checked_add(&adds, request, origin, Some(display_name)).await
        }))
    }

    /// `add` once its source was checked (`CheckedAdd`).
    pub(super) async fn add_checked(
        &mut self,
        request: AddRequest,
        origin: Origin,
        display_name: Option<String>,
    ) -> Reply {
        if self.shutdown.is_cancelled() {
            return Reply::refused(Refusal::ShuttingDownUnchanged);
        }
        self.add(request, &origin, display_name)
            .await
            .unwrap_or_else(|e| failed("add", e))
    }

    /// `display_name`: the channel's, when its platform was asked (a new one replaces the
    /// stored one).
    async fn add(
        &mut self,
        request: AddRequest,
        origin: &Origin,
        display_name: Option<String>,
    ) -> anyhow::Result<Reply> {
        let AddRequest {
            name,
            source,
            options,
        } = request;
        let existing = self.store.watch(&name).await?;
        let updated = existing.is_some();
        let watch = match existing {
            Some(old) if old.source != source => {
                return Ok(Reply::refused(Refusal::WatchedAs {
                    name,
                    source: old.source,
                }));
            }
            Some(old)
                if options.quality.is_none()
                    && options.upload.is_none()
                    && options.chat.is_none()
                    && options.post.is_none()
                    && (display_name.is_none() || display_name == old.display_name) =>
            {
                return Ok(Reply::ok(Said::AlreadyWatching(old)));
            }
            Some(old) => Watch {
                quality: options.quality.unwrap_or(old.quality),
                upload: options.upload.unwrap_or(old.upload),
                chat: options.chat.unwrap_or(old.chat),
                post: options.post.or(old.post),
                display_name: display_name.or(old.display_name),
                ..old
            },
            None => Watch {
                display_name,
                chat: super::chat::logs_chat_of(&source) && options.chat.unwrap_or(true),
                name,
                source,
                quality: options.quality.unwrap_or(self.config.recording.quality),
                upload: options.upload.unwrap_or(true),
                post: options.post,
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
                options: crate::format::watch_options(
                    &watch.source,
                    watch.quality,
                    watch.upload,
                    watch.chat,
                    watch.post,
                ),
            },
        ))
        .await;
        let uploads_disabled = watch.upload && !self.config.youtube.enabled;
        Ok(Reply::ok(Said::Added {
            watch,
            updated,
            uploads_disabled,
        }))
    }

    async fn remove(&mut self, name: Login, origin: &Origin) -> anyhow::Result<Reply> {
        if !self.store.delete_watch(&name).await? {
            return Ok(Reply::refused(Refusal::NotWatched(name)));
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
        Ok(Reply::ok(Said::Removed(name)))
    }

    /// `list`. Anyone in the room may read it: who added a login and from which room is for
    /// operators (user ids are the key to the operators list).
    async fn list(&self, operator: bool) -> anyhow::Result<Reply> {
        let watches = self.store.watches().await?;
        Ok(Reply::ok(Said::List { watches, operator }))
    }
}

/// Hands an `add` whose source was checked to the core task; its reply is the command's.
async fn checked_add(
    adds: &tokio::sync::mpsc::Sender<CheckedAdd>,
    request: AddRequest,
    origin: Origin,
    display_name: Option<String>,
) -> Reply {
    let (ack, reply) = oneshot::channel();
    let add = CheckedAdd {
        request,
        origin,
        display_name,
        ack,
    };
    if adds.send(add).await.is_err() {
        return Reply::refused(Refusal::ShuttingDownUnchanged);
    }
    reply
        .await
        .unwrap_or_else(|_| Reply::refused(Refusal::StoppedBeforeAdd))
}

fn failed(name: &'static str, e: anyhow::Error) -> Reply {
    error!(error = %e, command = name, "command failed");
    Reply::refused(Refusal::Failed {
        command: name,
        error: format!("{e:#}"),
    })
}

/// `add hls` refused by the source guard: the reason (an address or host, never the URL,
/// which may carry a credential).
fn source_refusal(name: &Login, why: &str) -> Refusal {
    Refusal::SourceRefused {
        name: name.clone(),
        why: why.to_string(),
    }
}
