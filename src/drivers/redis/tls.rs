//! TLS for the Redis driver: the certificate files a URL names (checked as rustls will use
//! them), the certificates a config gives redis-rs, and which failed handshakes are refusals
//! a retry would meet again.

use redis::RedisError;

use super::config::RedisConfig;
use super::file::read_file;
use crate::{Error, Result};

/// Checks that `pem` holds a certificate chain, as a client presents it.
pub(crate) fn check_certificate_pem(pem: &[u8]) -> std::result::Result<(), String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut certificates = 0;
    for certificate in CertificateDer::pem_slice_iter(pem) {
        certificate.map_err(pem_error)?;
        certificates += 1;
    }
    if certificates == 0 {
        return Err("no PEM certificate (`-----BEGIN CERTIFICATE-----`)".into());
    }
    Ok(())
}

/// Checks that `pem` holds a private key. Says what is wrong, never quoting the file: it is a
/// secret.
pub(crate) fn check_key_pem(pem: &[u8]) -> std::result::Result<(), String> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::{self, PemObject};
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(_) => Ok(()),
        Err(pem::Error::NoItemsFound) => {
            Err("no PEM private key (`-----BEGIN PRIVATE KEY-----`, RSA or EC)".into())
        }
        Err(_) => Err("a malformed PEM private key".into()),
    }
}

/// Checks that the client certificate `certificate` (a PEM chain) and the private key `key`
/// (PEM) make an identity rustls presents, as it does when it connects: the key is one it can
/// sign with and belongs to the certificate, which is X.509 v3 (rustls refuses v1, which
/// `openssl x509 -req` makes without an extension, where it failed as if the server's
/// certificate were at fault). Never quotes the key.
pub(crate) fn check_client_identity(
    certificate: &[u8],
    key: &[u8],
) -> std::result::Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(certificate)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| "a malformed PEM private key")?;
    let provider = rustls::crypto::ring::default_provider();
    match rustls::sign::CertifiedKey::from_der(chain, key, &provider) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => {
            Err("a private key that does not belong to the client certificate".into())
        }
        Err(error) if error.to_string().contains("UnsupportedCertVersion") => Err(
            "a client certificate of X.509 version 1, which TLS here refuses: issue it as \
             version 3 (with any extension, such as `extendedKeyUsage=clientAuth`)"
                .into(),
        ),
        Err(rustls::Error::General(_)) => {
            Err("a private key of a kind TLS here cannot sign with".into())
        }
        Err(error) => Err(format!("a client certificate TLS cannot use ({error})")),
    }
}

/// What is wrong with a PEM file, never quoting it.
fn pem_error(error: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::MissingSectionEnd { .. } => "a PEM section without its END line".into(),
        Error::IllegalSectionStart { .. } => "a malformed PEM BEGIN line".into(),
        Error::Base64Decode(_) => "a PEM section that is not valid base64".into(),
        _ => "a malformed PEM file".into(),
    }
}

/// Checks that `pem` holds at least one certificate and that each is one rustls takes as a
/// trust anchor, as the client library does when it connects: a file holding none (the wrong
/// file, a key, a certificate in DER) made every connection fail as if the server's
/// certificate were at fault, and a malformed one failed without its reason. Says what is
/// wrong, never quoting the file.
pub(crate) fn check_ca_pem(pem: &[u8]) -> std::result::Result<(), String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(pem) {
        let certificate = certificate.map_err(pem_error)?;
        roots
            .add(certificate)
            .map_err(|error| format!("a certificate that is not a usable CA ({error})"))?;
    }
    if roots.is_empty() {
        return Err(
            "no PEM certificate (`-----BEGIN CERTIFICATE-----`): give the certificate \
                    of the CA that signed the server's, in PEM"
                .into(),
        );
    }
    Ok(())
}

/// The certificates `config` gives TLS beyond the system's roots (a private CA, a client
/// certificate and its key), checked; `None` when it gives none.
///
/// # Errors
///
/// [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl) for certificates set for a
/// connection without TLS, a client certificate without its key or the other way round, or a
/// field that does not hold what it names.
fn tls_certificates(config: &RedisConfig) -> Result<Option<redis::TlsCertificates>> {
    let fields = [
        (
            "tls_root_certificate",
            &config.tls_root_certificate,
            check_ca_pem as fn(&[u8]) -> _,
        ),
        (
            "tls_client_certificate",
            &config.tls_client_certificate,
            check_certificate_pem,
        ),
        ("tls_client_key", &config.tls_client_key, check_key_pem),
    ];
    for (name, field, check) in fields {
        let Some(pem) = field else { continue };
        if !config.is_tls() {
            return Err(Error::invalid_url(format!(
                "`RedisConfig::{name}` is set for a connection without TLS: use a `rediss://` \
                 or `rediss+cluster://` URL"
            )));
        }
        check(pem)
            .map_err(|why| Error::invalid_url(format!("`RedisConfig::{name}` holds {why}")))?;
    }
    let client_tls = match (&config.tls_client_certificate, &config.tls_client_key) {
        (Some(certificate), Some(key)) => {
            check_client_identity(certificate, key).map_err(|why| {
                Error::invalid_url(format!(
                    "`RedisConfig::tls_client_certificate` and `tls_client_key` hold {why}"
                ))
            })?;
            Some(redis::ClientTlsConfig {
                client_cert: certificate.clone(),
                client_key: key.clone(),
            })
        }
        (None, None) => None,
        _ => {
            return Err(Error::invalid_url(
                "a client certificate needs its private key, and the other way round \
                 (`tls_cert_file` and `tls_key_file`)",
            ));
        }
    };
    if client_tls.is_none() && config.tls_root_certificate.is_none() {
        return Ok(None);
    }
    Ok(Some(redis::TlsCertificates {
        client_tls,
        root_cert: config.tls_root_certificate.clone(),
    }))
}

/// The certificates a link's connections use: those the config holds, and, for the files a
/// URL named, what those files hold when a connection is made (see
/// [`RedisConfig::tls_root_certificate`]).
pub(super) struct Certificates {
    /// What the config holds, checked; `None` when it gives TLS nothing beyond the roots.
    given: Option<redis::TlsCertificates>,
    /// The CA, client certificate and key files to read again, if any.
    files: [Option<String>; 3],
    /// The last certificates read whole from the files.
    last: std::sync::Mutex<Option<redis::TlsCertificates>>,
}

impl Certificates {
    /// The certificates of `config`, checked.
    ///
    /// # Errors
    ///
    /// As [`tls_certificates`].
    pub(super) fn new(config: &RedisConfig) -> Result<Self> {
        let given = tls_certificates(config)?;
        Ok(Certificates {
            last: std::sync::Mutex::new(given.clone()),
            given,
            files: config.tls_files().map(|path| path.map(str::to_owned)),
        })
    }

    /// Whether connections read files again ([`now`](Self::now)).
    pub(super) fn read_again(&self) -> bool {
        self.files.iter().any(Option::is_some)
    }

    /// What the config holds.
    pub(super) fn given(&self) -> Option<redis::TlsCertificates> {
        self.given.clone()
    }

    /// The certificates for a connection about to be made: the files read again (off the
    /// runtime's threads: a file may be a pipe a secrets agent writes) when the config names
    /// any, else what it holds.
    pub(super) async fn now(&self) -> Option<redis::TlsCertificates> {
        if !self.read_again() {
            return self.given.clone();
        }
        let files = self.files.clone();
        let given = self.given.clone();
        let read = tokio::task::spawn_blocking(move || read_again(&files, given)).await;
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Ok(Some(read)) = read {
            *last = Some(read);
        }
        last.clone()
    }
}

/// The certificates with the named files read again, or `None` when one does not read as
/// what it names, or the client certificate and key do not belong together (a renewal
/// caught half way).
fn read_again(
    files: &[Option<String>; 3],
    given: Option<redis::TlsCertificates>,
) -> Option<redis::TlsCertificates> {
    let mut certificates = given?;
    let [ca, certificate, key] = files;
    if let Some(path) = ca {
        certificates.root_cert = Some(read_file("tls_ca_file", path, check_ca_pem).ok()?);
    }
    if let Some(client) = &mut certificates.client_tls {
        if let Some(path) = certificate {
            let pem = read_file("tls_cert_file", path, check_certificate_pem).ok()?;
            client.client_cert = pem;
        }
        if let Some(path) = key {
            client.client_key = read_file("tls_key_file", path, check_key_pem).ok()?;
        }
        check_client_identity(&client.client_cert, &client.client_key).ok()?;
    }
    Some(certificates)
}

/// The refusal, in words, when `error` is a TLS handshake a retry would meet again: a
/// certificate refused on either side or missing, or no protocol both sides speak.
pub(super) fn refused(error: &RedisError) -> Option<String> {
    refused_tls(error)
        .map(ToString::to_string)
        .or_else(|| refused_tls_in_text(error))
}

/// The TLS error in `error`'s sources that a retry would meet again ([`refusal`]).
fn refused_tls(error: &RedisError) -> Option<&rustls::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(mut current) = source {
        // What wraps the error without showing it as a source: redis-rs keeps an I/O error in
        // an `Arc`, and an I/O error's `source` skips the error it wraps (`get_ref` gives it).
        loop {
            if let Some(shared) = current.downcast_ref::<Shared>() {
                current = &**shared;
            } else if let Some(inner) = current
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                current = inner;
            } else {
                break;
            }
        }
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return refusal(tls).then_some(tls);
        }
        source = current.source();
    }
    None
}

/// The alerts a server ends a handshake with when it refuses what this client presents (no
/// client certificate, one it does not trust) or offers: the same settings meet them again.
const REFUSING_ALERTS: [rustls::AlertDescription; 10] = [
    rustls::AlertDescription::CertificateRequired,
    rustls::AlertDescription::BadCertificate,
    rustls::AlertDescription::UnsupportedCertificate,
    rustls::AlertDescription::CertificateRevoked,
    rustls::AlertDescription::CertificateExpired,
    rustls::AlertDescription::CertificateUnknown,
    rustls::AlertDescription::UnknownCA,
    rustls::AlertDescription::AccessDenied,
    rustls::AlertDescription::HandshakeFailure,
    rustls::AlertDescription::ProtocolVersion,
];

/// Whether a TLS error is a refusal a retry would meet again: this client refusing the
/// server's certificate (untrusted, expired, for another name) or its missing one, no protocol
/// both sides speak, or the server refusing this client's certificate or its missing one.
fn refusal(tls: &rustls::Error) -> bool {
    match tls {
        rustls::Error::InvalidCertificate(_)
        | rustls::Error::NoCertificatesPresented
        | rustls::Error::PeerIncompatible(_) => true,
        rustls::Error::AlertReceived(alert) => REFUSING_ALERTS.contains(alert),
        _ => false,
    }
}

/// The refused TLS handshake [`refused_tls`] finds, in an error that carries it only as text:
/// a cluster's first connections, whose failure redis-rs reports as the text of one node's
/// error, without it as a source. Recognised by how rustls (the version this crate links)
/// writes those errors.
fn refused_tls_in_text(error: &RedisError) -> Option<String> {
    let detail = error.detail()?;
    let heading = |refusal: rustls::Error| {
        let text = refusal.to_string();
        text.split_once(':')
            .map_or(text.clone(), |(heading, _)| heading.to_owned())
    };
    let refusals = [
        heading(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        )),
        heading(rustls::Error::NoCertificatesPresented),
        heading(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        )),
    ]
    .into_iter()
    // An alert's text is whole: other alerts share its heading.
    .chain(
        REFUSING_ALERTS
            .iter()
            .map(|&alert| rustls::Error::AlertReceived(alert).to_string()),
    );
    refusals
        .into_iter()
        .any(|refusal| detail.contains(refusal.as_str()))
        .then(|| detail.to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::config::RedisConfig;

    #[test]
    fn an_endless_ca_file_is_refused_not_read_to_the_end() {
        let error = RedisConfig::from_url("rediss://h/0?tls_ca_file=/dev/zero").unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::InvalidUrl);
        assert!(error.to_string().contains("more than 16 MiB"), "{error}");
    }

    /// A file that holds no usable CA certificate is refused when the URL is parsed, saying
    /// why and quoting nothing of it; every connection failed as if the server's certificate
    /// were at fault before.
    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let dir = std::env::temp_dir().join(format!("namestore-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = concat!(
            "-----BEGIN PRIVATE KEY-----\n",
            "MC4CAQAwBQYDK2VwBCIEIB2q6v3cXc0N1Yp9dLz5r1vJtD+Q9yQ2d5xk0pYwq1Ld\n",
            "-----END PRIVATE KEY-----\n",
        );
        let cases: [(&str, &[u8], &str); 6] = [
            (
                "text",
                b"root:x:0:0:root:/root:/bin/bash\n",
                "no PEM certificate",
            ),
            ("key", key.as_bytes(), "no PEM certificate"),
            (
                "der",
                &[0x30, 0x82, 0x01, 0x0a, 0x02, 0x82],
                "no PEM certificate",
            ),
            ("empty", b"", "no PEM certificate"),
            (
                "cut",
                b"-----BEGIN CERTIFICATE-----\nMIIB\n",
                "without its END line",
            ),
            (
                "garbage",
                concat!(
                    "-----BEGIN CERTIFICATE-----\n",
                    "bm90IGEgY2VydGlmaWNhdGU=\n",
                    "-----END CERTIFICATE-----\n",
                )
                .as_bytes(),
                "not a usable CA",
            ),
        ];
        for (name, bytes, why) in cases {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            for scheme in ["rediss", "rediss+cluster"] {
                let url = format!("{scheme}://h:1/?tls_ca_file={}", path.display());
                let error = RedisConfig::from_url(&url).unwrap_err();
                assert_eq!(error.kind(), crate::ErrorKind::InvalidUrl, "{name}");
                assert!(error.to_string().contains(why), "{name}: {error}");
                assert!(!error.to_string().contains("root:x"), "{error}");
            }
            // Set in code, it is refused when the driver is made.
            let mut config = RedisConfig::from_url("rediss://h:1/").unwrap();
            config.tls_root_certificate = Some(bytes.to_vec());
            let error = super::super::RedisDriver::new(config).unwrap_err();
            assert_eq!(error.kind(), crate::ErrorKind::InvalidUrl, "{name}");
            assert!(error.to_string().contains(why), "{name}: {error}");
        }
        // A certificate for a connection without TLS would be ignored: refused.
        let mut config = RedisConfig::from_url("redis+cluster://h:1").unwrap();
        config.tls_root_certificate = Some(b"whatever".to_vec());
        let error = super::super::RedisDriver::new(config).unwrap_err();
        assert!(error.to_string().contains("without TLS"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A CA file that is a named pipe (a secrets agent's) is read from its writer, and one
    /// without a writer reads as empty: the URL's parse no longer waits for ever in `open`.
    #[cfg(unix)]
    #[test]
    fn a_ca_file_that_is_a_pipe_is_read_without_waiting_for_ever() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("namestore-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pipe = dir.join("ca.pem");
        let made = std::process::Command::new("mkfifo")
            .arg(&pipe)
            .status()
            .unwrap();
        assert!(made.success());
        let url = format!("rediss://h:1/?tls_ca_file={}", pipe.display());
        let started = std::time::Instant::now();
        let error = RedisConfig::from_url(&url).unwrap_err();
        assert!(error.to_string().contains("no PEM certificate"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // A writer waiting for a reader, which writes a while after the reader came.
        let writer = {
            let pipe = pipe.clone();
            std::thread::spawn(move || {
                let mut file = std::fs::OpenOptions::new().write(true).open(pipe).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                file.write_all(b"-----BEGIN CERTIFICATE-----\nMIIB\n")
                    .unwrap();
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        let error = RedisConfig::from_url(&url).unwrap_err();
        assert!(
            error.to_string().contains("without its END line"),
            "{error}"
        );
        writer.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
