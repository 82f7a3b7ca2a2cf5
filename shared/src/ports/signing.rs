//! Signing the release manifest with the stack's asymmetric KMS key.

use std::future::Future;

use crate::error::Result;

/// A signature and the key that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The key (ARN) that signed.
    pub key_id: String,
    /// DER-encoded ECDSA P-256 signature over SHA-256 of the message.
    pub signature: Vec<u8>,
}

/// Signs with the release key (`ECC_NIST_P256`, `ECDSA_SHA_256`) and serves its public half.
pub trait ReleaseSigner: Send + Sync {
    /// Signs `message` (at most 4096 bytes: KMS signs raw messages up to that size).
    fn sign(&self, message: &[u8]) -> impl Future<Output = Result<Signed>> + Send;

    /// The public key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), for recipients.
    fn public_key_pem(&self) -> impl Future<Output = Result<String>> + Send;
}
