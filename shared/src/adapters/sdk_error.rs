//! Generic classification of SDK errors that an adapter did not handle specifically.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::EgressError;

/// Error codes AWS services use for throttling and temporary unavailability.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "InternalServerError",
    "InternalFailure",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Maps an SDK error to [`EgressError`]: network failures, timeouts, throttling and 5xx
/// become `Transient` (retried by the SDK first, then by the state machine); everything else
/// is `Internal`. `what` names the operation and target, without secrets.
pub fn classify<E, R>(what: &str, err: SdkError<E, R>) -> EgressError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HasStatus,
{
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let status = service.raw().status_code();
            TRANSIENT_CODES.contains(&code) || status == 429 || (500..600).contains(&status)
        }
        _ => false,
    };
    let message = format!("{what}: {}", DisplayErrorContext(&err));
    if transient {
        EgressError::Transient(message)
    } else {
        EgressError::Internal(message)
    }
}

/// The HTTP status of a raw response, for classification.
pub trait HasStatus {
    /// The HTTP status code.
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}
