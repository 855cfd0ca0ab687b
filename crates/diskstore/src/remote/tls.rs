//! TLS settings taken from backend URLs (feature `tls`: rustls with the `ring` provider).
//!
//! PostgreSQL URLs take libpq's `sslmode=` (`disable`, `allow`, `prefer` (the default),
//! `require`, `verify-ca`, `verify-full`) and `sslrootcert=` (a PEM file of CA
//! certificates, or `system` for the operating system's store). As with libpq, `prefer`
//! connects again in plain text when the TLS attempt fails (the server declines TLS, the
//! handshake fails, or the server refuses the session over TLS), and `allow` connects
//! again over TLS when the server refuses a plain-text session. Redis URLs use the `rediss://` scheme and take
//! `ssl_ca_certs=` (a PEM file) as redis-py does. Without the feature, a URL that needs TLS
//! gives [`Error::NotSupported`] naming it; `prefer` and `disable` connect in plain text.

// A build with one backend, or without `tls`, leaves parts of this unused.
#![cfg_attr(
    not(all(feature = "postgres", feature = "redis", feature = "tls")),
    allow(dead_code, unused_imports)
)]

use crate::{Error, Result};

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// Plain text; TLS (certificate not verified) only when the server refuses plain text.
    Allow,
    /// TLS if the server offers it (certificate not verified), else plain text.
    Prefer,
    /// TLS, certificate not verified (unless `sslrootcert` is given: then as `VerifyCa`).
    Require,
    /// TLS, the certificate chain verified against the root certificates.
    VerifyCa,
    /// TLS, the chain verified and the host name checked against the certificate.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(Error::Usage(format!(
                    "sslmode={value:?}: expected disable, allow, prefer, require, verify-ca or verify-full"
                )));
            }
        })
    }
}

/// The TLS parameters of a URL, and the URL without them.
#[derive(Clone, Debug)]
pub(crate) struct UrlTls {
    /// The URL with our TLS parameters removed.
    pub url: String,
    /// `sslmode` (PostgreSQL; `Prefer` when absent).
    pub mode: SslMode,
    /// `sslrootcert` (PostgreSQL) or `ssl_ca_certs` (Redis), percent-decoded.
    pub root_cert: Option<String>,
    /// The client certificate and key files, if given.
    pub client: Option<ClientCert>,
}

/// The files of a client certificate, and the URL parameters that named them.
#[derive(Clone, Debug)]
pub(crate) struct ClientCert {
    /// A PEM file: the certificate, then any intermediates.
    pub cert: String,
    /// A PEM file: its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// The parameters' names (`sslcert`/`sslkey` or `ssl_certfile`/`ssl_keyfile`).
    pub names: (&'static str, &'static str),
}

/// Both files of a client certificate, or neither.
fn client_cert(
    cert: Option<String>,
    key: Option<String>,
    names: (&'static str, &'static str),
) -> Result<Option<ClientCert>> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(ClientCert { cert, key, names })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::Usage(format!(
            "{}= needs {}= (the client certificate's private key)",
            names.0, names.1
        ))),
        (None, Some(_)) => Err(Error::Usage(format!(
            "{}= needs {}= (the client certificate)",
            names.1, names.0
        ))),
    }
}

/// libpq's default client certificate: `~/.postgresql/postgresql.crt` with its key
/// `~/.postgresql/postgresql.key`, used (as libpq does) when the URL names none and both
/// files exist; `home` is the user's home folder.
fn default_client_cert(home: &str) -> Option<ClientCert> {
    let dir = std::path::Path::new(home).join(".postgresql");
    let (cert, key) = (dir.join("postgresql.crt"), dir.join("postgresql.key"));
    (!home.is_empty() && cert.is_file() && key.is_file()).then(|| ClientCert {
        cert: cert.to_string_lossy().into_owned(),
        key: key.to_string_lossy().into_owned(),
        names: ("sslcert (libpq's default)", "sslkey (libpq's default)"),
    })
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'%' && i + 2 < b.len())
            .then(|| Some(hex(b[i + 1])? * 16 + hex(b[i + 2])?))
            .flatten();
        match escaped {
            Some(v) => {
                out.push(v as u8);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes the query parameters named in `keys` from `url`, returning their decoded values.
fn take_params(url: &str, keys: &[&str]) -> (String, Vec<Option<String>>) {
    let mut found = vec![None; keys.len()];
    let (base, fragment) = match url.find('#') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    };
    let Some(q) = base.find('?') else {
        return (url.to_owned(), found);
    };
    let mut kept = Vec::new();
    for pair in base[q + 1..].split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match keys.iter().position(|key| *key == k) {
            Some(i) => found[i] = Some(percent_decode(v)),
            None => kept.push(pair),
        }
    }
    let mut out = base[..q].to_owned();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    out.push_str(fragment);
    (out, found)
}

/// Splits `sslmode`, `sslrootcert`, `sslcert` and `sslkey` off a PostgreSQL URL.
pub(crate) fn postgres_url(url: &str) -> Result<UrlTls> {
    let (url, values) = take_params(url, &["sslmode", "sslrootcert", "sslcert", "sslkey"]);
    let [mode, root_cert, cert, key]: [Option<String>; 4] =
        values.try_into().expect("four parameters");
    let mode = match mode {
        Some(m) => SslMode::parse(&m)?,
        None => SslMode::Prefer,
    };
    let client = client_cert(cert, key, ("sslcert", "sslkey"))?;
    let needs_tls = !matches!(mode, SslMode::Disable | SslMode::Allow | SslMode::Prefer)
        || (client.is_some() && mode != SslMode::Disable);
    if !cfg!(feature = "tls") && needs_tls {
        return Err(feature_missing(&url, "postgres"));
    }
    let client = match client {
        None if cfg!(feature = "tls") && mode != SslMode::Disable => {
            default_client_cert(&std::env::var("HOME").unwrap_or_default())
        }
        given => given,
    };
    Ok(UrlTls {
        url,
        mode,
        root_cert,
        client,
    })
}

/// Splits `ssl_ca_certs`, `ssl_certfile` and `ssl_keyfile` off a Redis URL; `rediss://`
/// sets the mode to `VerifyFull`.
pub(crate) fn redis_url(url: &str) -> Result<UrlTls> {
    let (url, values) = take_params(url, &["ssl_ca_certs", "ssl_certfile", "ssl_keyfile"]);
    let [root_cert, cert, key]: [Option<String>; 3] = values.try_into().expect("three parameters");
    let tls = url.to_ascii_lowercase().starts_with("rediss:");
    if tls && !cfg!(feature = "tls") {
        return Err(feature_missing(&url, "redis"));
    }
    let client = client_cert(cert, key, ("ssl_certfile", "ssl_keyfile"))?;
    if (root_cert.is_some() || client.is_some()) && !tls {
        return Err(Error::Usage(
            "ssl_ca_certs=, ssl_certfile= and ssl_keyfile= need a rediss:// URL (TLS)".into(),
        ));
    }
    Ok(UrlTls {
        url,
        mode: if tls {
            SslMode::VerifyFull
        } else {
            SslMode::Disable
        },
        root_cert,
        client,
    })
}

fn feature_missing(url: &str, backend: &'static str) -> Error {
    Error::NotSupported {
        backend,
        operation: format!(
            "TLS ({}): build diskstore with the `tls` feature",
            super::redact_url(url)
        ),
    }
}

/// Reads a PEM file of certificates (for the error, `what` names the parameter).
#[cfg(feature = "tls")]
pub(crate) fn read_pem(path: &str, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Usage(format!("{what}={path}: {e}")))
}

#[cfg(feature = "tls")]
pub(crate) use with_tls::{client_pem, postgres_connector};

#[cfg(feature = "tls")]
mod with_tls {
    use super::ClientCert;
    use super::{SslMode, UrlTls, read_pem};
    use crate::{Error, Result};
    use rustls::client::WantsClientCert;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{CryptoProvider, ring};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::sign::CertifiedKey;
    use rustls::{
        CertificateError, ClientConfig, ConfigBuilder, DigitallySignedStruct, RootCertStore,
    };
    use std::sync::Arc;
    use tokio_postgres_rustls::MakeRustlsConnect;

    // `ring` on purpose (aws-lc-rs needs cmake on build machines); rustls marks its provider
    // deprecated only for lacking post-quantum key exchange.
    #[allow(deprecated)]
    fn provider() -> Arc<CryptoProvider> {
        Arc::new(ring::default_provider())
    }

    /// The root store: `sslrootcert=path`, `system`, or libpq's `~/.postgresql/root.crt`.
    fn roots(root_cert: Option<&str>) -> Result<RootCertStore> {
        let mut store = RootCertStore::empty();
        let path = match root_cert {
            Some("system") => {
                let found = rustls_native_certs::load_native_certs();
                store.add_parsable_certificates(found.certs);
                if store.is_empty() {
                    return Err(Error::Usage(
                        "sslrootcert=system: no root certificates found on this system".into(),
                    ));
                }
                return Ok(store);
            }
            Some(p) => p.to_owned(),
            None => {
                let home = std::env::var("HOME").unwrap_or_default();
                let p = format!("{home}/.postgresql/root.crt");
                if !std::path::Path::new(&p).exists() {
                    return Err(Error::Usage(
                        "sslmode=verify-ca/verify-full needs sslrootcert= (a PEM file of CA \
                         certificates, or `system`) or ~/.postgresql/root.crt"
                            .into(),
                    ));
                }
                p
            }
        };
        let pem = read_pem(&path, "sslrootcert")?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| Error::Usage(format!("sslrootcert={path}: {e}")))?;
            store
                .add(cert)
                .map_err(|e| Error::Usage(format!("sslrootcert={path}: {e}")))?;
        }
        if store.is_empty() {
            return Err(Error::Usage(format!(
                "sslrootcert={path}: no certificates in the file"
            )));
        }
        Ok(store)
    }

    /// A client certificate's chain and key, read and checked: the files parse, and the
    /// key belongs to the certificate. Errors name the URL parameter and the file.
    fn client_der(
        c: &ClientCert,
        provider: &CryptoProvider,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let (cert_name, key_name) = c.names;
        let cert_pem = read_pem(&c.cert, cert_name)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Usage(format!("{cert_name}={}: {e}", c.cert)))?;
        if chain.is_empty() {
            return Err(Error::Usage(format!(
                "{cert_name}={}: no certificate in the file",
                c.cert
            )));
        }
        let key_pem = read_pem(&c.key, key_name)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| Error::Usage(format!("{key_name}={}: no private key: {e}", c.key)))?;
        CertifiedKey::from_der(chain.clone(), key.clone_key(), provider).map_err(|e| {
            Error::Usage(format!(
                "{key_name}={} does not fit {cert_name}={}: {e}",
                c.key, c.cert
            ))
        })?;
        Ok((chain, key))
    }

    /// The PEM bytes of a client certificate and its key, checked as [`client_der`]
    /// checks them (for clients that parse the files themselves).
    pub(crate) fn client_pem(c: &ClientCert) -> Result<(Vec<u8>, Vec<u8>)> {
        client_der(c, &provider())?;
        Ok((read_pem(&c.cert, c.names.0)?, read_pem(&c.key, c.names.1)?))
    }

    /// Finishes a client configuration with the URL's client certificate, if any.
    fn client_auth(
        builder: ConfigBuilder<ClientConfig, WantsClientCert>,
        tls: &UrlTls,
        provider: &CryptoProvider,
    ) -> Result<ClientConfig> {
        match &tls.client {
            None => Ok(builder.with_no_client_auth()),
            Some(c) => {
                let (chain, key) = client_der(c, provider)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::Usage(format!("{}={}: {e}", c.names.0, c.cert)))
            }
        }
    }

    /// The verifier of the modes that do not check the host name: libpq's
    /// `allow`/`prefer`/`require` (encryption without authentication: any certificate)
    /// and `verify-ca` (the chain, with `chain`). Handshake signatures are checked in
    /// every mode.
    #[derive(Debug)]
    struct NoNameCheck {
        provider: Arc<CryptoProvider>,
        chain: Option<Arc<WebPkiServerVerifier>>,
    }

    impl ServerCertVerifier for NoNameCheck {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp: &[u8],
            now: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            let Some(chain) = &self.chain else {
                return Ok(ServerCertVerified::assertion());
            };
            // The chain is checked first; a name mismatch is only reported after it passed.
            match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            let algorithms = &self.provider.signature_verification_algorithms;
            rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            let algorithms = &self.provider.signature_verification_algorithms;
            rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    /// The TLS connector for a PostgreSQL URL's settings; `None` for `sslmode=disable`
    /// (`allow` gets one for its second attempt).
    pub(crate) fn postgres_connector(tls: &UrlTls) -> Result<Option<MakeRustlsConnect>> {
        let mode = match (tls.mode, &tls.root_cert) {
            (SslMode::Disable, _) => return Ok(None),
            // libpq: `require` with a root certificate file behaves as `verify-ca`.
            (SslMode::Require, Some(_)) => SslMode::VerifyCa,
            (m, _) => m,
        };
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Usage(format!("TLS set-up: {e}")))?;
        let config = match mode {
            SslMode::Allow | SslMode::Prefer | SslMode::Require => client_auth(
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NoNameCheck {
                        provider: provider.clone(),
                        chain: None,
                    })),
                tls,
                &provider,
            )?,
            _ => {
                let roots = Arc::new(roots(tls.root_cert.as_deref())?);
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
                        .build()
                        .map_err(|e| Error::Usage(format!("TLS set-up: {e}")))?;
                let builder = if mode == SslMode::VerifyCa {
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(NoNameCheck {
                            provider: provider.clone(),
                            chain: Some(verifier),
                        }))
                } else {
                    builder.with_webpki_verifier(verifier)
                };
                client_auth(builder, tls, &provider)?
            }
        };
        Ok(Some(MakeRustlsConnect::new(config)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_params_are_taken_off() {
        let t = postgres_url(
            "postgresql://u@h:5/db?application_name=x&sslmode=disable&sslrootcert=%2Ftmp%2Fca.pem",
        )
        .unwrap();
        assert_eq!(t.url, "postgresql://u@h:5/db?application_name=x");
        assert_eq!(t.mode, SslMode::Disable);
        assert_eq!(t.root_cert.as_deref(), Some("/tmp/ca.pem"));
        let t = postgres_url("postgresql://u@h/db").unwrap();
        assert_eq!(
            (t.url.as_str(), t.mode),
            ("postgresql://u@h/db", SslMode::Prefer)
        );
        assert!(matches!(
            postgres_url("postgresql://h/db?sslmode=sometimes"),
            Err(Error::Usage(_))
        ));
    }

    #[test]
    fn libpq_default_client_certificate_needs_both_files() {
        let home = std::env::temp_dir().join(format!("ds-home-{}", std::process::id()));
        let dir = home.join(".postgresql");
        std::fs::create_dir_all(&dir).unwrap();
        let home_str = home.to_str().unwrap();
        assert!(default_client_cert(home_str).is_none());
        std::fs::write(dir.join("postgresql.crt"), "x").unwrap();
        assert!(
            default_client_cert(home_str).is_none(),
            "a certificate without its key"
        );
        std::fs::write(dir.join("postgresql.key"), "x").unwrap();
        let found = default_client_cert(home_str).expect("both files");
        assert!(found.cert.ends_with(".postgresql/postgresql.crt"));
        assert!(found.key.ends_with(".postgresql/postgresql.key"));
        assert!(default_client_cert("").is_none());
        std::fs::remove_dir_all(&home).unwrap();
    }

    #[test]
    fn client_certificates_need_both_files() {
        let both = postgres_url("postgresql://u@h/db?sslcert=%2Fc.pem&sslkey=/k.pem&x=1");
        if cfg!(feature = "tls") {
            let t = both.unwrap();
            assert_eq!(t.url, "postgresql://u@h/db?x=1");
            let c = t.client.expect("a client certificate");
            assert_eq!((c.cert.as_str(), c.key.as_str()), ("/c.pem", "/k.pem"));
        } else {
            assert!(matches!(both, Err(Error::NotSupported { .. })));
        }
        for url in [
            "postgresql://u@h/db?sslcert=/c.pem",
            "postgresql://u@h/db?sslkey=/k.pem",
        ] {
            let err = postgres_url(url).unwrap_err();
            assert!(
                matches!(&err, Error::Usage(m) if m.contains("sslcert= needs sslkey=") || m.contains("sslkey= needs sslcert=")),
                "{err:?}"
            );
        }
        if cfg!(feature = "tls") {
            let t = redis_url("rediss://h/0?ssl_certfile=/c&ssl_keyfile=/k").unwrap();
            assert_eq!(
                t.client.map(|c| c.names),
                Some(("ssl_certfile", "ssl_keyfile"))
            );
            assert!(matches!(
                redis_url("rediss://h/0?ssl_keyfile=/k"),
                Err(Error::Usage(_))
            ));
        }
    }

    #[test]
    fn redis_params_are_taken_off() {
        if cfg!(feature = "tls") {
            let t = redis_url("rediss://h:1/0?ssl_ca_certs=/a/b%C3%A9.pem").unwrap();
            assert_eq!(t.url, "rediss://h:1/0");
            assert_eq!(t.root_cert.as_deref(), Some("/a/bé.pem"));
        }
        assert_eq!(percent_decode("%zz%4é%41"), "%zz%4éA");
        assert!(matches!(
            redis_url("redis://h:1/0?ssl_ca_certs=/a"),
            Err(Error::Usage(_))
        ));
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn without_the_feature_tls_urls_name_it() {
        for url in ["postgresql://h/db?sslmode=require", "rediss://h/0"] {
            let err = if url.starts_with("rediss") {
                redis_url(url).unwrap_err()
            } else {
                postgres_url(url).unwrap_err()
            };
            assert!(
                matches!(&err, Error::NotSupported { operation, .. } if operation.contains("`tls` feature")),
                "{err:?}"
            );
        }
    }
}
