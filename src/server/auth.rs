//! The optional bearer token, checked on every call of the services it wraps (all but the
//! health service, which load balancers and supervisors probe without credentials).

use std::sync::Arc;

use tonic::{Request, Status};

/// Checks `authorization: Bearer <token>` when a token is configured; lets every call
/// through when none is.
#[derive(Clone, Default)]
pub struct TokenCheck {
    token: Option<Arc<str>>,
}

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token itself.
        f.debug_struct("TokenCheck").field("enabled", &self.token.is_some()).finish()
    }
}

impl TokenCheck {
    pub fn new(token: Option<String>) -> TokenCheck {
        TokenCheck { token: token.map(Arc::from) }
    }
}

impl tonic::service::Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.token else {
            return Ok(request);
        };
        let given = request.metadata().get("authorization").map(|value| value.to_str());
        let refusal = match given {
            None => "missing authorization metadata: send `authorization: Bearer <token>`",
            Some(Err(_)) => "authorization metadata is not text",
            Some(Ok(value)) => match value.strip_prefix("Bearer ") {
                Some(token) if same_bytes(token.trim().as_bytes(), expected.as_bytes()) => {
                    return Ok(request)
                }
                Some(_) => "wrong token",
                None => "authorization metadata must be `Bearer <token>`",
            },
        };
        tracing::warn!(reason = refusal, "call refused");
        Err(Status::unauthenticated(refusal))
    }
}

/// Compares two byte strings in time that depends only on their lengths, so that the
/// token cannot be guessed one byte at a time from response times.
fn same_bytes(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    given.iter().zip(expected).fold(0u8, |differ, (a, b)| differ | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn call(check: &mut TokenCheck, header: Option<&str>) -> Result<(), tonic::Code> {
        let mut request = Request::new(());
        if let Some(value) = header {
            request.metadata_mut().insert("authorization", value.parse().unwrap());
        }
        check.call(request).map(|_| ()).map_err(|status| status.code())
    }

    #[test]
    fn only_the_right_bearer_token_passes() {
        let mut check = TokenCheck::new(Some("s3cret".into()));
        assert_eq!(call(&mut check, Some("Bearer s3cret")), Ok(()));
        let refused = Err(tonic::Code::Unauthenticated);
        assert_eq!(call(&mut check, None), refused);
        assert_eq!(call(&mut check, Some("Bearer s3cre")), refused);
        assert_eq!(call(&mut check, Some("Bearer s3cret2")), refused);
        assert_eq!(call(&mut check, Some("s3cret")), refused);
        assert_eq!(call(&mut TokenCheck::new(None), None), Ok(()));
    }
}
