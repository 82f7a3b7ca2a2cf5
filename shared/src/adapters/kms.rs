//! [`ReleaseSigner`] on the stack's asymmetric KMS key (`SIGN_VERIFY`, `ECC_NIST_P256`).
//!
//! The message is signed `RAW` (KMS hashes it with SHA-256): release statements are short
//! (well under KMS's 4096-byte limit), and moto's KMS, which the local stack uses, treats
//! every message as raw, so one code path holds in both places.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use aws_sdk_kms::Client;
use base64::Engine;

use super::classify;
use crate::error::{EgressError, Result};
use crate::ports::{ReleaseSigner, Signed};

/// [`ReleaseSigner`] on KMS key `key_id`.
#[derive(Debug, Clone)]
pub struct KmsReleaseSigner {
    client: Client,
    key_id: String,
}

impl KmsReleaseSigner {
    /// Wraps `client` for key `key_id` (ARN, id or alias).
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }

    /// A KMS client from `sdk` for key `key_id`, so the functions need no KMS crate of
    /// their own.
    pub fn from_config(sdk: &aws_config::SdkConfig, key_id: impl Into<String>) -> Self {
        Self::new(Client::new(sdk), key_id)
    }
}

/// PEM text of a DER SubjectPublicKeyInfo.
pub fn spki_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

impl ReleaseSigner for KmsReleaseSigner {
    async fn sign(&self, message: &[u8]) -> Result<Signed> {
        let out = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| classify(&format!("KMS Sign with {}", self.key_id), e))?;
        let signature = out
            .signature
            .ok_or_else(|| EgressError::Internal("KMS Sign returned no signature".into()))?
            .into_inner();
        Ok(Signed {
            key_id: out.key_id.unwrap_or_else(|| self.key_id.clone()),
            signature,
        })
    }

    async fn public_key_pem(&self) -> Result<String> {
        let out = self
            .client
            .get_public_key()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(|e| classify(&format!("KMS GetPublicKey of {}", self.key_id), e))?;
        let der = out
            .public_key
            .ok_or_else(|| EgressError::Internal("KMS GetPublicKey returned no key".into()))?;
        Ok(spki_pem(der.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kms::operation::get_public_key::GetPublicKeyOutput;
    use aws_sdk_kms::operation::sign::SignOutput;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    #[tokio::test]
    async fn when_signing_then_kms_signs_the_raw_message_with_ecdsa_sha_256() {
        let sign = mock!(Client::sign)
            .match_requests(|r| {
                r.message_type() == Some(&MessageType::Raw)
                    && r.signing_algorithm() == Some(&SigningAlgorithmSpec::EcdsaSha256)
                    && r.message().map(|m| m.as_ref()) == Some(b"statement".as_ref())
            })
            .then_output(|| {
                SignOutput::builder()
                    .key_id("arn:key")
                    .signature(Blob::new(vec![1, 2, 3]))
                    .build()
            });
        let client = mock_client!(aws_sdk_kms, [&sign]);
        let signed = KmsReleaseSigner::new(client, "alias/release")
            .sign(b"statement")
            .await
            .unwrap();
        assert_eq!(signed.key_id, "arn:key");
        assert_eq!(signed.signature, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn when_kms_throttles_then_signing_is_transient() {
        let sign = mock!(Client::sign).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                aws_smithy_types::body::SdkBody::from(
                    r#"{"__type":"ThrottlingException","message":"slow"}"#,
                ),
            )
        });
        let client = mock_client!(aws_sdk_kms, RuleMode::MatchAny, [&sign], |c| c
            .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled()));
        let err = KmsReleaseSigner::new(client, "k")
            .sign(b"m")
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "TransientError");
    }

    #[tokio::test]
    async fn when_the_public_key_is_read_then_it_is_pem() {
        let key = mock!(Client::get_public_key)
            .match_requests(|r| r.key_id() == Some("k"))
            .then_output(|| {
                GetPublicKeyOutput::builder()
                    .public_key(Blob::new(vec![0x30; 91]))
                    .build()
            });
        let client = mock_client!(aws_sdk_kms, [&key]);
        let pem = KmsReleaseSigner::new(client, "k")
            .public_key_pem()
            .await
            .unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(pem.ends_with("-----END PUBLIC KEY-----\n"));
    }

    #[tokio::test]
    async fn when_the_role_may_not_read_the_public_key_then_the_error_names_the_key() {
        // What the API's role gets if its kms:GetPublicKey statement is missing.
        let key = mock!(Client::get_public_key).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                aws_smithy_types::body::SdkBody::from(
                    r#"{"__type":"AccessDeniedException","message":"not authorized"}"#,
                ),
            )
        });
        let client = mock_client!(aws_sdk_kms, RuleMode::MatchAny, [&key]);
        let err = KmsReleaseSigner::new(client, "arn:aws:kms:eu-west-2:1:key/release")
            .public_key_pem()
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "InternalError");
        assert!(
            err.to_string()
                .contains("GetPublicKey of arn:aws:kms:eu-west-2:1:key/release"),
            "{err}"
        );
    }
}
