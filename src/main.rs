//! The `recbot` command line: parses arguments, loads the config, wires the parts together and
//! shuts them down cleanly on SIGINT or SIGTERM. No logic of its own.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use recbot::chat::logs;
use recbot::config::Config;
use recbot::core::Core;
use recbot::frontend::presence::Presence;
use recbot::frontend::{console, discord, email, http, slack, webhook};
use recbot::logging::{self, LogFormat};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

/// How long a shutdown may take before recbot gives up waiting.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(
    name = "recbot",
    version,
    about = "Records Twitch live streams, logs their chat and uploads them to YouTube, driven \
             from Slack, Discord or the console.",
    long_about = "Records Twitch live streams, logs their chat and uploads them to YouTube, \
                  driven from Slack, Discord or the console.\n\n\
                  Start with `recbot run --config config/recbot.example.toml`: it needs no \
                  credentials and takes commands on stdin (type `help`).\n\
                  Every config key can be overridden as RECBOT_<SECTION>__<KEY>."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,

    /// Service log format (the log goes to stderr; RUST_LOG filters it, e.g. RUST_LOG=debug).
    #[arg(long, global = true, value_enum, default_value = "human")]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the service until SIGINT or SIGTERM.
    ///
    /// With the console front-end (the default when Slack and Discord are not configured),
    /// commands are read from stdin, one per line, and replies and events are printed on
    /// stdout. Closing stdin does not stop the service.
    Run {
        /// The config file (TOML). See config/recbot.example.toml.
        #[arg(long, short, env = "RECBOT_CONFIG")]
        config: PathBuf,
    },
    /// Check a config file: print what is enabled and where data goes.
    ///
    /// Exits with 0 when the file is valid, and with 2 and a message naming the file, line and
    /// key when it is not. Environment overrides (RECBOT_<SECTION>__<KEY>) are applied.
    CheckConfig {
        /// The config file (TOML).
        #[arg(long, short, env = "RECBOT_CONFIG")]
        config: PathBuf,
    },
    /// Print what to paste into Slack or Discord to set recbot up there.
    ///
    /// `slack`: the Slack app manifest (JSON) for api.slack.com/apps → Create New App → From an
    /// app manifest. `discord`: the JSON of the `/rec` application command recbot registers
    /// itself at start-up. Both are generated from the command table.
    Manifest {
        #[arg(value_enum)]
        platform: Platform,
        /// The slash command (Slack) or command name (Discord).
        #[arg(long, default_value = "/rec")]
        command: String,
        /// Slack only: HTTP mode, Slack posts slash commands to this public address (your
        /// ingress in front of `[slack] listen`). Socket Mode when omitted.
        #[arg(long)]
        request_url: Option<String>,
    },
    /// Print a login's chat log for one UTC day.
    ///
    /// Human form by default: `[HH:MM:SS] DisplayName: text`, `* name` for /me, ★ for subs and
    /// raids, ✖ for timeouts, bans and deleted messages. Times are UTC. Reads the files under
    /// the config's chat_dir; the service need not run.
    Logs {
        /// The config file (TOML), for chat_dir.
        #[arg(long, short, env = "RECBOT_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        args: logs::Args,
    },
    /// List the nodes sharing the state database and the logins each owns.
    ///
    /// Reads the state database the config names ([storage] database_url, or the SQLite file
    /// of a single node); the service need not run on this machine.
    Cluster {
        /// The config file (TOML).
        #[arg(long, short, env = "RECBOT_CONFIG")]
        config: PathBuf,
    },
    /// Cut a finished recording on its HLS index (`<name>.m3u8` beside it).
    ///
    /// Keeps --from..--to (the whole recording when absent) minus each --remove span, at
    /// segment boundaries (the kept span is printed), and writes `<out>.m3u8` beside the
    /// recording joining the kept pieces with EXT-X-DISCONTINUITY (byte ranges into the
    /// recording), with --copy also `<out>.ts`/`.mp4` of the kept bytes, and the recording's
    /// chat file cut to the same span (`<out>.chat.jsonl`, video_ms recomputed). Nothing is
    /// overwritten. The service need not run.
    Cut {
        /// The recording: its video file or its `.m3u8` index.
        recording: PathBuf,
        /// Keep from here (HH:MM:SS, recording time).
        #[arg(long, value_parser = cut_time)]
        from: Option<f64>,
        /// Keep up to here (HH:MM:SS).
        #[arg(long, value_parser = cut_time)]
        to: Option<f64>,
        /// Leave out this span (HH:MM:SS-HH:MM:SS); may be given more than once.
        #[arg(long, value_parser = cut_range)]
        remove: Vec<(f64, f64)>,
        /// Also write a new video file of the kept segments.
        #[arg(long)]
        copy: bool,
        /// The outputs' name beside the recording (no folders); `<name>.cut-<n>` by default.
        #[arg(long)]
        out: Option<String>,
    },
}

fn cut_time(text: &str) -> Result<f64, String> {
    recbot::post::cut::parse_time(text)
}

fn cut_range(text: &str) -> Result<(f64, f64), String> {
    recbot::post::cut::parse_range(text)
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Platform {
    Slack,
    Discord,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Manifest {
            platform,
            command,
            request_url,
        } => {
            use recbot_commands::schema;
            let value = match platform {
                Platform::Slack => schema::slack_manifest(&command, request_url.as_deref()),
                Platform::Discord => schema::discord_commands(&command),
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&value).expect("JSON values serialize")
            );
            ExitCode::SUCCESS
        }
        Cmd::CheckConfig { config } => match Config::load(&config) {
            Ok(config) => {
                print!("{}", config.summary());
                println!("twitch viewer:   {}", viewer_state(&config));
                ffmpeg_check(&config)
            }
            Err(e) => {
                eprintln!("invalid config: {e}");
                ExitCode::from(2)
            }
        },
        Cmd::Logs { config, args } => {
            let config = match Config::load(&config) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("invalid config: {e}");
                    return ExitCode::from(2);
                }
            };
            let query = match logs::Query::parse(args) {
                Ok(query) => query,
                Err(e) => {
                    eprintln!("{e:#}");
                    return ExitCode::from(2);
                }
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            match logs::print(&config.storage.chat_dir(), &query, &mut out) {
                Ok(_) => ExitCode::SUCCESS,
                // `recbot logs … | head` closes the pipe early: not an error.
                Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
                Err(e) => {
                    let _ = std::io::Write::flush(&mut out);
                    eprintln!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Cluster { config } => {
            let config = match Config::load(&config) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("invalid config: {e}");
                    return ExitCode::from(2);
                }
            };
            match cluster_report(&config) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cannot read the cluster's state: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Cut {
            recording,
            from,
            to,
            remove,
            copy,
            out,
        } => {
            use recbot::post::cut;
            let request = cut::Request {
                from,
                to,
                remove,
                copy,
                out,
            };
            match cut::cut_blocking(&recording, &request) {
                Ok(written) => {
                    print!("{}", cut::describe(&written));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cannot cut: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Run { config } => {
            let config = match Config::load(&config) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("invalid config: {e}");
                    return ExitCode::from(2);
                }
            };
            logging::init(cli.log_format);
            match run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e:#}");
                    eprintln!("recbot stopped: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `recbot cluster`: the nodes and leases in the state database, as a table.
fn cluster_report(config: &Config) -> anyhow::Result<String> {
    use recbot::core::store::Store;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = Store::open_config(&config.storage).await?;
        let now = chrono::Utc::now().timestamp_millis();
        let nodes = store.nodes(now).await?;
        let leases = store.leases().await?;
        store.close().await;
        Ok(recbot::frontend::render::cluster_table(
            &nodes, &leases, now,
        ))
    })
}

/// `check-config`'s line on the Twitch viewer login (`auth twitch-viewer`), from the state
/// database when there is one (opening it brings its schema up to date, as a start would).
fn viewer_state(config: &Config) -> String {
    const ANONYMOUS: &str = "recording as a logged-out viewer (renditions above 1080p are \
                             withheld); run `auth twitch-viewer` to log in";
    let database = config.storage.database();
    if let recbot::config::Database::Sqlite(path) = &database {
        if !path.exists() {
            return format!("not logged in (no state database yet): {ANONYMOUS}");
        }
    }
    let read = async {
        let store = match database {
            recbot::config::Database::Sqlite(path) => {
                recbot::core::store::Store::open(&path).await?
            }
            // check-config does not wait a start-up's while for the server.
            recbot::config::Database::Postgres {
                url,
                connect_timeout,
            } => {
                let wait = connect_timeout.min(std::time::Duration::from_secs(5));
                recbot::core::store::Store::open_postgres(&url, wait).await?
            }
        };
        let token = store
            .token(recbot_commands::Service::TwitchViewer.as_str())
            .await;
        store.close().await;
        token
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return format!("unknown (no async runtime: {e})"),
    };
    match runtime.block_on(read) {
        Ok(Some(token)) => format!(
            "logged in as {} (validated at start-up and every {} s while running)",
            token
                .account
                .as_deref()
                .unwrap_or("an account not yet validated"),
            config.twitch.validate_interval_secs
        ),
        Ok(None) => format!("not logged in: {ANONYMOUS}"),
        Err(e) => format!("unknown: cannot read the state database ({e:#})"),
    }
}

/// `check-config`'s line on ffmpeg when `[postprocess] mode` needs it: its version, or why it
/// does not run (then `check-config` fails: post-processing could not work).
fn ffmpeg_check(config: &Config) -> ExitCode {
    let post = &config.postprocess;
    if !post.mode.needs_ffmpeg() {
        return ExitCode::SUCCESS;
    }
    match recbot::post::ffmpeg::version_blocking(&post.ffmpeg) {
        Ok(version) => {
            println!("ffmpeg:          {version} ({})", post.ffmpeg.display());
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("ffmpeg:          MISSING: {why}");
            eprintln!(
                "[postprocess] mode = \"{}\" needs ffmpeg: {why}",
                post.mode.as_str()
            );
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(config: Config) -> anyhow::Result<()> {
    // Both ring and aws-lc-rs may be linked in; pick one before any TLS client is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(serve(Arc::new(config)));
    // The console's stdin reader may sit in a blocking read forever; do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

async fn serve(config: Arc<Config>) -> anyhow::Result<()> {
    let mut signals = Signals::install()?;
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();

    let (core, handle) = Core::open(config.clone(), shutdown.clone()).await?;
    if config.console_enabled() {
        let input = tokio::io::BufReader::new(tokio::io::stdin());
        let task = console::run(
            handle.clone(),
            handle.subscribe(),
            input,
            tokio::io::stdout(),
            config.slack.command.clone(),
            shutdown.clone(),
        );
        tracker.spawn(async move {
            if let Err(e) = task.await {
                warn!(error = %e, "console output failed");
            }
        });
    } else if !config.slack.is_configured()
        && !config.discord.is_configured()
        && (config.http.address().is_none() || config.http.tokens.is_empty())
    {
        warn!("no front-end is enabled: nothing can send commands to this recbot");
    }
    // Chat front-ends subscribe before the core starts, like the console, and deliver what
    // earlier runs left in their outbox.
    let presence = Presence::default();
    if config.slack.is_configured() {
        let task = slack::run(
            config.clone(),
            handle.clone(),
            handle.subscribe(),
            shutdown.clone(),
            tracker.clone(),
            slack::SlackOptions {
                link: presence.link("Slack"),
                ..slack::SlackOptions::default()
            },
        );
        tracker.spawn(async move {
            if let Err(e) = task.await {
                error!("Slack front-end stopped: {e:#}");
            }
        });
    }
    if config.discord.is_configured() {
        let task = discord::run(
            config.clone(),
            handle.clone(),
            handle.subscribe(),
            shutdown.clone(),
            tracker.clone(),
            discord::DiscordOptions {
                link: presence.link("Discord"),
                ..discord::DiscordOptions::default()
            },
        );
        tracker.spawn(async move {
            if let Err(e) = task.await {
                error!("Discord front-end stopped: {e:#}");
            }
        });
    }
    // The HTTP API: bound before the core starts so a taken port stops recbot at once.
    if let Some(listener) = http::Listener::bind(&config.http).await? {
        let task = listener
            .with_presence(presence.clone())
            .serve(handle.clone(), shutdown.clone());
        tracker.spawn(async move {
            if let Err(e) = task.await {
                error!("HTTP API stopped: {e:#}");
            }
        });
    }
    if !config.webhooks.is_empty() {
        webhook::run(
            config.clone(),
            handle.clone(),
            handle.subscribe(),
            tracker.clone(),
        )
        .await?;
    }
    email::run(
        config.clone(),
        handle.clone(),
        handle.subscribe(),
        tracker.clone(),
    )
    .await?;
    core.spawn(&tracker).await?;
    info!(
        config = %config.source.display(),
        data = %config.storage.data_dir.display(),
        "recbot is running"
    );

    let signal = signals.next().await;
    info!(signal, "stopping: finishing files and saving state");
    shutdown.cancel();
    tracker.close();
    tokio::select! {
        finished = tokio::time::timeout(SHUTDOWN_LIMIT, tracker.wait()) => {
            if finished.is_err() {
                error!("shutdown took longer than {SHUTDOWN_LIMIT:?}; exiting anyway");
            }
        }
        signal = signals.next() => {
            warn!(signal, "second signal: exiting without waiting");
        }
    }
    info!("stopped");
    Ok(())
}

/// SIGINT and SIGTERM, installed at start-up so an early signal is not lost.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        })
    }

    #[cfg(unix)]
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }

    #[cfg(not(unix))]
    fn install() -> anyhow::Result<Signals> {
        Ok(Signals {})
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
