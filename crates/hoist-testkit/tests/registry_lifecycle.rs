//! Registries stop and clean up after themselves, and the token server
//! implements both token flows.

use std::path::PathBuf;
use std::time::Duration;

use hoist_testkit::Registry;

const USER: &str = "tester";
const PASS: &str = "s3cret-pass";

/// True while a process with `pid` exists and is not a zombie.
fn process_is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, fields)| !fields.starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn dropped_registry_is_stopped_and_removed() {
    let registry = Registry::builder().tls().token(USER, PASS).start().unwrap();
    let pid = registry.pid();
    let dir = registry.dir().to_path_buf();
    let realm = registry.token_realm().unwrap().to_owned();
    assert!(process_is_running(pid));
    assert!(dir.join("config.yml").is_file());

    drop(registry);

    assert!(!process_is_running(pid));
    assert!(!dir.exists());
    let agent = ureq::Agent::new_with_defaults();
    assert!(
        agent.get(&realm).call().is_err(),
        "token server still answers"
    );
}

#[test]
fn panicking_test_stops_its_registry() {
    let seen = std::sync::Mutex::new(None::<(u32, PathBuf)>);
    let outcome = std::panic::catch_unwind(|| {
        let registry = Registry::builder().htpasswd(USER, PASS).start().unwrap();
        *seen.lock().unwrap() = Some((registry.pid(), registry.dir().to_path_buf()));
        panic!("test failure while the registry runs");
    });
    assert!(outcome.is_err());

    let (pid, dir) = seen.lock().unwrap().take().unwrap();
    assert!(!process_is_running(pid), "registry pid {pid} still runs");
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[test]
fn registries_run_side_by_side() {
    let first = Registry::builder().start().unwrap();
    let second = Registry::builder().start().unwrap();
    assert_ne!(first.host(), second.host());
    assert_ne!(first.dir(), second.dir());
    assert_eq!(
        first.client().unwrap().get("/v2/", &[]).unwrap().status,
        200
    );
    assert_eq!(
        second.client().unwrap().get("/v2/", &[]).unwrap().status,
        200
    );
}

#[test]
fn registry_outlives_the_thread_that_started_it() {
    let registry = std::thread::spawn(|| Registry::builder().start().unwrap())
        .join()
        .unwrap();
    // The parent-death signal is tied to the thread that forked the
    // registry; a test thread ending must not kill a shared registry.
    std::thread::sleep(Duration::from_millis(200));
    assert!(process_is_running(registry.pid()));
    assert_eq!(
        registry.client().unwrap().get("/v2/", &[]).unwrap().status,
        200
    );
}

#[test]
fn htpasswd_and_token_together_are_rejected() {
    let error = Registry::builder()
        .htpasswd(USER, PASS)
        .token(USER, PASS)
        .start()
        .unwrap_err();
    assert!(error.to_string().contains("cannot be combined"), "{error}");
}

#[test]
fn storage_dir_holds_pushed_blobs() {
    let registry = Registry::builder().start().unwrap();
    let pushed =
        hoist_testkit::push_base_image(&registry, hoist_testkit::BaseImage::Busybox).unwrap();
    let hex = pushed[0].digest.trim_start_matches("sha256:");
    let blob = registry
        .storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    assert!(blob.is_file(), "{}", blob.display());
    assert_eq!(registry.blob_path(&pushed[0].digest), blob);
}

#[test]
fn token_server_grants_oauth2_password_and_refresh() {
    let registry = Registry::builder().token(USER, PASS).start().unwrap();
    let realm = registry.token_realm().unwrap().to_owned();
    let client = registry.client().unwrap();
    let scope = "repository:base/busybox:pull,push";

    let response = client
        .agent()
        .post(&realm)
        .send_form([
            ("grant_type", "password"),
            ("username", USER),
            ("password", PASS),
            ("service", "hoist-testkit-registry"),
            ("scope", scope),
            ("client_id", "hoist-testkit"),
        ])
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value =
        serde_json::from_str(&response.into_body().read_to_string().unwrap()).unwrap();
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    assert!(
        body["access_token"]
            .as_str()
            .is_some_and(|token| !token.is_empty())
    );

    let refreshed = client
        .agent()
        .post(&realm)
        .send_form([
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
            ("service", "hoist-testkit-registry"),
            ("scope", scope),
        ])
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    assert_eq!(registry.tokens_issued(), 2);
}

#[test]
fn token_server_rejects_unknown_refresh_token() {
    let registry = Registry::builder().token(USER, PASS).start().unwrap();
    let realm = registry.token_realm().unwrap().to_owned();
    let response = registry
        .client()
        .unwrap()
        .agent()
        .post(&realm)
        .send_form([
            ("grant_type", "refresh_token"),
            ("refresh_token", "made-up"),
        ])
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(registry.tokens_issued(), 0);
}

#[test]
fn issued_token_is_accepted_by_registry() {
    let registry = Registry::builder().token(USER, PASS).start().unwrap();
    let client = registry.client().unwrap();
    let response = client.get("/v2/_catalog", &[]).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(registry.tokens_issued(), 1);
}

#[test]
fn anonymous_token_registry_issues_to_anyone() {
    let registry = Registry::builder().anonymous_token().start().unwrap();
    assert_eq!(registry.credentials(), None);
    let response = registry.client().unwrap().get("/v2/", &[]).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(registry.tokens_issued(), 1);
}

/// Lifetime of the token in the expiry test. JWT times are whole seconds, so
/// a token can expire up to a second early. With a one-second lifetime, the
/// first use failed on a loaded machine.
const TOKEN_LIFETIME_SECS: u64 = 4;

#[test]
fn expired_token_is_rejected() {
    let registry = Registry::builder()
        .token(USER, PASS)
        .token_lifetime(Duration::from_secs(TOKEN_LIFETIME_SECS))
        .exact_token_expiry()
        .start()
        .unwrap();
    let client = registry.client().unwrap();
    let challenge = client.with_credentials(None).get("/v2/", &[]).unwrap();
    assert_eq!(challenge.status, 401);

    let realm = registry.token_realm().unwrap();
    let token_response = client
        .agent()
        .get(realm)
        .query("service", "hoist-testkit-registry")
        .header("Authorization", basic(USER, PASS))
        .call()
        .unwrap();
    let body: serde_json::Value =
        serde_json::from_str(&token_response.into_body().read_to_string().unwrap()).unwrap();
    assert_eq!(body["expires_in"], TOKEN_LIFETIME_SECS);
    let bearer = format!("Bearer {}", body["token"].as_str().unwrap());

    let url = format!("{}/v2/", registry.url());
    let fresh = client
        .agent()
        .get(&url)
        .header("Authorization", &bearer)
        .call()
        .unwrap();
    assert_eq!(fresh.status(), 200);
    std::thread::sleep(Duration::from_secs(TOKEN_LIFETIME_SECS + 1));
    let stale = client
        .agent()
        .get(&url)
        .header("Authorization", &bearer)
        .call()
        .unwrap();
    assert_eq!(stale.status(), 401);
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {encoded}")
}

#[test]
fn token_outlives_lifetime_without_exact_expiry() {
    let registry = Registry::builder()
        .token(USER, PASS)
        .token_lifetime(Duration::from_secs(1))
        .start()
        .unwrap();
    let client = registry.client().unwrap();
    let token_response = client
        .agent()
        .get(registry.token_realm().unwrap())
        .query("service", "hoist-testkit-registry")
        .header("Authorization", basic(USER, PASS))
        .call()
        .unwrap();
    let body: serde_json::Value =
        serde_json::from_str(&token_response.into_body().read_to_string().unwrap()).unwrap();
    let bearer = format!("Bearer {}", body["token"].as_str().unwrap());

    // Distribution's 60 s leeway keeps the token valid past `expires_in`.
    std::thread::sleep(Duration::from_millis(2100));
    let url = format!("{}/v2/", registry.url());
    let late = client
        .agent()
        .get(&url)
        .header("Authorization", &bearer)
        .call()
        .unwrap();
    assert_eq!(late.status(), 200);
}

#[test]
fn debug_output_hides_passwords() {
    let builder = Registry::builder().htpasswd(USER, PASS);
    let text = format!("{builder:?}");
    assert!(text.contains(USER), "{text}");
    assert!(!text.contains(PASS), "{text}");

    let registry = Registry::builder().token(USER, PASS).start().unwrap();
    let client = registry.client().unwrap();
    assert!(!format!("{registry:?}").contains(PASS));
    assert!(!format!("{client:?}").contains(PASS));
}

#[test]
fn ipv6_registry_listens_on_ipv6_loopback() {
    let registry = Registry::builder().ipv6().tls().start().unwrap();
    let port = registry.host().strip_prefix("[::1]:").unwrap();
    assert!(port.parse::<u16>().is_ok(), "{}", registry.host());
    assert_eq!(registry.url(), format!("https://{}", registry.host()));

    let response = registry.client().unwrap().get("/v2/", &[]).unwrap();
    assert_eq!(response.status, 200);
}
