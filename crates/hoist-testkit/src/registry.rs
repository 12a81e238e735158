//! A CNCF distribution 2.8 registry (`docker-registry serve`) on a free
//! loopback port (127.0.0.1, or ::1 with [`RegistryBuilder::ipv6`]), with its
//! config, storage, certificates and log in a temporary directory that is
//! removed when the [`Registry`] is dropped. Over TLS it can also require a
//! client certificate.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tempfile::TempDir;

use crate::certs::{
    ClientCertFiles, TlsFiles, add_client_cert_to_trust_dir, make_client_cert_files,
    make_signing_files, make_tls_files, random_hex,
};
use crate::client::{AgentTls, RegistryClient};
use crate::error::{Error, Result, io_error};
use crate::process::{file_tail, run_with_input, spawn_tied_to_process, stop};
use crate::token_server::{ISSUER, SERVICE, TokenServer};

/// The maximum time a start waits for a response to `GET /v2/`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// The maximum time of one `GET /v2/` probe during a start.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The maximum number of ports a start tries when another process takes the
/// chosen port before the registry binds it.
const START_ATTEMPTS: usize = 5;
/// How long a stop waits after SIGTERM before it sends SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// The address a registry listens on by default.
const IPV4_LOOPBACK: &str = "127.0.0.1";
/// The address a registry listens on after [`RegistryBuilder::ipv6`], in the
/// brackets that URLs and image references need.
const IPV6_LOOPBACK: &str = "[::1]";
/// Token lifetime unless [`RegistryBuilder::token_lifetime`] sets another.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// The authentication method of a [`Registry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// No authentication.
    Anonymous,
    /// HTTP Basic against a bcrypt htpasswd file.
    Htpasswd,
    /// Bearer tokens from the test kit's token server.
    Token,
}

#[derive(Clone)]
enum AuthSetup {
    Anonymous,
    Htpasswd {
        user: String,
        pass: String,
    },
    Token {
        credentials: Option<(String, String)>,
    },
}

/// Prints user names but never passwords.
impl std::fmt::Debug for AuthSetup {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Anonymous => formatter.write_str("Anonymous"),
            Self::Htpasswd { user, .. } => write!(formatter, "Htpasswd({user})"),
            Self::Token { credentials } => match credentials {
                Some((user, _)) => write!(formatter, "Token({user})"),
                None => formatter.write_str("Token(anonymous)"),
            },
        }
    }
}

/// Options of a [`Registry`]; start one with [`RegistryBuilder::start`].
#[derive(Debug, Clone)]
pub struct RegistryBuilder {
    ipv6: bool,
    tls: bool,
    client_cert: bool,
    auth: AuthSetup,
    token_lifetime: Duration,
    exact_token_expiry: bool,
    conflict: Option<&'static str>,
}

impl RegistryBuilder {
    /// Listens on the IPv6 loopback address instead of 127.0.0.1, so that
    /// [`Registry::host`] is `[::1]:PORT`. The token server, when there is
    /// one, still listens on 127.0.0.1.
    pub fn ipv6(mut self) -> Self {
        self.ipv6 = true;
        self
    }

    /// Serves HTTPS with a certificate from a CA made for this registry.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Serves HTTPS (as [`tls`](Self::tls) does) and requires a client certificate
    /// signed by a client CA made for this registry: distribution's `http.tls.clientcas`,
    /// which rejects a TLS handshake without such a certificate.
    ///
    /// [`Registry::client_cert`] and [`Registry::client_key`] return the certificate and
    /// its key, and [`Registry::cert_dir`] contains them for skopeo and buildah.
    pub fn require_client_cert(mut self) -> Self {
        self.tls = true;
        self.client_cert = true;
        self
    }

    /// Demands HTTP Basic credentials, checked against a bcrypt htpasswd
    /// file (the only hash distribution accepts). Works over plain HTTP too.
    pub fn htpasswd(self, user: &str, pass: &str) -> Self {
        self.with_auth(AuthSetup::Htpasswd {
            user: user.to_owned(),
            pass: pass.to_owned(),
        })
    }

    /// Demands Bearer tokens, which the token server issues to `user`/`pass`.
    ///
    /// The token server listens on plain HTTP on 127.0.0.1 even when the
    /// registry uses TLS, and the registry's challenge names it as realm.
    pub fn token(self, user: &str, pass: &str) -> Self {
        self.with_auth(AuthSetup::Token {
            credentials: Some((user.to_owned(), pass.to_owned())),
        })
    }

    /// Demands Bearer tokens, which the token server issues to anyone.
    pub fn anonymous_token(self) -> Self {
        self.with_auth(AuthSetup::Token { credentials: None })
    }

    /// Sets the lifetime of issued tokens (whole seconds, at least one).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Makes the registry reject a token as soon as its lifetime has passed.
    ///
    /// Distribution 2.8 accepts a token for 60 s past its `exp` claim (the
    /// leeway for clock skew), so this backdates `exp` by those 60 s while
    /// `expires_in` still states the lifetime. Useful for tests of a token
    /// that expires during a push.
    pub fn exact_token_expiry(mut self) -> Self {
        self.exact_token_expiry = true;
        self
    }

    fn with_auth(mut self, auth: AuthSetup) -> Self {
        if !matches!(self.auth, AuthSetup::Anonymous) {
            self.conflict = Some("distribution allows only one auth provider");
        }
        self.auth = auth;
        self
    }

    /// Creates the directory, certificates and auth files, starts the
    /// registry (and token server) and waits until `GET /v2/` responds.
    pub fn start(self) -> Result<Registry> {
        if let Some(reason) = self.conflict {
            return Err(Error::InvalidSetup(format!(
                "htpasswd and token auth cannot be combined: {reason}"
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("hoist-registry-")
            .tempdir()
            .map_err(io_error(
                "create temporary directory in",
                std::env::temp_dir(),
            ))?;
        let tls = self.make_tls(dir.path())?;
        let (auth_yaml, token_server) = self.make_auth(dir.path())?;
        let address = if self.ipv6 {
            IPV6_LOOPBACK
        } else {
            IPV4_LOOPBACK
        };
        let (child, port) = start_with_free_port(dir.path(), address, tls.as_ref(), &auth_yaml)?;
        let host = format!("{address}:{port}");
        Registry::assemble(self, dir, tls, token_server, child, host)
    }

    fn make_tls(&self, dir: &Path) -> Result<Option<TlsFiles>> {
        if !self.tls {
            return Ok(None);
        }
        let mut tls = make_tls_files(&dir.join("certs"))?;
        if self.client_cert {
            let client = make_client_cert_files(&dir.join("client-certs"))?;
            add_client_cert_to_trust_dir(&tls.trust_dir, &client)?;
            tls.client = Some(client);
        }
        Ok(Some(tls))
    }

    /// Writes the auth files, starts the token server when needed, and
    /// returns the `auth:` section of the config.
    fn make_auth(&self, dir: &Path) -> Result<(String, Option<TokenServer>)> {
        match &self.auth {
            AuthSetup::Anonymous => Ok((String::new(), None)),
            AuthSetup::Htpasswd { user, pass } => {
                let path = write_htpasswd(&dir.join("auth"), user, pass)?;
                let yaml = format!(
                    "auth:\n  htpasswd:\n    realm: hoist-testkit\n    path: {}\n",
                    yaml_path(&path)
                );
                Ok((yaml, None))
            }
            AuthSetup::Token { credentials } => {
                let signing = make_signing_files(&dir.join("token"))?;
                let server = TokenServer::start(
                    &signing,
                    credentials.clone(),
                    self.token_lifetime,
                    self.exact_token_expiry,
                )?;
                let yaml = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                    yaml_string(server.realm()),
                    yaml_path(&signing.cert)
                );
                Ok((yaml, Some(server)))
            }
        }
    }
}

/// A running registry. Dropping it stops the process (SIGTERM, then
/// SIGKILL), stops the token server and removes its directory. That also
/// happens when a test panics, because `Drop` runs during unwinding.
///
/// The process is also killed when the test process dies without unwinding
/// (SIGKILL, abort), but its directory then stays in the temporary directory.
pub struct Registry {
    child: Child,
    token_server: Option<TokenServer>,
    auth: AuthKind,
    host: String,
    url: String,
    tls: Option<TlsFiles>,
    credentials: Option<(String, String)>,
    auth_file: Option<PathBuf>,
    storage: PathBuf,
    log: PathBuf,
    dir: TempDir,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Registry")
            .field("url", &self.url)
            .field("auth", &self.auth)
            .field("pid", &self.child.id())
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Returns a builder; `Registry::builder().start()` gives a plain
    /// anonymous HTTP registry.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder {
            ipv6: false,
            tls: false,
            client_cert: false,
            auth: AuthSetup::Anonymous,
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            exact_token_expiry: false,
            conflict: None,
        }
    }

    fn assemble(
        builder: RegistryBuilder,
        dir: TempDir,
        tls: Option<TlsFiles>,
        token_server: Option<TokenServer>,
        child: Child,
        host: String,
    ) -> Result<Self> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (auth, credentials) = match builder.auth {
            AuthSetup::Anonymous => (AuthKind::Anonymous, None),
            AuthSetup::Htpasswd { user, pass } => (AuthKind::Htpasswd, Some((user, pass))),
            AuthSetup::Token { credentials } => (AuthKind::Token, credentials),
        };
        let mut registry = Self {
            child,
            token_server,
            auth,
            url: format!("{scheme}://{host}"),
            host,
            tls,
            credentials,
            auth_file: None,
            storage: dir.path().join("storage"),
            log: dir.path().join("registry.log"),
            dir,
        };
        registry.auth_file = registry.write_auth_file()?;
        tracing::info!(url = %registry.url, auth = ?registry.auth, pid = registry.pid(), "registry started");
        Ok(registry)
    }

    /// Writes a containers-auth.json with the credentials, for the
    /// `--authfile` options of skopeo and buildah, so that no password
    /// appears on a command line.
    fn write_auth_file(&self) -> Result<Option<PathBuf>> {
        let Some((user, pass)) = &self.credentials else {
            return Ok(None);
        };
        let path = self.dir.path().join("auth.json");
        let auth = STANDARD.encode(format!("{user}:{pass}"));
        let json = serde_json::json!({ "auths": { self.host.clone(): { "auth": auth } } });
        fs::write(&path, json.to_string()).map_err(io_error("write", &path))?;
        Ok(Some(path))
    }

    /// `127.0.0.1:PORT` (or `[::1]:PORT`), the registry part of image references.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`, with `[::1]` for an IPv6
    /// registry.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Returns `host/name`, an image reference in this registry.
    pub fn reference(&self, name: &str) -> String {
        format!("{}/{name}", self.host)
    }

    /// PEM certificate of the test CA, for TLS registries.
    pub fn ca_cert(&self) -> Option<&Path> {
        self.tls.as_ref().map(|tls| tls.ca_cert.as_path())
    }

    /// Returns a directory for `--cert-dir` of skopeo and buildah, for TLS registries. It
    /// contains `ca.crt` and, when the registry requires a client certificate,
    /// `client.cert` and `client.key`.
    pub fn cert_dir(&self) -> Option<&Path> {
        self.tls.as_ref().map(|tls| tls.trust_dir.as_path())
    }

    /// Returns the PEM client certificate, for registries that require one.
    pub fn client_cert(&self) -> Option<&Path> {
        self.client_files().map(|client| client.cert.as_path())
    }

    /// Returns the PEM private key (PKCS#8) of [`client_cert`](Self::client_cert).
    pub fn client_key(&self) -> Option<&Path> {
        self.client_files().map(|client| client.key.as_path())
    }

    /// Returns the PEM certificate of the CA that signs accepted client certificates.
    pub fn client_ca_cert(&self) -> Option<&Path> {
        self.client_files().map(|client| client.ca_cert.as_path())
    }

    fn client_files(&self) -> Option<&ClientCertFiles> {
        self.tls.as_ref().and_then(|tls| tls.client.as_ref())
    }

    /// User name and password, for registries with htpasswd or token auth.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(user, pass)| (user.as_str(), pass.as_str()))
    }

    /// Returns a containers-auth.json (the format of `--authfile`) with the
    /// credentials, when the registry has any.
    pub fn auth_file(&self) -> Option<&Path> {
        self.auth_file.as_deref()
    }

    /// Returns the authentication method.
    pub fn auth_kind(&self) -> AuthKind {
        self.auth
    }

    /// Returns the root of the filesystem storage driver. Blobs are at
    /// `docker/registry/v2/blobs/sha256/<first two hex digits>/<hex>/data`.
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// Returns where the storage keeps the blob `digest` (`sha256:<hex>`),
    /// for tests that corrupt or delete a blob. The path need not exist.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
        let prefix = hex.get(..2).unwrap_or(hex);
        self.storage
            .join("docker/registry/v2/blobs")
            .join(algorithm)
            .join(prefix)
            .join(hex)
            .join("data")
    }

    /// Returns the directory of config, storage, certificates and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Returns the path of the registry's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Returns the process id of `docker-registry`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns the token server's URL, for registries with token auth.
    pub fn token_realm(&self) -> Option<&str> {
        self.token_server.as_ref().map(TokenServer::realm)
    }

    /// Returns the number of tokens the token server has issued (0 without one).
    pub fn tokens_issued(&self) -> u64 {
        self.token_server
            .as_ref()
            .map_or(0, TokenServer::tokens_issued)
    }

    /// Sets the lifetime of the tokens issued from now on (whole seconds).
    /// Does nothing for registries without token auth.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        if let Some(server) = &self.token_server {
            server.set_lifetime(lifetime);
        }
    }

    /// Returns an HTTP client that trusts this registry's CA, presents its
    /// client certificate (if it requires one) and follows its auth challenges
    /// with its credentials.
    pub fn client(&self) -> Result<RegistryClient> {
        RegistryClient::with_tls(&self.url, agent_tls(self.tls.as_ref()), self.credentials())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        stop(&mut self.child, STOP_GRACE);
        self.token_server = None;
        tracing::debug!(url = %self.url, "registry stopped");
    }
}

/// Writes a bcrypt htpasswd file with one user. The password goes to
/// `htpasswd -i` on standard input, never onto a command line. Cost 5 keeps
/// each login check fast.
fn write_htpasswd(dir: &Path, user: &str, pass: &str) -> Result<PathBuf> {
    if user.contains(':') || user.is_empty() {
        return Err(Error::InvalidSetup(format!(
            "invalid htpasswd user name {user:?}: it must be non-empty and contain no ':'"
        )));
    }
    fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
    let path = dir.join("htpasswd");
    let mut command = std::process::Command::new("htpasswd");
    command
        .args(["-B", "-C", "5", "-i", "-c"])
        .arg(&path)
        .arg(user);
    run_with_input(&mut command, pass.as_bytes())?;
    Ok(path)
}

/// Starts the registry on a free port of `address` (an IPv4 address, or an
/// IPv6 one in brackets), trying another port when the chosen one was taken
/// between finding it and the registry binding it.
fn start_with_free_port(
    dir: &Path,
    address: &str,
    tls: Option<&TlsFiles>,
    auth_yaml: &str,
) -> Result<(Child, u16)> {
    let mut attempt = 1;
    loop {
        let port = free_port(address)?;
        let host = format!("{address}:{port}");
        let config = dir.join("config.yml");
        let yaml = config_yaml(dir, &host, tls, auth_yaml)?;
        fs::write(&config, yaml).map_err(io_error("write", &config))?;
        let result = spawn_and_wait(dir, &config, &host, tls);
        match result {
            Err(Error::RegistryExited { log_tail, .. })
                if log_tail.contains("address already in use") && attempt < START_ATTEMPTS =>
            {
                tracing::warn!(port, attempt, "port was taken during start-up; retrying");
                attempt += 1;
            }
            other => return other.map(|child| (child, port)),
        }
    }
}

fn free_port(address: &str) -> Result<u16> {
    let any_port = format!("{address}:0");
    let listener = TcpListener::bind(&any_port).map_err(io_error("bind", &any_port))?;
    let bound = listener
        .local_addr()
        .map_err(io_error("get address of", &any_port))?;
    Ok(bound.port())
}

fn config_yaml(dir: &Path, host: &str, tls: Option<&TlsFiles>, auth_yaml: &str) -> Result<String> {
    let mut yaml = String::new();
    let storage = dir.join("storage");
    // `fmt::Write` for `String` never returns an error.
    let _ = write!(
        yaml,
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
         \x20 cache:\n    blobdescriptor: inmemory\n\
         \x20 maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: {addr}\n  secret: {secret}\n",
        storage = yaml_path(&storage),
        addr = yaml_string(host),
        secret = random_hex()?,
    );
    if let Some(tls) = tls {
        let _ = write!(
            yaml,
            "  tls:\n    certificate: {}\n    key: {}\n",
            yaml_path(&tls.server_cert),
            yaml_path(&tls.server_key)
        );
        if let Some(client) = &tls.client {
            let _ = write!(
                yaml,
                "    clientcas:\n      - {}\n",
                yaml_path(&client.ca_cert)
            );
        }
    }
    yaml.push_str(auth_yaml);
    Ok(yaml)
}

/// Quotes a path for YAML; a JSON string is a valid YAML scalar.
fn yaml_path(path: &Path) -> String {
    yaml_string(&path.to_string_lossy())
}

fn yaml_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

fn spawn_and_wait(dir: &Path, config: &Path, host: &str, tls: Option<&TlsFiles>) -> Result<Child> {
    let log_path = dir.join("registry.log");
    let log = fs::File::create(&log_path).map_err(io_error("create", &log_path))?;
    let log_for_stderr = log.try_clone().map_err(io_error("duplicate", &log_path))?;
    let args = [OsStr::new("serve"), config.as_os_str()];
    let mut child = spawn_tied_to_process("docker-registry", &args, |command| {
        // REGISTRY_* variables override the config file; a caller's
        // environment must not change the test registry.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("REGISTRY_") {
                command.env_remove(name);
            }
        }
        command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr);
    })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{host}");
    match wait_until_ready(&mut child, &url, tls, &log_path) {
        Ok(()) => Ok(child),
        Err(error) => {
            stop(&mut child, STOP_GRACE);
            Err(error)
        }
    }
}

/// Polls `GET /v2/` until it returns 200 (anonymous) or 401 (auth enabled).
fn wait_until_ready(
    child: &mut Child,
    url: &str,
    tls: Option<&TlsFiles>,
    log: &Path,
) -> Result<()> {
    let agent = crate::client::agent(agent_tls(tls), PROBE_TIMEOUT)?;
    let probe = format!("{url}/v2/");
    let started = Instant::now();
    while started.elapsed() < READY_TIMEOUT {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::RegistryExited {
                url: url.to_owned(),
                status,
                log_tail: file_tail(log),
            });
        }
        if let Ok(response) = agent.get(&probe).call()
            && matches!(response.status().as_u16(), 200 | 401)
        {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(25));
    }
    Err(Error::RegistryNotReady {
        url: url.to_owned(),
        seconds: READY_TIMEOUT.as_secs(),
        log_tail: file_tail(log),
    })
}

/// Returns the CA and client certificate that a client of a registry with `tls` needs.
fn agent_tls(tls: Option<&TlsFiles>) -> AgentTls<'_> {
    let Some(tls) = tls else {
        return AgentTls::default();
    };
    AgentTls {
        ca_cert: Some(&tls.ca_cert),
        client_cert: tls
            .client
            .as_ref()
            .map(|client| (client.cert.as_path(), client.key.as_path())),
    }
}
