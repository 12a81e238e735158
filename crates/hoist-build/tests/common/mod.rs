//! Helpers shared by the COPY and ADD tests: tar archives in every
//! compression that ADD extracts, and a loopback HTTP file server.

// Each test binary that includes this module uses only part of it.
#![allow(dead_code)]

use std::io::Write;

/// Returns a ustar header of `kind` owned by root.
fn header(kind: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mode(0o777);
    header.set_mtime(0);
    header.set_size(0);
    header
}

/// Returns a tar archive with a directory, a file owned by 1234:1234, a
/// hardlink to it and a symlink.
pub(crate) fn sample_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut directory = header(tar::EntryType::Directory);
    directory.set_mode(0o755);
    builder
        .append_data(&mut directory, "pkg/", std::io::empty())
        .expect("append directory");

    let mut file = header(tar::EntryType::Regular);
    file.set_mode(0o640);
    file.set_uid(1234);
    file.set_gid(1234);
    file.set_size(6);
    file.set_mtime(1_000_000_000);
    builder
        .append_data(&mut file, "pkg/data", &b"hello\n"[..])
        .expect("append file");

    // The link's header repeats the file's metadata, as GNU tar writes it:
    // Docker applies a link header's owner and mode to the shared inode.
    let mut link = header(tar::EntryType::Link);
    link.set_mode(0o640);
    link.set_uid(1234);
    link.set_gid(1234);
    link.set_mtime(1_000_000_000);
    builder
        .append_link(&mut link, "pkg/data-link", "pkg/data")
        .expect("append hardlink");

    let mut symbolic = header(tar::EntryType::Symlink);
    builder
        .append_link(&mut symbolic, "pkg/current", "data")
        .expect("append symlink");
    builder.into_inner().expect("finish tar")
}

/// Returns `sample_tar()` compressed with `format`.
pub(crate) fn compressed_tar(format: &str) -> Vec<u8> {
    let tar = sample_tar();
    match format {
        "tar" => tar,
        "gz" => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(&tar).expect("gzip");
            encoder.finish().expect("gzip")
        }
        "bz2" => {
            let mut encoder =
                bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
            encoder.write_all(&tar).expect("bzip2");
            encoder.finish().expect("bzip2")
        }
        "xz" => {
            let mut encoder = xz2::write::XzEncoder::new(Vec::new(), 6);
            encoder.write_all(&tar).expect("xz");
            encoder.finish().expect("xz")
        }
        "zst" => zstd::encode_all(&tar[..], 3).expect("zstd"),
        other => panic!("unknown format {other}"),
    }
}

/// A loopback HTTP server that serves `files` (path, body) with a fixed
/// `Last-Modified`, until it is dropped.
pub(crate) struct FileServer {
    address: String,
    server: std::sync::Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub(crate) const LAST_MODIFIED: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
pub(crate) const LAST_MODIFIED_SECONDS: i64 = 784_111_777;

impl FileServer {
    pub(crate) fn start(files: Vec<(&'static str, Vec<u8>)>) -> Self {
        let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("server"));
        let address = format!(
            "http://{}",
            server.server_addr().to_ip().expect("IP address")
        );
        let serving = server.clone();
        let thread = std::thread::spawn(move || {
            for request in serving.incoming_requests() {
                let found = files.iter().find(|(path, _)| *path == request.url());
                let response = match found {
                    Some((_, body)) => tiny_http::Response::from_data(body.clone()).with_header(
                        tiny_http::Header::from_bytes("Last-Modified", LAST_MODIFIED)
                            .expect("header"),
                    ),
                    None => {
                        tiny_http::Response::from_data(b"missing".to_vec()).with_status_code(404)
                    }
                };
                let _ = request.respond(response);
            }
        });
        Self {
            address,
            server,
            thread: Some(thread),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
