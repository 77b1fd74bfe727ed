//! Reading the checkpoint signing key: a file holds a 32-byte Ed25519 seed (raw, or as 64 hex
//! digits) or a PKCS#8 document (DER, as `openssl genpkey -algorithm ed25519 -outform DER`
//! writes it); an environment variable holds the seed as 64 hex digits.

use portcullis_audit::Signer;
use portcullis_config::CredentialSource;

use super::AuditError;
use crate::services::read_secret;

/// The signer for `source`.
pub(super) fn signer(source: &CredentialSource) -> Result<Signer, AuditError> {
    let bytes = read_secret(source).map_err(AuditError::SigningKeySecret)?;
    let seed = match source {
        CredentialSource::Env(_) => Some(hex_seed(&bytes).ok_or(AuditError::SigningKeyFormat {
            reason: "the environment variable must hold 64 hex digits (a 32-byte Ed25519 seed)",
        })?),
        CredentialSource::File(_) if bytes.len() == 32 => {
            let mut seed = [0u8; 32];
            seed.copy_from_slice(&bytes);
            Some(seed)
        }
        CredentialSource::File(_) => hex_seed(&bytes),
    };
    if let Some(seed) = seed {
        return Signer::from_seed(&seed).map_err(AuditError::SigningKeyRejected);
    }
    if bytes.starts_with(b"-----BEGIN") {
        return Err(AuditError::SigningKeyFormat {
            reason: "PEM is not read; convert it to DER (`openssl pkey -outform DER`) or give the 32-byte seed in hex",
        });
    }
    Signer::from_pkcs8(&bytes).map_err(AuditError::SigningKeyRejected)
}

/// 64 hex digits (either case, surrounding whitespace ignored) as 32 bytes.
fn hex_seed(bytes: &[u8]) -> Option<[u8; 32]> {
    portcullis_core::hex::decode(std::str::from_utf8(bytes).ok()?.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> CredentialSource {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        CredentialSource::File(path)
    }

    #[test]
    fn raw_hex_and_pkcs8_files_give_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let expected = Signer::from_seed(&[7; 32]).unwrap().public_key();
        let raw = file_with(&dir, "raw", &[7; 32]);
        let hex = file_with(&dir, "hex", format!("{}\n", "07".repeat(32)).as_bytes());
        // PKCS#8 v1 of seed [7; 32], as `openssl genpkey -algorithm ed25519` lays it out.
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&[7; 32]);
        let der = file_with(&dir, "der", &der);
        for source in [raw, hex, der] {
            assert_eq!(signer(&source).unwrap().public_key(), expected);
        }
    }

    #[test]
    fn unreadable_keys_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let pem = file_with(&dir, "pem", b"-----BEGIN PRIVATE KEY-----\nMC4=\n");
        assert!(matches!(
            signer(&pem),
            Err(AuditError::SigningKeyFormat { .. })
        ));
        let junk = file_with(&dir, "junk", b"not a key");
        assert!(matches!(
            signer(&junk),
            Err(AuditError::SigningKeyRejected(_))
        ));
        let missing = CredentialSource::File(dir.path().join("missing"));
        assert!(matches!(
            signer(&missing),
            Err(AuditError::SigningKeySecret(_))
        ));
    }
}
