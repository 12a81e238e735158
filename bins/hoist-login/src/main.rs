//! The `hoist-login` command: writes, removes or shows one registry's credentials in a
//! Docker `config.json`, for CI jobs that get the credentials as variables.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{ArgGroup, CommandFactory as _, Parser};
use hoist_auth::{
    CONFIG_FILE_NAME, ConfigEditor, Environment, Keychain, Secret, Source, docker_config_dir,
    validate_registry,
};

/// Writes registry credentials into a Docker config.json without clobbering it.
///
/// The entry is merged into the existing file, every other key is kept, and the file is
/// replaced atomically with the mode 0600. Concurrent runs take turns through a lock on
/// config.json.lock, which is removed afterwards, so each keeps its entry. The credentials
/// are not checked against the registry.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
#[command(group(ArgGroup::new("user").args(["username", "username_env"])))]
#[command(group(ArgGroup::new("secret").args(["password", "password_env", "password_stdin"])))]
struct Args {
    /// Registry host, with the port when it is not 443 (for example registry.example:5000,
    /// [::1]:5000 or docker.io), or an https:// URL such as https://index.docker.io/v1/.
    registry: String,

    /// User name.
    #[arg(short, long, value_name = "USER")]
    username: Option<String>,

    /// Name of the environment variable that contains the user name.
    #[arg(long, value_name = "VAR")]
    username_env: Option<String>,

    /// Read the password from standard input; one trailing newline is removed.
    #[arg(long)]
    password_stdin: bool,

    /// Name of the environment variable that contains the password.
    #[arg(long, value_name = "VAR")]
    password_env: Option<String>,

    /// Password. Visible to every user in the process list: prefer --password-stdin or
    /// --password-env.
    #[arg(short, long, value_name = "PASSWORD")]
    password: Option<String>,

    /// Directory of config.json [default: $DOCKER_CONFIG, else $HOME/.docker].
    #[arg(long, value_name = "DIR")]
    config: Option<PathBuf>,

    /// Remove the registry's entries from config.json instead of writing one.
    #[arg(long, conflicts_with_all = ["user", "secret", "show"])]
    logout: bool,

    /// Print the source of the registry's credential and its user name, never the secret.
    #[arg(long, conflicts_with_all = ["user", "secret"])]
    show: bool,
}

fn main() -> ExitCode {
    init_logging();
    let args = Args::parse();
    if let Err(error) = validate_registry(&args.registry) {
        // A usage error like those of clap itself: the message, usage and exit status 2.
        let message = format!(
            "{error}; expected HOST, HOST:PORT, [IPV6]:PORT or an https:// URL of the registry"
        );
        Args::command()
            .error(clap::error::ErrorKind::ValueValidation, message)
            .exit();
    }
    match run(&args).and_then(|output| write_output(&output)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the cause chain on one line, without the backtrace that
            // `RUST_BACKTRACE` would add to a returned `anyhow::Error`.
            eprintln!("hoist-login: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command and returns the text for standard output.
fn run(args: &Args) -> anyhow::Result<String> {
    let env = Environment::from_process();
    let config_dir = config_dir(args, &env)?;

    if args.logout {
        logout(&args.registry, &config_dir)
    } else if args.show {
        show(&args.registry, &config_dir, &env)
    } else {
        login(args, &config_dir)
    }
}

/// Writes `text` to standard output. A closed pipe, as in `hoist-login ... | head -0`, is
/// not an error, because the output only reports what the command already did.
fn write_output(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != ErrorKind::BrokenPipe => {
            Err(error).context("failed to write to standard output")
        }
        _ => Ok(()),
    }
}

/// Sends log events to standard error; `RUST_LOG` sets the level, warnings by default.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal, so that CI logs and files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn config_dir(args: &Args, env: &Environment) -> anyhow::Result<PathBuf> {
    match &args.config {
        Some(dir) => Ok(dir.clone()),
        None => docker_config_dir(env)
            .context("no config directory: pass --config DIR, or set DOCKER_CONFIG or HOME"),
    }
}

fn login(args: &Args, config_dir: &Path) -> anyhow::Result<String> {
    let username = username(args)?;
    let password = password(args)?;
    let path = config_dir.join(CONFIG_FILE_NAME);

    let mut editor = ConfigEditor::open(&path)?;
    let key = editor.set_basic_auth(&args.registry, &username, &password)?;
    editor.save()?;
    if let Some(helper) = editor.helper_for(&args.registry) {
        warn_about_helper(&args.registry, &key, &helper);
    }

    Ok(format!(
        "Stored credentials for {} in {} (auths key \"{key}\")\n",
        args.registry,
        path.display()
    ))
}

/// Warns that a credential helper in the same file takes precedence over the entry just
/// stored. The message names the registry and the helper, never the credential.
fn warn_about_helper(registry: &str, key: &str, helper: &Source) {
    match helper {
        Source::Helper { path, name } => tracing::warn!(
            "credHelpers in {} sends {registry} to docker-credential-{name}, so hoist and \
             Docker read its credentials from that helper and never use the stored auths \
             entry \"{key}\"; remove {registry} from credHelpers, or store the credentials \
             with the helper",
            path.display()
        ),
        Source::Store { path, name } => tracing::warn!(
            "credsStore in {} names docker-credential-{name}: hoist uses the stored auths \
             entry \"{key}\", but Docker reads {registry} from that store and ignores the \
             entry",
            path.display()
        ),
        Source::FileEntry { .. } => {}
    }
}

fn logout(registry: &str, config_dir: &Path) -> anyhow::Result<String> {
    let path = config_dir.join(CONFIG_FILE_NAME);
    let mut editor = ConfigEditor::open(&path)?;
    let removed = editor.remove(registry)?;
    if removed.is_empty() {
        return Ok(format!(
            "No credentials for {registry} in {}\n",
            path.display()
        ));
    }

    editor.save()?;
    // TODO: erase the credential from a credHelpers or credsStore helper too, as `docker
    // logout` does; hoist-login only edits the file.
    Ok(format!(
        "Removed credentials for {registry} from {} (auths keys {})\n",
        path.display(),
        quoted_list(&removed)
    ))
}

fn show(registry: &str, config_dir: &Path, env: &Environment) -> anyhow::Result<String> {
    let keychain = Keychain::with_config_dir(config_dir, env);
    let mut output = format!("registry: {registry}\n");
    let Some(resolved) = keychain.resolve(registry)? else {
        let files: Vec<String> = keychain
            .files()
            .iter()
            .map(|path| path.display().to_string())
            .collect();
        writeln!(
            output,
            "source: none (searched {}); hoist would connect anonymously",
            files.join(", ")
        )?;
        return Ok(output);
    };

    writeln!(output, "source: {}", resolved.source)?;
    match &resolved.credential {
        Some(credential) => {
            let username = credential.username().unwrap_or("(none)");
            writeln!(output, "username: {username}")?;
            writeln!(output, "credential: {}", credential.kind())?;
        }
        None => writeln!(
            output,
            "credential: none (the helper has no credential for this registry)"
        )?,
    }
    Ok(output)
}

fn username(args: &Args) -> anyhow::Result<String> {
    let (username, origin) = match (&args.username, &args.username_env) {
        (Some(username), _) => (username.clone(), "--username".to_owned()),
        (None, Some(var)) => (env_var(var)?, format!("environment variable {var}")),
        (None, None) => bail!("missing user name: pass --username USER or --username-env VAR"),
    };
    if username.is_empty() {
        bail!("the user name from {origin} is empty");
    }
    Ok(username)
}

fn password(args: &Args) -> anyhow::Result<Secret> {
    let (password, origin) = if let Some(password) = &args.password {
        tracing::warn!(
            "--password is visible to every user in the process list; \
             use --password-stdin or --password-env instead"
        );
        (password.clone(), "--password".to_owned())
    } else if let Some(var) = &args.password_env {
        (env_var(var)?, format!("environment variable {var}"))
    } else if args.password_stdin {
        (read_stdin_password()?, "standard input".to_owned())
    } else {
        bail!("missing password: pass --password-stdin, --password-env VAR or --password");
    };
    if password.is_empty() {
        bail!("the password from {origin} is empty");
    }
    Ok(Secret::new(password))
}

/// Reads an environment variable that must be set and valid UTF-8. The message names the
/// variable but never its value.
fn env_var(name: &str) -> anyhow::Result<String> {
    let value: OsString = std::env::var_os(name)
        .with_context(|| format!("environment variable {name} is not set"))?;
    value
        .into_string()
        .map_err(|_| anyhow::anyhow!("environment variable {name} is not valid UTF-8"))
}

/// Reads all of standard input and removes one trailing newline (`\n` or `\r\n`), which
/// `echo` and here-strings add, as `docker login --password-stdin` does.
fn read_stdin_password() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("failed to read the password from standard input (it must be UTF-8)")?;
    if let Some(stripped) = password.strip_suffix('\n') {
        let stripped = stripped.strip_suffix('\r').unwrap_or(stripped);
        password.truncate(stripped.len());
    }
    Ok(password)
}

fn quoted_list(keys: &[String]) -> String {
    keys.iter()
        .map(|key| format!("\"{key}\""))
        .collect::<Vec<_>>()
        .join(", ")
}
