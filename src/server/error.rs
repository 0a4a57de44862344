//! Every error a call can end with, and the one place where each becomes a gRPC status.

use tonic::{Code, Status};

use crate::daemon::{DaemonError, QueryError};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; `field` names the offending field as the proto spells it.
    #[error("{field}: {message}")]
    InvalidArgument { field: &'static str, message: String },
    #[error("cluster {id}: no such cluster (the model has {n_clusters})")]
    UnknownCluster { id: i32, n_clusters: usize },
    /// More calls than the configured limit are running.
    #[error("busy: {limit} {what} are already running (the server's limit); retry shortly")]
    Busy { limit: usize, what: &'static str },
    #[error("{0}")]
    Daemon(#[from] DaemonError),
}

impl ApiError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::InvalidArgument { field, message: message.into() }
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> ApiError {
        ApiError::Daemon(DaemonError::Query(error))
    }
}

impl From<crate::daemon::InvalidQuery> for ApiError {
    fn from(error: crate::daemon::InvalidQuery) -> ApiError {
        ApiError::InvalidArgument { field: error.field, message: error.message }
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        Status::new(code(&error), error.to_string())
    }
}

/// The status code of each error. No catch-all arm: a new error must be placed here.
fn code(error: &ApiError) -> Code {
    match error {
        ApiError::InvalidArgument { .. } => Code::InvalidArgument,
        ApiError::UnknownCluster { .. } => Code::NotFound,
        ApiError::Busy { .. } => Code::ResourceExhausted,
        ApiError::Daemon(error) => match error {
            DaemonError::OutsideRoots { .. } => Code::PermissionDenied,
            DaemonError::UnknownPath { .. } => Code::NotFound,
            DaemonError::BadQueryImage { .. } | DaemonError::Invalid(_) => Code::InvalidArgument,
            DaemonError::ShuttingDown => Code::Unavailable,
            DaemonError::Refit(_) => Code::FailedPrecondition,
            DaemonError::Query(error) => match error {
                QueryError::NoModel => Code::FailedPrecondition,
                QueryError::UnknownContent(_) => Code::NotFound,
                QueryError::Model(_) | QueryError::Index(_) | QueryError::Store(_) => {
                    Code::Internal
                }
            },
            DaemonError::Config(_)
            | DaemonError::Store(_)
            | DaemonError::DataDir { .. }
            | DaemonError::Watch(_)
            | DaemonError::Quarantine(_)
            | DaemonError::Report(_) => Code::Internal,
        },
    }
}

/// Logs a finished call at the level its outcome deserves: a fault of the daemon is an
/// error, a refused or suspicious call a warning, a caller's mistake plain information.
pub fn log_outcome(call: &'static str, elapsed: std::time::Duration, outcome: Result<(), &Status>) {
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    let Err(status) = outcome else {
        tracing::debug!(call, elapsed_ms, "call served");
        return;
    };
    let (code, message) = (status.code(), status.message());
    match code {
        Code::InvalidArgument | Code::NotFound | Code::FailedPrecondition | Code::OutOfRange => {
            tracing::info!(call, elapsed_ms, ?code, message, "call refused")
        }
        Code::PermissionDenied | Code::Unauthenticated | Code::ResourceExhausted => {
            tracing::warn!(call, elapsed_ms, ?code, message, "call refused")
        }
        _ => tracing::error!(call, elapsed_ms, ?code, message, "call failed"),
    }
}

/// tonic answers a request over its size limit with `OUT_OF_RANGE`; the gRPC convention,
/// and our API, say `RESOURCE_EXHAUSTED`. Such answers carry their status in the response
/// extensions, which is how they are recognised here.
pub fn oversized_as_resource_exhausted(
    response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let oversized = response.extensions().get::<Status>().is_some_and(|status| {
        status.code() == Code::OutOfRange && status.message().contains("message length too large")
    });
    if !oversized {
        return response;
    }
    let original = response.extensions().get::<Status>().expect("checked above");
    tracing::warn!(message = original.message(), "call refused: message too large");
    let message =
        format!("message too large: {}", original.message().trim_start_matches("Error, "));
    Status::resource_exhausted(message).into_http()
}
