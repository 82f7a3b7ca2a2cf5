//! A release signer with a fixed local P-256 key, for tests.

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};

use crate::error::{EgressError, Result};
use crate::ports::{ReleaseSigner, Signed};

/// Signs like KMS would (ECDSA P-256 over SHA-256 of the message, DER) with a key made from
/// `seed`, so tests can make a second, different key.
#[derive(Debug, Clone)]
pub struct LocalSigner {
    key: SigningKey,
    /// What [`Signed::key_id`] says.
    pub key_id: String,
}

impl LocalSigner {
    /// A signer whose secret scalar is `seed` repeated (any seed from 1 to 200 is valid).
    pub fn new(seed: u8) -> Self {
        let bytes = [seed.max(1); 32];
        #[allow(clippy::expect_used)]
        let key = SigningKey::from_bytes(&bytes.into()).expect("a valid P-256 scalar");
        Self {
            key,
            key_id: format!("arn:aws:kms:eu-west-2:000000000000:key/local-{seed}"),
        }
    }

    /// The public key as PEM.
    pub fn pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }
}

impl Default for LocalSigner {
    fn default() -> Self {
        Self::new(7)
    }
}

impl ReleaseSigner for LocalSigner {
    async fn sign(&self, message: &[u8]) -> Result<Signed> {
        if message.len() > 4096 {
            return Err(EgressError::Internal(
                "KMS signs at most 4096 bytes raw".into(),
            ));
        }
        let signature: DerSignature = self.key.sign(message);
        Ok(Signed {
            key_id: self.key_id.clone(),
            signature: signature.as_bytes().to_vec(),
        })
    }

    async fn public_key_pem(&self) -> Result<String> {
        Ok(self.pem())
    }
}
