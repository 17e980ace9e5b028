//! Helpers of the tests that fetch registry packages.

use sha2::{Digest, Sha256};

/// `CLIRLAB_OFFLINE=1` skips the tests that download registry packages.
pub fn offline() -> bool {
    if std::env::var("CLIRLAB_OFFLINE").as_deref() == Ok("1") {
        eprintln!("CLIRLAB_OFFLINE=1: skipped (this test downloads registry packages)");
        return true;
    }
    false
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
