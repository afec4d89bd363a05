//! TLS setup: rustls with the `ring` crypto provider, installed once per process.

use std::sync::OnceLock;

/// Installs `ring` as the process-wide rustls provider, once. Building a
/// provider does it; call it first when building other TLS clients.
pub fn ensure_provider() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // Another part of the process may have installed one already; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
