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
    /// Directory holding only `ca.crt`, for `--cert-dir` of skopeo and buildah,
    /// which reject a directory with a `*.key` file that has no certificate.
    pub(crate) trust_dir: PathBuf,
    /// PEM server certificate for 127.0.0.1, ::1 and localhost.
    pub(crate) server_cert: PathBuf,
    /// PEM private key of the server certificate.
    pub(crate) server_key: PathBuf,
}

/// Creates a CA and a server certificate in `dir`, both with P-256 keys,
/// which are much faster to generate than RSA keys.
pub(crate) fn make_tls_files(dir: &Path) -> Result<TlsFiles> {
    fs::create_dir_all(dir.join("trust")).map_err(io_error("create directory", dir))?;
    let files = TlsFiles {
        ca_cert: dir.join("ca.crt"),
        trust_dir: dir.join("trust"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
    };
    let ca_key = dir.join("ca.key");
    let csr = dir.join("server.csr");
    let extensions = dir.join("server.ext");

    run(Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-sha256", "-days", "3650"])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-subj", "/CN=hoist test CA"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&files.ca_cert))?;

    run(Command::new("openssl")
        .args(["req", "-new", "-nodes", "-sha256"])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(&files.server_key)
        .arg("-out")
        .arg(&csr))?;

    let extension_lines = [
        "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "extendedKeyUsage=serverAuth",
    ];
    fs::write(&extensions, extension_lines.join("\n") + "\n")
        .map_err(io_error("write", &extensions))?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-sha256", "-days", "3650", "-set_serial"])
        .arg(random_serial()?)
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(&files.ca_cert)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-extfile")
        .arg(&extensions)
        .arg("-out")
        .arg(&files.server_cert))?;

    let trusted = files.trust_dir.join("ca.crt");
    fs::copy(&files.ca_cert, &trusted).map_err(io_error("copy CA certificate to", &trusted))?;
    Ok(files)
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
}
