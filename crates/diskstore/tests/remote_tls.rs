//! TLS negotiation as libpq does it (`sslmode=prefer`/`allow` fall back the other way)
//! and client certificates, against the servers of `scripts/servers.sh`: the shared ones
//! (users admitted only in plain text, only over TLS, only with a client certificate)
//! and private ones without TLS or with a TLS our client cannot speak.

mod remote_support;

use diskstore::remote::postgres::PgStore;
use diskstore::remote::postgres_cache::PgCache;
use diskstore::remote::redis::RedisCache;
use diskstore::remote::{RemoteCache, RemoteCacheOptions};
use diskstore::{DiskStore, Error};
use remote_support::{PrivateServers, server, unique};

fn open(url: &str) -> diskstore::Result<PgStore<String, i64>> {
    PgStore::open_table(url, &unique("tls"))
}

/// Opens a store and proves it works; panics with the error otherwise.
fn works(url: &str) {
    let s = open(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    s.insert("k", &1).unwrap();
    assert_eq!(s.get("k").unwrap(), Some(1));
}

/// The message of the connection error opening `url` gives.
fn refused(url: &str) -> String {
    match open(url) {
        Err(e @ Error::Connection { .. }) => e.to_string(),
        Err(other) => panic!("{url}: expected a connection error, got {other:?}"),
        Ok(_) => panic!("{url}: expected a connection error, got a connection"),
    }
}

/// The shared PostgreSQL's address (`postgresql://USER@host:port/db`) with `user`.
fn as_user(url: &str, user: &str) -> String {
    let base = url.split('?').next().unwrap();
    base.replacen("postgres@", &format!("{user}@"), 1)
}

#[test]
fn prefer_falls_back_to_plain_text_and_allow_to_tls() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    // diskstore_plain is refused over TLS (pg_hba `hostssl … reject`): `prefer` tries TLS,
    // is refused, and connects again in plain text; `require` cannot.
    let plain = as_user(&url, "diskstore_plain");
    works(&format!("{plain}?sslmode=prefer"));
    works(&plain); // prefer is the default
    works(&format!("{plain}?sslmode=allow"));
    let m = refused(&format!("{plain}?sslmode=require"));
    assert!(m.contains("SSL encryption") || m.contains("rejects"), "{m}");
    // diskstore_tls is refused in plain text: `allow` connects again over TLS.
    let tls = as_user(&url, "diskstore_tls");
    works(&format!("{tls}?sslmode=allow"));
    works(&format!("{tls}?sslmode=prefer"));
    let m = refused(&format!("{tls}?sslmode=disable"));
    assert!(m.contains("no encryption"), "{m}");
    // When both ways fail, the error says what each attempt met.
    let m = refused(&format!(
        "{}?sslmode=prefer",
        as_user(&url, "diskstore_pw:wrong")
    ));
    assert!(m.contains("authentication failed"), "{m}");
    assert!(m.contains("after over TLS failed"), "{m}");
    assert!(!m.contains("wrong"), "the password leaked: {m}");
    // A refused TCP connection is not tried twice (and still a clear error).
    let m = refused("postgresql://postgres@127.0.0.1:1/x?sslmode=prefer");
    assert!(!m.contains("after over TLS failed"), "{m}");
}

#[test]
fn prefer_and_allow_on_a_server_without_tls() {
    let Some(srv) = PrivateServers::start_with(&["postgres"], false, "-c ssl=off") else {
        return;
    };
    let base = srv.postgres_as("postgres");
    works(&format!("{base}?sslmode=prefer"));
    works(&format!("{base}?sslmode=allow"));
    let m = refused(&format!("{base}?sslmode=require"));
    assert!(m.to_lowercase().contains("tls") || m.contains("SSL"), "{m}");
}

#[test]
fn prefer_falls_back_when_the_handshake_fails() {
    // The server offers only TLS 1.0-1.1, which our client (TLS 1.2 and 1.3) refuses:
    // the server says yes to TLS and the handshake then fails.
    let options = "-c ssl_min_protocol_version=TLSv1 -c ssl_max_protocol_version=TLSv1.1";
    let Some(srv) = PrivateServers::start_with(&["postgres"], false, options) else {
        return;
    };
    let base = srv.postgres_as("postgres");
    let m = refused(&format!("{base}?sslmode=require"));
    assert!(!m.is_empty());
    works(&format!("{base}?sslmode=prefer"));
    works(&base);
}

/// The test CA's directory (`DISKSTORE_TEST_TLS_CA`'s).
fn tls_dir() -> Option<std::path::PathBuf> {
    server("DISKSTORE_TEST_POSTGRES_TLS")?;
    let ca = std::env::var("DISKSTORE_TEST_TLS_CA").ok()?;
    Some(std::path::Path::new(&ca).parent()?.to_owned())
}

#[test]
fn client_certificates_on_postgres() {
    let (Some(url), Some(dir)) = (server("DISKSTORE_TEST_POSTGRES_CERT"), tls_dir()) else {
        return;
    };
    // diskstore_cert is admitted only with a client certificate of the test CA
    // (pg_hba `cert`: the chain is verified and its CN must be the user).
    works(&url);
    let s = DiskStore::<String, i64>::builder(&url)
        .table(unique("cert"))
        .open_url()
        .unwrap();
    s.insert("a", &1).unwrap();
    let c = PgCache::open(&url, RemoteCacheOptions::new(unique("certc"))).unwrap();
    assert_eq!(c.len().unwrap(), 0);
    let path = |f: &str| dir.join(f).to_str().unwrap().to_owned();
    let without = url.split("&sslcert=").next().unwrap().to_owned();
    let m = refused(&without);
    assert!(m.contains("certificate"), "{m}");
    // A certificate of a CA the server does not trust.
    let other = format!(
        "{without}&sslcert={}&sslkey={}",
        path("other-client.pem"),
        path("other-client.key")
    );
    refused(&other);
    // Bad paths and files are usage errors naming the parameter.
    let missing = url.replace("client.pem", "no-such.pem");
    assert!(matches!(open(&missing), Err(Error::Usage(m)) if m.contains("sslcert")));
    let missing_key = url.replace("client.key", "no-such.key");
    assert!(matches!(open(&missing_key), Err(Error::Usage(m)) if m.contains("sslkey")));
    let not_a_key = url.replace("client.key", "client.pem");
    assert!(matches!(open(&not_a_key), Err(Error::Usage(m)) if m.contains("sslkey")));
    let not_a_cert = url.replace("client.pem", "client.key");
    assert!(matches!(open(&not_a_cert), Err(Error::Usage(m)) if m.contains("sslcert")));
    let key_alone = url.split("&sslcert=").next().unwrap().to_owned()
        + &format!("&sslkey={}", path("client.key"));
    assert!(matches!(open(&key_alone), Err(Error::Usage(m)) if m.contains("sslcert")));
    // A key that does not belong to the certificate.
    let mismatched = url.replace("client.key", "other-client.key");
    assert!(
        matches!(open(&mismatched), Err(Error::Usage(m)) if m.contains("does not fit")),
        "a key of another certificate"
    );
}

#[test]
fn client_certificates_on_redis() {
    let (Some(url), Some(dir)) = (server("DISKSTORE_TEST_REDIS_TLS"), tls_dir()) else {
        return;
    };
    let path = |f: &str| dir.join(f).to_str().unwrap().to_owned();
    let open = |u: &str| RedisCache::open(u, RemoteCacheOptions::new(unique("cert")));
    // The TLS port checks a client certificate when one is given: the test CA's passes,
    // another CA's is refused (so the certificate is really sent).
    let good = format!(
        "{url}&ssl_certfile={}&ssl_keyfile={}",
        path("client.pem"),
        path("client.key")
    );
    let c = open(&good).unwrap();
    assert_eq!(c.len().unwrap(), 0);
    let bad = format!(
        "{url}&ssl_certfile={}&ssl_keyfile={}",
        path("other-client.pem"),
        path("other-client.key")
    );
    assert!(matches!(open(&bad), Err(Error::Connection { .. })));
    let missing = good.replace("client.key", "no-such.key");
    assert!(matches!(open(&missing), Err(Error::Usage(m)) if m.contains("ssl_keyfile")));
    let alone = format!("{url}&ssl_certfile={}", path("client.pem"));
    assert!(matches!(open(&alone), Err(Error::Usage(m)) if m.contains("ssl_keyfile")));
    let plain = good.replace("rediss://", "redis://");
    assert!(matches!(open(&plain), Err(Error::Usage(m)) if m.contains("rediss://")));
}
