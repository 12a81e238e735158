//! Test certificates and keys, made with the `openssl` command.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::error::{Result, io_error};
use crate::process::run;

/// Files of a test CA and a server certificate signed by it.
#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    /// PEM certificate of the CA that clients trust.
    pub(crate) ca_cert: PathBuf,
    /// Directory for `--cert-dir` of skopeo and buildah. It contains `ca.crt` and, when the
    /// registry requires a client certificate, `client.cert` and `client.key`. Both tools
    /// reject a directory with a `*.key` file that has no `*.cert` beside it.
    pub(crate) trust_dir: PathBuf,
    /// PEM server certificate for 127.0.0.1, ::1 and localhost.
    pub(crate) server_cert: PathBuf,
    /// PEM private key of the server certificate.
    pub(crate) server_key: PathBuf,
    /// The client certificate the registry requires, if it requires one.
    pub(crate) client: Option<ClientCertFiles>,
}

/// Files of a client CA and a client certificate signed by it.
#[derive(Debug, Clone)]
pub(crate) struct ClientCertFiles {
    /// PEM certificate of the CA that the registry trusts for client certificates
    /// (distribution's `http.tls.clientcas`).
    pub(crate) ca_cert: PathBuf,
    /// PEM client certificate.
    pub(crate) cert: PathBuf,
    /// PEM private key (PKCS#8) of the client certificate.
    pub(crate) key: PathBuf,
}

/// Creates a CA and a server certificate in `dir`, both with P-256 keys,
/// which are much faster to generate than RSA keys.
pub(crate) fn make_tls_files(dir: &Path) -> Result<TlsFiles> {
    let trust_dir = dir.join("trust");
    fs::create_dir_all(&trust_dir).map_err(io_error("create directory", &trust_dir))?;
    let ca = make_ca(dir, "ca", "/CN=hoist test CA")?;
    let server = CertificateRequest {
        name: "server",
        subject: "/CN=localhost",
        extensions: &[
            "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature",
            "extendedKeyUsage=serverAuth",
        ],
    };
    let (server_cert, server_key) = make_signed_certificate(dir, &ca, &server)?;

    let trusted = trust_dir.join("ca.crt");
    fs::copy(&ca.cert, &trusted).map_err(io_error("copy CA certificate to", &trusted))?;
    Ok(TlsFiles {
        ca_cert: ca.cert,
        trust_dir,
        server_cert,
        server_key,
        client: None,
    })
}

/// Creates a client CA and a client certificate signed by it in `dir`, with P-256 keys.
pub(crate) fn make_client_cert_files(dir: &Path) -> Result<ClientCertFiles> {
    fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
    let ca = make_ca(dir, "client-ca", "/CN=hoist test client CA")?;
    let client = CertificateRequest {
        name: "client",
        subject: "/CN=hoist test client",
        extensions: &[
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature",
            "extendedKeyUsage=clientAuth",
        ],
    };
    let (cert, key) = make_signed_certificate(dir, &ca, &client)?;
    Ok(ClientCertFiles {
        ca_cert: ca.cert,
        cert,
        key,
    })
}

/// Copies the client certificate and key into `trust_dir` as `client.cert` and
/// `client.key`, the names that skopeo and buildah read from `--cert-dir`.
pub(crate) fn add_client_cert_to_trust_dir(
    trust_dir: &Path,
    client: &ClientCertFiles,
) -> Result<()> {
    for (source, name) in [(&client.cert, "client.cert"), (&client.key, "client.key")] {
        let target = trust_dir.join(name);
        fs::copy(source, &target).map_err(io_error("copy client certificate file to", &target))?;
    }
    Ok(())
}

/// A self-signed CA certificate and its key.
struct CertificateAuthority {
    cert: PathBuf,
    key: PathBuf,
}

/// A certificate to sign: file stem in the directory, subject and extension lines.
struct CertificateRequest<'a> {
    name: &'a str,
    subject: &'a str,
    extensions: &'a [&'a str],
}

/// Writes a self-signed CA certificate `NAME.crt` and its key `NAME.key` to `dir`.
fn make_ca(dir: &Path, name: &str, subject: &str) -> Result<CertificateAuthority> {
    let ca = CertificateAuthority {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    run(Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-sha256", "-days", "3650"])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-subj", subject])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        .arg("-keyout")
        .arg(&ca.key)
        .arg("-out")
        .arg(&ca.cert))?;
    Ok(ca)
}

/// Writes a key `NAME.key` and a certificate `NAME.crt` signed by `ca` to `dir`, and
/// returns their paths (certificate first).
fn make_signed_certificate(
    dir: &Path,
    ca: &CertificateAuthority,
    request: &CertificateRequest<'_>,
) -> Result<(PathBuf, PathBuf)> {
    let cert = dir.join(format!("{}.crt", request.name));
    let key = dir.join(format!("{}.key", request.name));
    let csr = dir.join(format!("{}.csr", request.name));
    let extensions = dir.join(format!("{}.ext", request.name));

    run(Command::new("openssl")
        .args(["req", "-new", "-nodes", "-sha256"])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-subj", request.subject])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr))?;

    fs::write(&extensions, request.extensions.join("\n") + "\n")
        .map_err(io_error("write", &extensions))?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-sha256", "-days", "3650", "-set_serial"])
        .arg(random_serial()?)
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(&ca.cert)
        .arg("-CAkey")
        .arg(&ca.key)
        .arg("-extfile")
        .arg(&extensions)
        .arg("-out")
        .arg(&cert))?;
    Ok((cert, key))
}

/// An RSA key and a self-signed certificate for it that signs tokens.
#[derive(Debug, Clone)]
pub(crate) struct SigningFiles {
    /// PEM private key (PKCS#8).
    pub(crate) key: PathBuf,
    /// PEM certificate; the registry trusts it as `rootcertbundle`.
    pub(crate) cert: PathBuf,
}

/// Writes an RSA 2048 key and a self-signed certificate to `dir`. RS256,
/// the algorithm the registry expects, needs an RSA key.
///
/// Generating the key is the slowest step of starting a token registry, so
/// the first pair is kept in memory and written again for every later one.
pub(crate) fn make_signing_files(dir: &Path) -> Result<SigningFiles> {
    static GENERATED: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();

    fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
    let files = SigningFiles {
        key: dir.join("signing.key"),
        cert: dir.join("signing.crt"),
    };
    if let Some((key, cert)) = GENERATED.get() {
        fs::write(&files.key, key).map_err(io_error("write", &files.key))?;
        fs::write(&files.cert, cert).map_err(io_error("write", &files.cert))?;
        return Ok(files);
    }

    generate_signing_pair(&files)?;
    let key = fs::read(&files.key).map_err(io_error("read", &files.key))?;
    let cert = fs::read(&files.cert).map_err(io_error("read", &files.cert))?;
    // Another thread may have stored its pair first; both pairs are valid.
    let _ = GENERATED.set((key, cert));
    Ok(files)
}

fn generate_signing_pair(files: &SigningFiles) -> Result<()> {
    run(Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-sha256", "-days", "3650"])
        .args([
            "-newkey",
            "rsa:2048",
            "-subj",
            "/CN=hoist test token signer",
        ])
        .arg("-keyout")
        .arg(&files.key)
        .arg("-out")
        .arg(&files.cert))?;
    Ok(())
}

/// Returns the base64 DER of the first certificate in a PEM text, which is
/// the body between the BEGIN and END lines with the line breaks removed.
pub(crate) fn pem_certificate_base64(pem: &str) -> Option<String> {
    let body = pem.split("-----BEGIN CERTIFICATE-----").nth(1)?;
    let body = body.split("-----END CERTIFICATE-----").next()?;
    let joined: String = body.split_whitespace().collect();
    (!joined.is_empty()).then_some(joined)
}

/// Returns 16 random bytes as hex, read from the kernel's random source.
pub(crate) fn random_hex() -> Result<String> {
    use std::io::Read;

    let path = Path::new("/dev/urandom");
    let mut bytes = [0u8; 16];
    fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut bytes))
        .map_err(io_error("read", path))?;
    Ok(hex::encode(bytes))
}

fn random_serial() -> Result<String> {
    // A leading 1 keeps the serial positive and of full length.
    Ok(format!("0x1{}", random_hex()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_body_becomes_base64_der() {
        let pem = "-----BEGIN CERTIFICATE-----\nQUJD\nREVG\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_certificate_base64(pem).as_deref(), Some("QUJDREVG"));
    }

    #[test]
    fn pem_without_certificate_gives_none() {
        assert_eq!(
            pem_certificate_base64("-----BEGIN PRIVATE KEY-----\n"),
            None
        );
    }

    #[test]
    fn tls_files_have_all_parts() {
        let dir = tempfile::tempdir().unwrap();
        let files = make_tls_files(dir.path()).unwrap();
        for path in [&files.ca_cert, &files.server_cert, &files.server_key] {
            assert!(fs::metadata(path).unwrap().len() > 0, "{}", path.display());
        }
        let trusted: Vec<_> = fs::read_dir(&files.trust_dir).unwrap().collect();
        assert_eq!(trusted.len(), 1);
    }

    #[test]
    fn client_cert_verifies_against_client_ca() {
        let dir = tempfile::tempdir().unwrap();
        let files = make_client_cert_files(dir.path()).unwrap();
        let output = Command::new("openssl")
            .args(["verify", "-purpose", "sslclient", "-CAfile"])
            .arg(&files.ca_cert)
            .arg(&files.cert)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}");
        assert!(fs::metadata(&files.key).unwrap().len() > 0);
    }

    #[test]
    fn client_cert_is_no_server_cert() {
        let dir = tempfile::tempdir().unwrap();
        let files = make_client_cert_files(dir.path()).unwrap();
        let status = Command::new("openssl")
            .args(["verify", "-purpose", "sslserver", "-CAfile"])
            .arg(&files.ca_cert)
            .arg(&files.cert)
            .output()
            .unwrap()
            .status;
        assert!(!status.success());
    }

    #[test]
    fn trust_dir_gets_client_pair() {
        let dir = tempfile::tempdir().unwrap();
        let tls = make_tls_files(&dir.path().join("server")).unwrap();
        let client = make_client_cert_files(&dir.path().join("client")).unwrap();
        add_client_cert_to_trust_dir(&tls.trust_dir, &client).unwrap();
        let mut names: Vec<_> = fs::read_dir(&tls.trust_dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["ca.crt", "client.cert", "client.key"]);
    }
}
