//! Core glue for chat logging: starts the chat worker, tells it which rooms are wanted (watches
//! with source Twitch and chat on), hands it the Twitch user token, asks it for the chat file
//! of every finished recording part. (`status` asks it from `status.rs`.) The worker never reads the
//! database; what it needs comes from here.

use recbot_commands::Source;
use tracing::{error, warn};

use super::Core;
use crate::chat::{self, ChatSettings};
use crate::config::ChatLogin;
use crate::event::{Event, EventKind};
use crate::secret::Secret;

impl Core {
    /// Starts the chat worker unless `[chat] enabled = false`.
    pub(super) async fn start_chat(&mut self) {
        if !self.config.chat.enabled {
            return;
        }
        let settings = match ChatSettings::from_config(&self.config) {
            Ok(settings) => settings,
            Err(e) => {
                error!(error = %format!("{e:#}"), "chat logging cannot start");
                return;
            }
        };
        let token = self.twitch_user_token().await;
        self.chat = Some(chat::start(
            settings,
            token,
            self.events_tx.clone(),
            &self.workers,
            self.shutdown.child_token(),
        ));
    }

    async fn twitch_user_token(&self) -> Option<Secret> {
        if self.config.chat.login != ChatLogin::User {
            return None;
        }
        match self.store.token("twitch").await {
            Ok(token) => token.map(|t| t.access_token),
            Err(e) => {
                warn!(error = %e, "cannot read the Twitch token; chat stays anonymous");
                None
            }
        }
    }

    /// The wanted rooms follow the watch list.
    pub(super) async fn chat_watches_changed(&mut self) {
        let Some(chat) = &self.chat else { return };
        match self.store.watches().await {
            Ok(watches) => {
                let wanted = watches
                    .into_iter()
                    .filter(|w| w.chat && matches!(w.source, Source::Twitch))
                    .map(|w| w.name)
                    .collect();
                chat.set_wanted(wanted).await;
            }
            Err(e) => error!(error = %e, "cannot read the watch list for chat logging"),
        }
    }

    /// Part finished → its chat file beside it.
    pub(super) async fn chat_react(&mut self, event: &Event) {
        let Some(chat) = self.chat.clone() else {
            return;
        };
        let EventKind::RecordingPartFinished { part, sidecar, .. } = &event.kind else {
            return;
        };
        let Some(login) = &event.login else { return };
        let logs_chat = matches!(
            self.store.watch(login).await,
            Ok(Some(w)) if w.chat && matches!(w.source, Source::Twitch)
        );
        if logs_chat {
            chat.save_part(login.clone(), *part, sidecar.clone(), event.session)
                .await;
        }
    }

    /// A Twitch user token was stored (a new authorization or a refresh): with
    /// `login = "user"` the chat logs in with it from its next connection on.
    pub(super) async fn chat_token_changed(&self) {
        if let Some(chat) = &self.chat {
            if self.config.chat.login == ChatLogin::User {
                chat.set_user_token(self.twitch_user_token().await).await;
            }
        }
    }
}
