//! A loopback HTTP proxy in front of a plain-HTTP [`Registry`] that injects faults at
//! chosen requests: error statuses, closed connections, stalls, and expired tokens.
//!
//! Each client connection carries one request, and every forwarded request goes over a
//! new upstream connection with `Connection: close`, so request boundaries are simple. Request bodies must carry `Content-Length`; chunked
//! request bodies are rejected with 501.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use crate::error::{Result, io_error};
use crate::registry::Registry;

/// A fault the proxy injects instead of forwarding a request normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Responds with this status and an empty body, without forwarding.
    Status(u16),
    /// Closes the connection without any response, as a reset does.
    Close,
    /// Waits this long, then closes the connection without any response.
    Stall(Duration),
    /// Forwards the request without its `Authorization` header, so a token registry
    /// returns 401 as it does for an expired token.
    ExpireToken,
}

/// Injects `fault` into the `nth` request (counting from 1) whose method is `method` and
/// whose path contains `path_part`.
#[derive(Clone, Debug)]
struct Rule {
    method: String,
    path_part: String,
    nth: usize,
    fault: Fault,
    seen: usize,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    /// `METHOD path` of every request received, with the fault applied to it, if any.
    log: Vec<(String, Option<Fault>)>,
}

/// A running fault-injecting proxy. Dropping it stops accepting connections.
#[derive(Debug)]
pub struct FaultProxy {
    host: String,
    state: Arc<Mutex<State>>,
    stopped: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `registry`, which must serve
    /// plain HTTP.
    pub fn start(registry: &Registry) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(io_error("bind", "127.0.0.1:0"))?;
        let port = listener
            .local_addr()
            .map_err(io_error("read address of", "proxy listener"))?
            .port();
        let state = Arc::new(Mutex::new(State::default()));
        let stopped = Arc::new(AtomicBool::new(false));
        let upstream = registry.host().to_owned();
        let accept_state = Arc::clone(&state);
        let accept_stopped = Arc::clone(&stopped);
        thread::spawn(move || accept_loop(&listener, &upstream, &accept_state, &accept_stopped));
        Ok(Self {
            host: format!("127.0.0.1:{port}"),
            state,
            stopped,
        })
    }

    /// `127.0.0.1:PORT`, the registry part of references through the proxy.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Injects `fault` into the `nth` request (counting from 1) with `method` whose path
    /// contains `path_part`.
    pub fn inject(&self, method: &str, path_part: &str, nth: usize, fault: Fault) {
        lock(&self.state).rules.push(Rule {
            method: method.to_owned(),
            path_part: path_part.to_owned(),
            nth,
            fault,
            seen: 0,
        });
    }

    /// Returns `METHOD path` of every request received so far, with its fault.
    pub fn requests(&self) -> Vec<(String, Option<Fault>)> {
        lock(&self.state).log.clone()
    }

    /// Returns how many faults were injected so far.
    pub fn faults_injected(&self) -> usize {
        lock(&self.state)
            .log
            .iter()
            .filter(|(_, fault)| fault.is_some())
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it reads the flag.
        let _ = TcpStream::connect(&self.host);
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(
    listener: &TcpListener,
    upstream: &str,
    state: &Arc<Mutex<State>>,
    stopped: &AtomicBool,
) {
    for connection in listener.incoming() {
        if stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(connection) = connection else {
            continue;
        };
        let upstream = upstream.to_owned();
        let state = Arc::clone(state);
        thread::spawn(move || {
            if let Err(error) = serve_connection(connection, &upstream, &state) {
                tracing::debug!(%error, "fault proxy connection ended");
            }
        });
    }
}

/// A parsed request head.
struct RequestHead {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl RequestHead {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Serves one request on a client connection and closes it, because every response,
/// injected or forwarded, carries `Connection: close`.
fn serve_connection(
    client: TcpStream,
    upstream: &str,
    state: &Mutex<State>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    let Some(head) = read_head(&mut reader)? else {
        return Ok(());
    };
    let fault = choose_fault(state, &head);
    match fault {
        Some(Fault::Status(status)) => {
            skip_body(&mut reader, &head)?;
            let response = format!(
                "HTTP/1.1 {status} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            writer.write_all(response.as_bytes())?;
        }
        Some(Fault::Close) => {}
        Some(Fault::Stall(wait)) => thread::sleep(wait),
        Some(Fault::ExpireToken) | None => {
            let strip_auth = fault == Some(Fault::ExpireToken);
            forward(&mut reader, &mut writer, &head, upstream, strip_auth)?;
        }
    }
    writer.shutdown(Shutdown::Both)
}

fn choose_fault(state: &Mutex<State>, head: &RequestHead) -> Option<Fault> {
    let mut state = lock(state);
    let mut chosen = None;
    for rule in &mut state.rules {
        if rule.method == head.method && head.path.contains(&rule.path_part) {
            rule.seen += 1;
            if rule.seen == rule.nth && chosen.is_none() {
                chosen = Some(rule.fault);
            }
        }
    }
    state
        .log
        .push((format!("{} {}", head.method, head.path), chosen));
    chosen
}

fn read_head(reader: &mut impl BufRead) -> std::io::Result<Option<RequestHead>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    Ok(Some(RequestHead {
        method,
        path,
        headers,
    }))
}

fn body_length(head: &RequestHead) -> std::io::Result<u64> {
    if head
        .header("transfer-encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"))
    {
        return Err(std::io::Error::other(
            "chunked request bodies are not supported",
        ));
    }
    Ok(head
        .header("content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0))
}

fn skip_body(reader: &mut impl Read, head: &RequestHead) -> std::io::Result<()> {
    let length = body_length(head)?;
    std::io::copy(&mut reader.take(length), &mut std::io::sink())?;
    Ok(())
}

/// Sends the request to the registry over a new connection and copies the whole
/// response back.
fn forward(
    reader: &mut impl Read,
    writer: &mut TcpStream,
    head: &RequestHead,
    upstream: &str,
    strip_auth: bool,
) -> std::io::Result<()> {
    let length = match body_length(head) {
        Ok(length) => length,
        Err(_) => {
            let response =
                "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            return writer.write_all(response.as_bytes());
        }
    };
    let mut server = TcpStream::connect(upstream)?;
    let mut request = format!("{} {} HTTP/1.1\r\n", head.method, head.path);
    for (name, value) in &head.headers {
        let skipped = name.eq_ignore_ascii_case("connection")
            || (strip_auth && name.eq_ignore_ascii_case("authorization"));
        if !skipped {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    request.push_str("Connection: close\r\n\r\n");
    server.write_all(request.as_bytes())?;
    std::io::copy(&mut reader.take(length), &mut server)?;
    std::io::copy(&mut server, writer)?;
    Ok(())
}
