//! The gRPC face of the daemon: the `clustimage.v1.Clustimage` service, the standard health
//! service, and server reflection (both `v1` and `v1alpha`, since the reflection clients
//! that most people have speak only the older one).
//!
//! Handlers are thin adapters ([`service`]): check the request, call the daemon, convert
//! the answer ([`convert`]). Every domain error becomes a status in one place ([`error`]).
//! The serving rules live here: an optional bearer token ([`auth`]), a bound on message
//! sizes and on concurrent calls (both answered with `RESOURCE_EXHAUSTED`), and a log line
//! per call at a level that follows its outcome.
//!
//! [`client`] is the other end, used by the command line.

mod auth;
pub mod client;
mod convert;
mod error;
mod service;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::daemon::DaemonHandle;
pub use error::ApiError;

/// The code generated from `proto/clustimage/v1/clustimage.proto`.
pub mod pb {
    #![allow(clippy::all, missing_docs)] // generated code, checked by its generator
    tonic::include_proto!("clustimage.v1");

    /// The encoded descriptors of the API, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("clustimage_descriptor");
}

/// How the server listens and what it lets through.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The address to listen on; loopback by default, so nothing is exposed by accident.
    pub listen: SocketAddr,
    /// When set, every call but the health service must carry `authorization: Bearer
    /// <token>`.
    pub token: Option<String>,
    /// The largest request or response message, in bytes; a query image is one message.
    pub max_message_bytes: usize,
    /// Unary calls served at once; one more is refused rather than queued, so a flood of
    /// calls cannot pile up memory or latency.
    pub max_concurrent_calls: usize,
    /// Event streams open at once; they are long-lived, so they have a limit of their own.
    pub max_event_streams: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 50551)),
            token: None,
            max_message_bytes: 32 * 1024 * 1024,
            max_concurrent_calls: 64,
            max_event_streams: 16,
        }
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("listen: cannot bind {addr}: {cause}")]
    Bind { addr: SocketAddr, cause: std::io::Error },
    #[error("token-file: cannot read {path}: {cause}")]
    TokenFile { path: PathBuf, cause: std::io::Error },
    #[error("token-file: {path} is empty")]
    EmptyToken { path: PathBuf },
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Reads a bearer token from `path`: its first line, trimmed.
pub fn read_token(path: &std::path::Path) -> Result<String, ServerError> {
    let text = std::fs::read_to_string(path)
        .map_err(|cause| ServerError::TokenFile { path: path.to_path_buf(), cause })?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(ServerError::EmptyToken { path: path.to_path_buf() });
    }
    Ok(token)
}

/// Binds the configured address. Separate from [`serve`] so that a caller can learn the
/// port (tests bind port 0) and fail early, before the daemon is started.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|cause| ServerError::Bind { addr, cause })
}

/// Serves `daemon` on `listener` until `shutdown` resolves; calls in flight are finished.
pub async fn serve(
    daemon: DaemonHandle,
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    use pb::clustimage_server::ClustimageServer;

    let checker = auth::TokenCheck::new(config.token.clone());
    let (closing, closing_seen) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = closing.send(true);
    };
    let api = ClustimageServer::new(service::Api::new(daemon, &config, closing_seen))
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<ClustimageServer<service::Api>>().await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().expect("the descriptors are valid");
    let reflection_v1alpha = reflection().build_v1alpha().expect("the descriptors are valid");
    tracing::info!(addr = %listener.local_addr().map_or(config.listen, |addr| addr), "listening");
    // Without TCP_NODELAY a small response waits for the client's delayed ACK: 40 ms a
    // call instead of a fraction of one.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(error::oversized_as_resource_exhausted))
        .add_service(health)
        .add_service(tonic::service::interceptor::InterceptedService::new(api, checker.clone()))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            reflection_v1,
            checker.clone(),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            reflection_v1alpha,
            checker,
        ))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    tracing::info!("grpc server stopped");
    Ok(())
}
