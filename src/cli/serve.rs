//! `clustimage serve`: the daemon's settings from file, environment and flags, then the
//! daemon itself until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::args::ModelArgs;
use super::client::Connection;
use crate::daemon::{Daemon, DaemonConfig};
use crate::index::IndexParams;
use crate::server::ServerConfig;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Print the settings in effect (file, environment and flags merged) and exit.
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub daemon: DaemonArgs,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// The `[daemon]` table, and the flags that override it.
#[derive(Debug, Clone, Default, Args, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DaemonArgs {
    /// A folder to watch, recursively (repeat for several); added to the file's list.
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub watch: Vec<PathBuf>,
    /// Where the store, the model and the index live [default: $XDG_DATA_HOME/clustimage].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The gRPC address [default: 127.0.0.1:50551].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Files read and decoded at once [default: all cores].
    #[arg(long)]
    pub workers: Option<usize>,
    /// Follow symbolic links while walking and watching [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub follow_symlinks: Option<bool>,
    /// Milliseconds a path must be quiet after its last event before it is read
    /// [default: 500].
    #[arg(long)]
    pub quiet_ms: Option<u64>,
    /// Seconds after which a file still open for writing is read anyway [default: 60].
    #[arg(long)]
    pub write_timeout_s: Option<u64>,
    /// Seconds between walks over every root that catch missed events [default: 3600].
    #[arg(long)]
    pub reconcile_every_s: Option<u64>,
    /// Seconds between refits when something changed [default: 600].
    #[arg(long)]
    pub refit_every_s: Option<u64>,
    /// Refit as soon as this many distinct images came or went [default: 1000].
    #[arg(long)]
    pub refit_after_changes: Option<u64>,
    /// No model is fitted on fewer images than this [default: 10].
    #[arg(long)]
    pub min_images: Option<usize>,
}

/// The `[server]` table: who may call the daemon, and how much it takes at once. The
/// token file can also be given with the global `--token-file` flag.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerArgs {
    pub token_file: Option<PathBuf>,
    pub max_message_bytes: Option<usize>,
    pub max_concurrent_calls: Option<usize>,
    pub max_event_streams: Option<usize>,
}

impl ServerArgs {
    /// The validated server settings; `token_file` from the command line wins.
    fn config(
        &self,
        listen: std::net::SocketAddr,
        token_file: Option<&std::path::Path>,
    ) -> anyhow::Result<ServerConfig> {
        let defaults = ServerConfig::default();
        let positive = |key: &str, value: Option<usize>, default: usize| match value {
            Some(0) => anyhow::bail!("server.{key}: must be at least 1"),
            Some(value) => Ok(value),
            None => Ok(default),
        };
        let token = match token_file.or(self.token_file.as_deref()) {
            Some(path) => Some(crate::server::read_token(path)?),
            None => None,
        };
        Ok(ServerConfig {
            listen,
            token,
            max_message_bytes: positive(
                "max-message-bytes",
                self.max_message_bytes,
                defaults.max_message_bytes,
            )?,
            max_concurrent_calls: positive(
                "max-concurrent-calls",
                self.max_concurrent_calls,
                defaults.max_concurrent_calls,
            )?,
            max_event_streams: positive(
                "max-event-streams",
                self.max_event_streams,
                defaults.max_event_streams,
            )?,
        })
    }
}

/// The `[index]` table (no flags: it is tuned rarely).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IndexArgs {
    pub max_connections: Option<usize>,
    pub ef_construction: Option<usize>,
    pub ef_search: Option<usize>,
}

impl DaemonArgs {
    /// Each option from `self` when given, else from `fallback`; watched folders add up.
    fn or(self, fallback: DaemonArgs) -> DaemonArgs {
        let mut watch = fallback.watch;
        watch.extend(self.watch);
        DaemonArgs {
            watch,
            data_dir: self.data_dir.or(fallback.data_dir),
            listen: self.listen.or(fallback.listen),
            workers: self.workers.or(fallback.workers),
            follow_symlinks: self.follow_symlinks.or(fallback.follow_symlinks),
            quiet_ms: self.quiet_ms.or(fallback.quiet_ms),
            write_timeout_s: self.write_timeout_s.or(fallback.write_timeout_s),
            reconcile_every_s: self.reconcile_every_s.or(fallback.reconcile_every_s),
            refit_every_s: self.refit_every_s.or(fallback.refit_every_s),
            refit_after_changes: self.refit_after_changes.or(fallback.refit_after_changes),
            min_images: self.min_images.or(fallback.min_images),
        }
    }
}

/// Builds the validated daemon and server settings from the command line, the file and
/// the environment.
pub fn config(
    args: &ServeArgs,
    connection: &Connection,
) -> anyhow::Result<(DaemonConfig, ServerConfig)> {
    let file = super::config_file::load(args.model.config.as_deref())?;
    let settings = args.model.clone().or(file.cluster).validate()?;
    let daemon = args.daemon.clone().or(file.daemon);
    let data_dir = match daemon.data_dir {
        Some(dir) => dir,
        None => {
            default_data_dir().context("data-dir: no default (HOME is not set); give --data-dir")?
        }
    };
    let absolute = |path: &PathBuf| {
        std::path::absolute(path).with_context(|| format!("{}: not a usable path", path.display()))
    };
    let mut roots = daemon.watch.iter().map(absolute).collect::<anyhow::Result<Vec<_>>>()?;
    roots.sort();
    roots.dedup();
    let mut config = DaemonConfig::new(roots, absolute(&data_dir)?);
    if let Some(listen) = &daemon.listen {
        config.listen =
            listen.parse().with_context(|| format!("listen: {listen:?} is not HOST:PORT"))?;
    }
    if let Some(workers) = daemon.workers {
        config.workers = workers;
    }
    config.follow_symlinks = daemon.follow_symlinks.unwrap_or(false);
    if let Some(ms) = daemon.quiet_ms {
        config.quiet = Duration::from_millis(ms);
    }
    let seconds =
        |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_secs);
    config.write_timeout = seconds(daemon.write_timeout_s, config.write_timeout);
    config.reconcile_every = seconds(daemon.reconcile_every_s, config.reconcile_every);
    config.refit_every = seconds(daemon.refit_every_s, config.refit_every);
    config.refit_after_changes = daemon.refit_after_changes.unwrap_or(config.refit_after_changes);
    config.min_images = daemon.min_images.unwrap_or(config.min_images);
    config.preprocessing = settings.preprocessing;
    config.limits = settings.limits;
    config.features = settings.features;
    config.fit = settings.fit;
    let defaults = IndexParams::default();
    config.index = IndexParams {
        max_connections: file.index.max_connections.unwrap_or(defaults.max_connections),
        ef_construction: file.index.ef_construction.unwrap_or(defaults.ef_construction),
        ef_search: file.index.ef_search.unwrap_or(defaults.ef_search),
    };
    // The [dups] table of this file, checked as `dups` checks it.
    let dups = super::dups::DupsOptions { config: None, ..file.dups.clone() };
    config.dups = dups.settings().context("[dups]")?.params;
    config.dup_actions = dups.actions().context("[dups]")?;
    if let Some(folder) = &config.dup_actions.quarantine {
        config.dup_actions.quarantine = Some(absolute(folder)?);
    }
    config.validate()?;
    let server = file.server.config(config.listen, connection.token_file.as_deref())?;
    Ok((config, server))
}

fn default_data_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".local/share"),
    };
    Some(base.join("clustimage"))
}

/// Runs the daemon and its gRPC server until SIGINT or SIGTERM.
pub fn run(args: &ServeArgs, connection: &Connection) -> anyhow::Result<()> {
    let (config, server_config) = config(args, connection)?;
    if args.check {
        println!("{config:#?}");
        println!("{:#?}", ServerSummary::of(&server_config));
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("clustimage")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        tracing::info!(
            data_dir = %config.data_dir.display(),
            roots = config.roots.len(),
            workers = config.workers,
            "starting"
        );
        // Bind first: a port in use should stop us before the store is touched.
        let listener = crate::server::bind(server_config.listen).await?;
        let mut daemon = Daemon::start(config).await?;
        let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
        let mut server =
            tokio::spawn(crate::server::serve(daemon.handle(), server_config, listener, async {
                let _ = server_stopped.await;
            }));
        tokio::select! {
            outcome = daemon.wait() => outcome?,
            outcome = &mut server => {
                outcome.context("the grpc server panicked")??;
                anyhow::bail!("the grpc server stopped on its own");
            }
            signal = shutdown_signal() => {
                tracing::info!(signal, "shutting down");
                let _ = stop_server.send(());
                // Calls in flight finish; a client that never reads its answer is not waited
                // for long.
                let grace = std::time::Duration::from_secs(5);
                match tokio::time::timeout(grace, &mut server).await {
                    Ok(outcome) => outcome.context("the grpc server panicked")??,
                    Err(_) => {
                        tracing::warn!("calls still open after {grace:?}; closing them");
                        server.abort();
                    }
                }
                daemon.shutdown().await?;
            }
        }
        anyhow::Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM, with the signal's name.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        tracing::warn!("cannot listen for signals; stop the daemon with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}

/// What `serve --check` prints of the server settings: the token itself stays secret.
#[derive(Debug)]
#[allow(dead_code)] // read through Debug only
struct ServerSummary {
    listen: std::net::SocketAddr,
    token: &'static str,
    max_message_bytes: usize,
    max_concurrent_calls: usize,
    max_event_streams: usize,
}

impl ServerSummary {
    fn of(config: &ServerConfig) -> ServerSummary {
        ServerSummary {
            listen: config.listen,
            token: if config.token.is_some() { "set" } else { "none" },
            max_message_bytes: config.max_message_bytes,
            max_concurrent_calls: config.max_concurrent_calls,
            max_event_streams: config.max_event_streams,
        }
    }
}
