//! The one table of recbot's commands: names, forms, arguments, options, help text, who may run
//! them. Parsing, help, the README table and the Slack/Discord schemas all read it.

/// Who may run a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone in the room (read-only commands).
    Anyone,
    /// Only configured operators (anything that changes state or touches credentials).
    Operator,
}

use crate::channel::Platform;

/// What a positional argument holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// A channel: a Twitch login, `@login` or channel URL, or a Chzzk or Bilibili Live address.
    Login,
    /// A watch-list name: a Twitch login, the name of an HLS source, or a platform key
    /// (`chzzk:<id>`, or the channel's address).
    Name,
    /// The name given to a new HLS source (letters, digits, `_`).
    SourceName,
    /// A channel id on one platform (`add chzzk <id>`).
    Channel(Platform),
    /// An http(s) address.
    Url,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// A positive whole number.
    Number,
    /// An OAuth code or the whole redirected address; never echoed.
    Code,
    /// A command name (for `help`).
    Topic,
    /// A time within a recording, `HH:MM:SS`.
    Time,
}

#[derive(Debug)]
pub struct Arg {
    pub name: &'static str,
    pub kind: ArgKind,
    pub required: bool,
    pub help: &'static str,
}

/// A `key=value` option.
#[derive(Debug)]
pub struct Opt {
    pub key: &'static str,
    pub choices: &'static [&'static str],
    pub help: &'static str,
}

/// One way of calling a command; `keyword` distinguishes forms (`add hls …`).
#[derive(Debug)]
pub struct Form {
    pub keyword: Option<&'static str>,
    pub args: &'static [Arg],
    pub options: &'static [Opt],
    pub summary: &'static str,
}

#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub summary: &'static str,
    pub details: &'static str,
    pub access: Access,
    /// Replies may carry links or codes meant for one person (ephemeral where possible).
    pub private_reply: bool,
    pub forms: &'static [Form],
    pub examples: &'static [&'static str],
}

pub const QUALITIES: &[&str] = &[
    "best",
    "source",
    "2160p60",
    "2160p",
    "1440p60",
    "1440p",
    "1080p60",
    "1080p",
    "720p60",
    "720p",
    "480p",
    "360p",
    "160p",
    "audio_only",
];
pub const ON_OFF: &[&str] = &["on", "off"];
pub const SERVICES: &[&str] = &["youtube", "twitch", "twitch-viewer"];

const QUALITY: Opt = Opt {
    key: "quality",
    choices: QUALITIES,
    help: "which rendition to record; a missing one falls back to the next lower (default from the config)",
};
const UPLOAD: Opt = Opt {
    key: "upload",
    choices: ON_OFF,
    help: "upload finished recordings to YouTube (default on)",
};
const CHAT: Opt = Opt {
    key: "chat",
    choices: ON_OFF,
    help: "log the channel's Twitch chat (default on)",
};

pub const POST_MODES: &[&str] = &["none", "remux", "transcode"];
const POST: Opt = Opt {
    key: "post",
    choices: POST_MODES,
    help: "what ffmpeg does to each finished part before its upload: none, remux to MP4, transcode (default from the config)",
};

const NAME: Arg = Arg {
    name: "login",
    kind: ArgKind::Name,
    required: true,
    help: "a watched Twitch login, HLS source name, or Chzzk key (chzzk:<id>) or address",
};

pub static SPECS: &[Spec] = &[
    Spec {
        name: "add",
        summary: "watch a Twitch channel (or any HLS stream) and record it whenever it is live",
        details:
            "The channel can be given as `foo`, `@foo` or a twitch.tv address, a Chzzk channel as \
                  `chzzk <channel id>` or its chzzk.naver.com address. Events about it are posted \
                  to the room where it was added.",
        access: Access::Operator,
        private_reply: false,
        forms: &[
            Form {
                keyword: None,
                args: &[Arg {
                    name: "login",
                    kind: ArgKind::Login,
                    required: true,
                    help: "Twitch login, @login or channel address (or a Chzzk address)",
                }],
                options: &[QUALITY, UPLOAD, CHAT, POST],
                summary: "watch a Twitch channel",
            },
            Form {
                keyword: Some("chzzk"),
                args: &[Arg {
                    name: "channel id",
                    kind: ArgKind::Channel(Platform::Chzzk),
                    required: true,
                    help: "the Chzzk channel id (32 hex digits) or its chzzk.naver.com address",
                }],
                options: &[QUALITY, UPLOAD, POST],
                summary: "watch a Chzzk channel",
            },
            Form {
                keyword: Some("bilibili"),
                args: &[Arg {
                    name: "room",
                    kind: ArgKind::Channel(Platform::Bilibili),
                    required: true,
                    help: "the Bilibili Live room id",
                }],
                options: &[QUALITY, UPLOAD, POST],
                summary: "watch a Bilibili Live room (not available yet)",
            },
            Form {
                keyword: Some("hls"),
                args: &[
                    Arg {
                        name: "playlist URL",
                        kind: ArgKind::Url,
                        required: true,
                        help: "http(s) address of an HLS master or media playlist",
                    },
                    Arg {
                        name: "name",
                        kind: ArgKind::SourceName,
                        required: true,
                        help: "a name for this source (letters, digits, _)",
                    },
                ],
                options: &[QUALITY, UPLOAD, POST],
                summary: "record a non-Twitch HLS stream under a name",
            },
        ],
        examples: &[
            "add somechannel",
            "add https://www.twitch.tv/somechannel quality=720p60 upload=off",
            "add hls https://example.com/live/master.m3u8 studio",
            "add chzzk c68b8ef525fb3d2fa146344d84991753",
        ],
    },
    Spec {
        name: "remove",
        summary: "stop watching a channel (a recording in progress is finished and kept)",
        details: "Recordings, chat logs and queued uploads are kept.",
        access: Access::Operator,
        private_reply: false,
        forms: &[Form {
            keyword: None,
            args: &[NAME],
            options: &[],
            summary: "stop watching",
        }],
        examples: &["remove somechannel"],
    },
    Spec {
        name: "list",
        summary: "show the watched channels and their settings",
        details: "",
        access: Access::Anyone,
        private_reply: false,
        forms: &[Form {
            keyword: None,
            args: &[],
            options: &[],
            summary: "list watched channels",
        }],
        examples: &["list"],
    },
    Spec {
        name: "status",
        summary: "show what recbot is doing, overall or for one channel",
        details: "",
        access: Access::Anyone,
        private_reply: false,
        forms: &[Form {
            keyword: None,
            args: &[Arg {
                name: "login",
                kind: ArgKind::Name,
                required: false,
                help: "a watched login; all when omitted",
            }],
            options: &[],
            summary: "service or channel status",
        }],
        examples: &["status", "status somechannel"],
    },
    Spec {
        name: "auth",
        summary: "connect recbot to YouTube or Twitch: posts a consent link",
        details: "Open the link, approve, then paste the code (or the whole address your browser \
                  ended up on) with `code`. `auth twitch device` uses Twitch's device flow \
                  instead: approve with the code shown and nothing needs pasting. \
                  `auth twitch-viewer` logs recbot in as a Twitch viewer (device flow), which \
                  Twitch requires for renditions above 1080p; `code twitch-viewer <token>` \
                  takes a browser's `auth-token` cookie instead.",
        access: Access::Operator,
        private_reply: true,
        forms: &[Form {
            keyword: None,
            args: &[
                Arg {
                    name: "service",
                    kind: ArgKind::Choice(SERVICES),
                    required: true,
                    help: "youtube, twitch (the chat account) or twitch-viewer (source quality)",
                },
                Arg {
                    name: "method",
                    kind: ArgKind::Choice(&["device"]),
                    required: false,
                    help: "`device` for Twitch's device-code flow",
                },
            ],
            options: &[],
            summary: "start an authorization",
        }],
        examples: &[
            "auth youtube",
            "auth twitch",
            "auth twitch device",
            "auth twitch-viewer",
        ],
    },
    Spec {
        name: "code",
        summary: "finish an authorization with the pasted code or redirected address",
        details: "The code is never echoed, logged or shown.",
        access: Access::Operator,
        private_reply: true,
        forms: &[Form {
            keyword: None,
            args: &[
                Arg {
                    name: "service",
                    kind: ArgKind::Choice(SERVICES),
                    required: true,
                    help: "youtube, twitch or twitch-viewer",
                },
                Arg {
                    name: "code or URL",
                    kind: ArgKind::Code,
                    required: true,
                    help: "the code, or the whole address the browser was sent to (Twitch: with its state); for twitch-viewer a browser's auth-token",
                },
            ],
            options: &[],
            summary: "paste an authorization code",
        }],
        examples: &[
            "code youtube 4/0AbCd…",
            "code twitch http://localhost:3000/?code=…",
            "code twitch-viewer 0123456789abcdefghijklmnopqrst",
        ],
    },
    Spec {
        name: "uploads",
        summary: "list upload jobs with their state, progress and next attempt",
        details: "",
        access: Access::Anyone,
        private_reply: false,
        forms: &[Form {
            keyword: None,
            args: &[],
            options: &[],
            summary: "list uploads",
        }],
        examples: &["uploads"],
    },
    Spec {
        name: "retry",
        summary: "re-queue a failed upload",
        details: "",
        access: Access::Operator,
        private_reply: false,
        forms: &[Form {
            keyword: None,
            args: &[Arg {
                name: "upload id",
                kind: ArgKind::Number,
                required: true,
                help: "the id shown by `uploads`",
            }],
            options: &[],
            summary: "retry an upload",
        }],
        examples: &["retry 12"],
    },
    Spec {
        name: "cut",
        summary: "cut a span out of a finished recording, with its chat",
        details: "Keeps <from>..<to> of the login's latest session (or the given one) at                   segment boundaries, from the part that holds it, and writes beside it an                   HLS index of the span (`.m3u8`, byte ranges into the part) and its chat                   file. Times count from the session's start as recorded (ads and gaps                   already out).",
        access: Access::Operator,
        private_reply: false,
        forms: &[Form {
            keyword: None,
            args: &[
                Arg {
                    name: "login",
                    kind: ArgKind::Name,
                    required: true,
                    help: "the watched login",
                },
                Arg {
                    name: "from",
                    kind: ArgKind::Time,
                    required: true,
                    help: "start, HH:MM:SS",
                },
                Arg {
                    name: "to",
                    kind: ArgKind::Time,
                    required: true,
                    help: "end, HH:MM:SS",
                },
                Arg {
                    name: "session",
                    kind: ArgKind::Number,
                    required: false,
                    help: "a session id (the latest when omitted)",
                },
            ],
            options: &[],
            summary: "cut a recording",
        }],
        examples: &["cut foo 00:10:00 00:12:30", "cut foo 1:00:00 1:05:00 42"],
    },
    Spec {
        name: "quota",
        summary: "show today's YouTube upload quota: used, left, next reset",
        details: "",
        access: Access::Anyone,
        private_reply: false,
        forms: &[Form {
            keyword: None,
            args: &[],
            options: &[],
            summary: "upload quota",
        }],
        examples: &["quota"],
    },
    Spec {
        name: "disk",
        summary: "show disk usage of the recordings and chat folders",
        details: "",
        access: Access::Anyone,
        private_reply: false,
        forms: &[Form {
            keyword: None,
            args: &[],
            options: &[],
            summary: "disk usage",
        }],
        examples: &["disk"],
    },
    Spec {
        name: "help",
        summary: "list the commands, or explain one",
        details: "",
        access: Access::Anyone,
        private_reply: false,
        forms: &[Form {
            keyword: None,
            args: &[Arg {
                name: "command",
                kind: ArgKind::Topic,
                required: false,
                help: "a command name",
            }],
            options: &[],
            summary: "help",
        }],
        examples: &["help", "help add"],
    },
];

/// The spec of a command by exact name.
pub fn spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}

impl Form {
    /// `add <login> [quality=best|source|…] [upload=on|off] [chat=on|off]`
    pub fn usage(&self, command: &str) -> String {
        let mut out = command.to_string();
        if let Some(keyword) = self.keyword {
            out.push(' ');
            out.push_str(keyword);
        }
        for arg in self.args {
            let shown = match arg.kind {
                ArgKind::Choice(choices) => choices.join("|"),
                _ => arg.name.to_string(),
            };
            if arg.required {
                out.push_str(&format!(" <{shown}>"));
            } else {
                out.push_str(&format!(" [{shown}]"));
            }
        }
        for opt in self.options {
            out.push_str(&format!(" [{}={}]", opt.key, opt.choices.join("|")));
        }
        out
    }
}

impl Spec {
    /// Every form's usage, one per line.
    pub fn usage(&self) -> String {
        self.forms
            .iter()
            .map(|f| f.usage(self.name))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
