//! The client end of the API, as the command line uses it: one connection, with the
//! bearer token added to every call when one is given.

use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use super::pb::clustimage_client::ClustimageClient;

/// A connected client.
pub type Client = ClustimageClient<InterceptedService<Channel, AddToken>>;

/// Why the client could not connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{addr} is not a usable address: {message}")]
    BadAddress { addr: String, message: String },
    #[error("no daemon is answering at {addr} (start one with `clustimage serve`)")]
    NotRunning { addr: String },
    #[error("the token is not valid in a header")]
    BadToken,
}

/// Adds `authorization: Bearer <token>` to each call.
#[derive(Debug, Clone)]
pub struct AddToken {
    header: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl tonic::service::Interceptor for AddToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(header) = &self.header {
            request.metadata_mut().insert("authorization", header.clone());
        }
        Ok(request)
    }
}

/// Connects to the daemon at `addr` (`HOST:PORT` or a URL), failing fast when nothing
/// listens there.
pub async fn connect(addr: &str, token: Option<&str>) -> Result<Client, ConnectError> {
    let url = if addr.contains("://") { addr.to_string() } else { format!("http://{addr}") };
    let bad = |message: String| ConnectError::BadAddress { addr: addr.to_string(), message };
    let endpoint = Endpoint::from_shared(url)
        .map_err(|error| bad(error.to_string()))?
        .connect_timeout(std::time::Duration::from_secs(3));
    let channel = endpoint
        .connect()
        .await
        .map_err(|_| ConnectError::NotRunning { addr: addr.to_string() })?;
    let header = match token {
        Some(token) => Some(format!("Bearer {token}").parse().map_err(|_| ConnectError::BadToken)?),
        None => None,
    };
    Ok(ClustimageClient::with_interceptor(channel, AddToken { header })
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024))
}
