//! A loopback HTTP server that replaces the download sites of Terraform and
//! TFLint, so that the builder-image example builds without the internet.
//!
//! The zips are made when the server starts, and it serves them at:
//!
//! | tool | path |
//! | --- | --- |
//! | Terraform | `/terraform/1.12.2/terraform_1.12.2_linux_amd64.zip` |
//! | TFLint | `/tflint/v0.58.0/tflint_linux_amd64.zip` |
//!
//! The Terraform path takes the version without its leading `v`, as
//! HashiCorp's release site does. The TFLint path takes the release tag with
//! the `v`, as TFLint's GitHub release downloads do. Each zip holds one executable
//! named after the tool: the machine's own binary when one is on `PATH`
//! (unless [`ReleaseServerBuilder::stand_ins`] is set), otherwise a
//! `#!/bin/sh` script that prints the version line of the real tool
//! (`Terraform v1.12.2`, `TFLint version 0.58.0`).

use std::ffi::OsStr;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::thread::JoinHandle;

use tempfile::TempDir;
use tiny_http::{Header, Method, Request, Response, Server};

use crate::error::{Error, Result, io_error};
use crate::process::run;

/// The Terraform version served unless [`ReleaseServerBuilder::terraform_version`] sets another.
pub const DEFAULT_TERRAFORM_VERSION: &str = "v1.12.2";

/// The TFLint version served unless [`ReleaseServerBuilder::tflint_version`] sets another.
pub const DEFAULT_TFLINT_VERSION: &str = "v0.58.0";

/// A tool whose release zip the server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// HashiCorp Terraform.
    Terraform,
    /// TFLint, the Terraform linter.
    Tflint,
}

impl Tool {
    /// Both tools.
    pub const ALL: [Self; 2] = [Self::Terraform, Self::Tflint];

    /// Returns the executable's file name, which is also its name in the zip.
    pub fn executable_name(self) -> &'static str {
        match self {
            Self::Terraform => "terraform",
            Self::Tflint => "tflint",
        }
    }

    /// Returns the URL path of the zip of `version` (such as `v1.12.2`).
    pub fn zip_path(self, version: &str) -> String {
        match self {
            Self::Terraform => {
                let bare = version.strip_prefix('v').unwrap_or(version);
                format!("/terraform/{bare}/terraform_{bare}_linux_amd64.zip")
            }
            Self::Tflint => format!("/tflint/{version}/tflint_linux_amd64.zip"),
        }
    }

    /// Returns the line that the stand-in executable of `version` prints,
    /// which is the first line the real tool prints for `version`.
    pub fn version_line(self, version: &str) -> String {
        let bare = version.strip_prefix('v').unwrap_or(version);
        match self {
            Self::Terraform => format!("Terraform v{bare}"),
            Self::Tflint => format!("TFLint version {bare}"),
        }
    }
}

/// The source of the executable in a served zip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Executable {
    /// The machine's own binary, found on `PATH`.
    FromPath(PathBuf),
    /// A `#!/bin/sh` script that prints [`Tool::version_line`].
    StandIn,
}

/// Options of a [`ReleaseServer`]; start one with [`ReleaseServerBuilder::start`].
#[derive(Debug, Clone)]
pub struct ReleaseServerBuilder {
    terraform_version: String,
    tflint_version: String,
    stand_ins: bool,
}

impl ReleaseServerBuilder {
    /// Sets the Terraform version, with or without its leading `v`.
    pub fn terraform_version(mut self, version: &str) -> Self {
        self.terraform_version = version.to_owned();
        self
    }

    /// Sets the TFLint version (a release tag such as `v0.58.0`).
    pub fn tflint_version(mut self, version: &str) -> Self {
        self.tflint_version = version.to_owned();
        self
    }

    /// Serves the stand-in scripts even when the tools are on `PATH`, which
    /// makes small zips and reproducible images.
    pub fn stand_ins(mut self) -> Self {
        self.stand_ins = true;
        self
    }

    /// Makes the zips in a temporary directory and starts serving them on a
    /// free port of 127.0.0.1.
    pub fn start(self) -> Result<ReleaseServer> {
        for version in [&self.terraform_version, &self.tflint_version] {
            check_version(version)?;
        }
        let dir = tempfile::Builder::new()
            .prefix("hoist-releases-")
            .tempdir()
            .map_err(io_error(
                "create temporary directory in",
                std::env::temp_dir(),
            ))?;
        let terraform = self.make_release(dir.path(), Tool::Terraform, &self.terraform_version)?;
        let tflint = self.make_release(dir.path(), Tool::Tflint, &self.tflint_version)?;
        ReleaseServer::serve(dir, terraform, tflint)
    }

    fn make_release(&self, dir: &Path, tool: Tool, version: &str) -> Result<Release> {
        let search_path = std::env::var_os("PATH").unwrap_or_default();
        let found = find_executable(tool.executable_name(), &search_path);
        let executable = match found {
            Some(path) if !self.stand_ins => Executable::FromPath(path),
            _ => Executable::StandIn,
        };
        make_release(dir, tool, version, executable)
    }
}

/// One served zip.
#[derive(Debug, Clone)]
struct Release {
    version: String,
    url_path: String,
    zip: PathBuf,
    executable: Executable,
}

/// A running release server. Dropping it stops the server and removes the
/// zips.
pub struct ReleaseServer {
    server: Arc<Server>,
    thread: Option<JoinHandle<()>>,
    url: String,
    terraform: Release,
    tflint: Release,
    _dir: TempDir,
}

impl std::fmt::Debug for ReleaseServer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ReleaseServer")
            .field("url", &self.url)
            .field("terraform", &self.terraform)
            .field("tflint", &self.tflint)
            .finish_non_exhaustive()
    }
}

impl ReleaseServer {
    /// Returns a builder with the default versions, which serves the tools
    /// on `PATH` where there are any.
    pub fn builder() -> ReleaseServerBuilder {
        ReleaseServerBuilder {
            terraform_version: DEFAULT_TERRAFORM_VERSION.to_owned(),
            tflint_version: DEFAULT_TFLINT_VERSION.to_owned(),
            stand_ins: false,
        }
    }

    fn serve(dir: TempDir, terraform: Release, tflint: Release) -> Result<Self> {
        let start_error = |reason: String| Error::ServerStart {
            server: "release server",
            reason,
        };
        let server = Server::http("127.0.0.1:0").map_err(|error| start_error(error.to_string()))?;
        let port = server
            .server_addr()
            .to_ip()
            .map(|address| address.port())
            .ok_or_else(|| start_error("the listening address is not an IP address".to_owned()))?;
        let url = format!("http://127.0.0.1:{port}");
        let server = Arc::new(server);
        let thread = std::thread::Builder::new()
            .name(format!("release-server-{port}"))
            .spawn({
                let server = Arc::clone(&server);
                let routes: Vec<(String, PathBuf)> = [&terraform, &tflint]
                    .iter()
                    .map(|release| (release.url_path.clone(), release.zip.clone()))
                    .collect();
                move || serve_requests(&server, &routes)
            })
            .map_err(|error| start_error(format!("cannot start its thread: {error}")))?;
        for release in [&terraform, &tflint] {
            tracing::info!(
                url = %format!("{url}{}", release.url_path),
                executable = ?release.executable,
                "serving release zip"
            );
        }
        Ok(Self {
            server,
            thread: Some(thread),
            url,
            terraform,
            tflint,
            _dir: dir,
        })
    }

    /// Returns `http://127.0.0.1:PORT`, the base URL without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Returns the full URL of `tool`'s zip.
    pub fn zip_url(&self, tool: Tool) -> String {
        format!("{}{}", self.url, self.release(tool).url_path)
    }

    /// Returns the served version of `tool`, as it was given.
    pub fn version(&self, tool: Tool) -> &str {
        &self.release(tool).version
    }

    /// Returns where the executable in `tool`'s zip comes from.
    pub fn executable(&self, tool: Tool) -> &Executable {
        &self.release(tool).executable
    }

    /// Returns the local path of `tool`'s zip.
    pub fn zip_file(&self, tool: Tool) -> &Path {
        &self.release(tool).zip
    }

    fn release(&self, tool: Tool) -> &Release {
        match tool {
            Tool::Terraform => &self.terraform,
            Tool::Tflint => &self.tflint,
        }
    }
}

impl Drop for ReleaseServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!(url = %self.url, "release server thread panicked");
        }
        tracing::debug!(url = %self.url, "release server stopped");
    }
}

/// Rejects a version that would not make a plain URL path segment and file
/// name.
fn check_version(version: &str) -> Result<()> {
    let valid = !version.is_empty()
        && version
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || "._+-".contains(character));
    if valid {
        return Ok(());
    }
    Err(Error::InvalidSetup(format!(
        "invalid release version {version:?}: use letters, digits, '.', '_', '+' and '-' only, \
         such as v1.12.2"
    )))
}

/// Returns the first executable regular file called `name` in the
/// directories of `search_path` (the syntax of `PATH`).
pub fn find_executable(name: &str, search_path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(search_path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate).is_ok_and(|metadata| {
                metadata.is_file() && metadata.permissions().mode() & 0o111 != 0
            })
        })
}

/// Writes the zip of `tool` into `dir` and returns its route.
fn make_release(dir: &Path, tool: Tool, version: &str, executable: Executable) -> Result<Release> {
    let name = tool.executable_name();
    let source = match &executable {
        Executable::FromPath(path) => path.clone(),
        Executable::StandIn => write_stand_in(&dir.join("stand-ins"), tool, version)?,
    };
    let zip = dir.join(format!("{name}.zip"));
    // `-j` stores the file under its base name, which is `name` in both
    // cases. `-X` leaves out owner ids and extra times, so the zip depends on
    // the content and mode only.
    let mut command = Command::new("zip");
    command.args(["-q", "-X", "-j"]).arg(&zip).arg(&source);
    run(&mut command)?;
    Ok(Release {
        version: version.to_owned(),
        url_path: tool.zip_path(version),
        zip,
        executable,
    })
}

/// Writes the stand-in script of `tool` into `dir` with mode 0755.
fn write_stand_in(dir: &Path, tool: Tool, version: &str) -> Result<PathBuf> {
    fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
    let path = dir.join(tool.executable_name());
    let script = format!(
        "#!/bin/sh\n# Stand-in for {name}, made by hoist-testkit's release server.\necho '{line}'\n",
        name = tool.executable_name(),
        line = tool.version_line(version),
    );
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(&path)
        .map_err(io_error("create", &path))?;
    file.write_all(script.as_bytes())
        .map_err(io_error("write", &path))?;
    Ok(path)
}

fn serve_requests(server: &Server, routes: &[(String, PathBuf)]) {
    for request in server.incoming_requests() {
        let method = request.method().clone();
        let url = request.url().to_owned();
        match respond(request, routes) {
            Ok(status) => tracing::info!(%method, %url, status, "release server request"),
            Err(error) => tracing::warn!(%method, %url, %error, "release server failed to reply"),
        }
    }
}

/// Responds to one request and returns the status code it sent.
fn respond(request: Request, routes: &[(String, PathBuf)]) -> std::io::Result<u16> {
    if !matches!(request.method(), Method::Get | Method::Head) {
        request.respond(Response::from_string("method not allowed\n").with_status_code(405))?;
        return Ok(405);
    }
    let path = request.url().split('?').next().unwrap_or_default();
    let Some((_, zip)) = routes.iter().find(|(route, _)| route == path) else {
        request.respond(Response::from_string("not found\n").with_status_code(404))?;
        return Ok(404);
    };
    let file = fs::File::open(zip)?;
    let mut response = Response::from_file(file);
    if let Ok(header) = Header::from_bytes("Content-Type", "application/zip") {
        response = response.with_header(header);
    }
    request.respond(response)?;
    Ok(200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_paths_follow_release_sites() {
        assert_eq!(
            Tool::Terraform.zip_path("v1.12.2"),
            "/terraform/1.12.2/terraform_1.12.2_linux_amd64.zip"
        );
        assert_eq!(
            Tool::Terraform.zip_path("1.12.2"),
            "/terraform/1.12.2/terraform_1.12.2_linux_amd64.zip"
        );
        assert_eq!(
            Tool::Tflint.zip_path("v0.58.0"),
            "/tflint/v0.58.0/tflint_linux_amd64.zip"
        );
    }

    #[test]
    fn version_lines_match_real_tools() {
        assert_eq!(Tool::Terraform.version_line("v1.12.2"), "Terraform v1.12.2");
        assert_eq!(
            Tool::Tflint.version_line("v0.58.0"),
            "TFLint version 0.58.0"
        );
    }

    #[test]
    fn version_with_slash_is_rejected() {
        let error = check_version("1.0/../x").unwrap_err();
        assert!(error.to_string().contains("1.0/../x"), "{error}");
        assert!(check_version("").is_err());
        assert!(check_version("v1.12.2-rc1+build").is_ok());
    }

    #[test]
    fn executable_found_on_search_path() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let not_executable = first.path().join("tflint");
        fs::write(&not_executable, "data").unwrap();
        fs::set_permissions(&not_executable, fs::Permissions::from_mode(0o644)).unwrap();
        let executable = second.path().join("tflint");
        fs::write(&executable, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&executable, fs::Permissions::from_mode(0o755)).unwrap();
        let search_path = std::env::join_paths([first.path(), second.path()]).unwrap();

        assert_eq!(find_executable("tflint", &search_path), Some(executable));
        assert_eq!(find_executable("terraform", &search_path), None);
    }

    #[test]
    fn zip_contains_executable_from_path() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("terraform");
        fs::write(&binary, "machine's own terraform\n").unwrap();
        fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).unwrap();
        let zips = dir.path().join("zips");
        fs::create_dir(&zips).unwrap();

        let release = make_release(
            &zips,
            Tool::Terraform,
            "v1.12.2",
            Executable::FromPath(binary),
        )
        .unwrap();

        let listing = run(Command::new("unzip").arg("-Z").arg(&release.zip)).unwrap();
        let listing = String::from_utf8(listing.stdout).unwrap();
        assert!(listing.contains("-rwxr-xr-x"), "{listing}");
        let content = run(Command::new("unzip").arg("-p").arg(&release.zip)).unwrap();
        assert_eq!(content.stdout, b"machine's own terraform\n");
    }

    #[test]
    fn server_serves_zips_and_rejects_others() {
        let server = ReleaseServer::builder()
            .terraform_version("1.5.7")
            .tflint_version("v0.50.0")
            .stand_ins()
            .start()
            .unwrap();
        let terraform_url = server.zip_url(Tool::Terraform);
        assert_eq!(
            terraform_url,
            format!(
                "{}/terraform/1.5.7/terraform_1.5.7_linux_amd64.zip",
                server.url()
            )
        );
        assert_eq!(server.executable(Tool::Tflint), &Executable::StandIn);

        let body = ureq::get(&terraform_url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_vec()
            .unwrap();
        assert_eq!(body, fs::read(server.zip_file(Tool::Terraform)).unwrap());
        let script = run(Command::new("unzip")
            .arg("-p")
            .arg(server.zip_file(Tool::Tflint))
            .arg("tflint"))
        .unwrap();
        let script = String::from_utf8(script.stdout).unwrap();
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        assert!(script.contains("echo 'TFLint version 0.50.0'"), "{script}");

        let missing = ureq::get(format!("{}/tflint/v9/tflint_linux_amd64.zip", server.url()))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap();
        assert_eq!(missing.status(), 404);
        let posted = ureq::post(&terraform_url)
            .config()
            .http_status_as_error(false)
            .build()
            .send_empty()
            .unwrap();
        assert_eq!(posted.status(), 405);
    }

    #[test]
    fn relative_search_path_entries_are_skipped() {
        assert_eq!(find_executable("sh", OsStr::new("bin:.")), None);
    }
}
