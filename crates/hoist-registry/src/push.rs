//! Pushes: blobs first (each checked with `HEAD`, mounted or uploaded), then the manifest
//! to every tag, and only once every blob it names is confirmed present.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use hoist_image::LoadedImage;
use reqwest::header::{self, HeaderName};
use reqwest::{Method, StatusCode};

use crate::api::{ApiRequest, RegistryApi, RequestBody, header_text};
use crate::auth::repository_scope;
use crate::client::{Client, UploadMode};
use crate::error::{Error, Result};
use crate::progress::Direction;
use crate::pull::is_retryable;
use crate::reference::ImageReference;

/// A blob to push: where its bytes are and where it may be mounted from.
#[derive(Clone, Debug)]
struct PushBlob {
    digest: String,
    size: u64,
    body: BlobBody,
    /// A repository of the same registry that has the blob, for a cross-repository mount.
    mount_from: Option<String>,
}

#[derive(Clone, Debug)]
enum BlobBody {
    Bytes(Bytes),
    File {
        path: std::path::PathBuf,
        offset: u64,
        digest: String,
    },
}

impl BlobBody {
    fn range(&self, start: u64, length: u64) -> RequestBody {
        match self {
            Self::Bytes(bytes) => {
                let start = usize::try_from(start)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = usize::try_from(start as u64 + length)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                RequestBody::BlobBytes(bytes.slice(start..end))
            }
            Self::File {
                path,
                offset,
                digest,
            } => RequestBody::File {
                path: path.clone(),
                offset: offset + start,
                length,
                digest: digest.clone(),
            },
        }
    }
}

/// The outcome of a push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushOutcome {
    /// The manifest digest, `sha256:<hex>`.
    pub digest: String,
    /// Every reference now pointing at the manifest.
    pub references: Vec<ImageReference>,
}

/// How a missing blob got into the repository.
enum BlobResult {
    Mounted,
    Uploaded,
}

impl Client {
    /// Pushes `image` to every destination: its blobs to each destination repository, then
    /// its manifest to each tag (or digest) named.
    ///
    /// `mount_from` maps a layer digest to a reference it came from (a base image layer);
    /// when that reference is in the same registry but another repository, the layer is
    /// mounted from there instead of uploaded, with an upload when the registry declines.
    ///
    /// A manifest is only sent after every blob it names is confirmed present with `HEAD`,
    /// so no tag ever points at an incomplete image. Destinations of the same repository
    /// share the blob work, so each extra tag costs one manifest `PUT`.
    pub async fn push(
        &self,
        image: &LoadedImage,
        destinations: &[ImageReference],
        mount_from: &BTreeMap<String, ImageReference>,
    ) -> Result<PushOutcome> {
        let digest = image.rendered.manifest_descriptor.digest.to_string();
        for (registry, repository, tags) in group_by_repository(destinations) {
            let api = self.api(&registry).await?;
            let blobs = blobs_of(image, &registry, &repository, mount_from);
            self.push_blobs(&api, &repository, &blobs).await?;
            for tag in tags {
                put_manifest(&api, &repository, &tag, image, &digest).await?;
            }
        }
        tracing::info!(%digest, destinations = destinations.len(), "pushed image");
        Ok(PushOutcome {
            digest,
            references: destinations.to_vec(),
        })
    }

    /// Checks that the credentials may push to the repository of `destination` by opening
    /// a blob upload session and cancelling it, so that a wrong password fails in seconds
    /// instead of after a build. Nothing is written to the repository.
    pub async fn check_push_access(&self, destination: &ImageReference) -> Result<()> {
        let api = self.api(destination.registry()).await?;
        let repository = destination.repository();
        let url = api.url(&format!("/v2/{repository}/blobs/uploads/"));
        let request = ApiRequest::new(Method::POST, url, push_scopes(repository))
            .header(header::CONTENT_LENGTH, "0");
        let response = api
            .send_expecting(&request, &[StatusCode::ACCEPTED])
            .await?;
        let location = api.location(&request, &response)?;
        let cancel = ApiRequest::new(
            Method::DELETE,
            location.to_string(),
            push_scopes(repository),
        )
        .without_retry();
        // A registry that keeps the session (some return 404 or 405 to DELETE) expires it
        // on its own, so a failed cancel is logged and not an error.
        match api.send(&cancel).await {
            Ok(response) => {
                tracing::debug!(registry = %api.registry, repository, status = response.status().as_u16(), "cancelled the upload session of the push check");
            }
            Err(error) => {
                tracing::warn!(registry = %api.registry, repository, %error, "cancelling the upload session of the push check failed");
            }
        }
        tracing::info!(registry = %api.registry, repository, "push access confirmed");
        Ok(())
    }

    /// Pushes every blob, at most `max_concurrency` at a time, and confirms each.
    async fn push_blobs(
        &self,
        api: &RegistryApi,
        repository: &str,
        blobs: &[PushBlob],
    ) -> Result<()> {
        let concurrency = self.options.max_concurrency.max(1);
        let upload = self.options.upload;
        futures::stream::iter(blobs)
            .map(|blob| push_blob(api, repository, blob, upload))
            .buffer_unordered(concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

/// Groups destinations by registry and repository, keeping the order of first mention;
/// each group lists the tags or digests to put the manifest under.
fn group_by_repository(destinations: &[ImageReference]) -> Vec<(String, String, Vec<String>)> {
    let mut groups: Vec<(String, String, Vec<String>)> = Vec::new();
    for destination in destinations {
        let tag = destination.manifest_reference().to_owned();
        let existing = groups.iter_mut().find(|(registry, repository, _)| {
            registry == destination.registry() && repository == destination.repository()
        });
        match existing {
            Some((_, _, tags)) if tags.contains(&tag) => {}
            Some((_, _, tags)) => tags.push(tag),
            None => groups.push((
                destination.registry().to_owned(),
                destination.repository().to_owned(),
                vec![tag],
            )),
        }
    }
    groups
}

/// Lists the layers and the config of `image` as blobs to push to `repository`.
fn blobs_of(
    image: &LoadedImage,
    registry: &str,
    repository: &str,
    mount_from: &BTreeMap<String, ImageReference>,
) -> Vec<PushBlob> {
    let mut blobs: Vec<PushBlob> = Vec::new();
    for layer in image.image.layers() {
        let digest = layer.digest.to_string();
        if blobs.iter().any(|blob| blob.digest == digest) {
            continue;
        }
        let mount = mount_from
            .get(&digest)
            .filter(|source| source.registry() == registry && source.repository() != repository)
            .map(|source| source.repository().to_owned());
        blobs.push(PushBlob {
            digest: digest.clone(),
            size: layer.size,
            body: BlobBody::File {
                path: layer.blob.path.clone(),
                offset: layer.blob.offset,
                digest,
            },
            mount_from: mount,
        });
    }
    let config = &image.rendered.manifest.config;
    blobs.push(PushBlob {
        digest: config.digest.to_string(),
        size: config.size,
        body: BlobBody::Bytes(Bytes::from(image.rendered.config_json.clone())),
        mount_from: None,
    });
    blobs
}

fn push_scopes(repository: &str) -> Vec<String> {
    vec![repository_scope(repository, "pull,push")]
}

/// Pushes one blob unless the registry has it, retrying the whole upload after a transient
/// failure, and confirms it with `HEAD`.
async fn push_blob(
    api: &RegistryApi,
    repository: &str,
    blob: &PushBlob,
    upload: UploadMode,
) -> Result<()> {
    if blob_exists(api, repository, &blob.digest).await? {
        api.counters.blobs_present.fetch_add(1, Ordering::Relaxed);
        tracing::info!(registry = %api.registry, repository, digest = %blob.digest, "blob already present");
        return Ok(());
    }
    let mut attempt = 0;
    let result = loop {
        attempt += 1;
        if let Some(progress) = &api.progress {
            progress.start(&blob.digest, blob.size, Direction::Push);
        }
        let outcome = mount_or_upload(api, repository, blob, upload).await;
        if let Some(progress) = &api.progress {
            progress.finish(&blob.digest, outcome.is_ok());
        }
        match outcome {
            Err(error) if is_retryable(&error) && api.retry.allows_another(attempt) => {
                api.counters.retries.fetch_add(1, Ordering::Relaxed);
                let wait = api.retry.backoff(attempt, None);
                tracing::warn!(registry = %api.registry, repository, digest = %blob.digest, attempt, %error, "retrying blob upload");
                tokio::time::sleep(wait).await;
            }
            other => break other?,
        }
    };
    if !blob_exists(api, repository, &blob.digest).await? {
        return Err(Error::BlobNotConfirmed {
            registry: api.registry.clone(),
            repository: repository.to_owned(),
            digest: blob.digest.clone(),
        });
    }
    let counter = match result {
        BlobResult::Mounted => &api.counters.blobs_mounted,
        BlobResult::Uploaded => &api.counters.blobs_uploaded,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    tracing::info!(registry = %api.registry, repository, digest = %blob.digest, size = blob.size, mounted = matches!(result, BlobResult::Mounted), "blob pushed");
    Ok(())
}

/// Sends `HEAD` for a blob: true on 200, false on 404.
async fn blob_exists(api: &RegistryApi, repository: &str, digest: &str) -> Result<bool> {
    let url = api.url(&format!("/v2/{repository}/blobs/{digest}"));
    let request = ApiRequest::new(Method::HEAD, url, push_scopes(repository));
    let response = api
        .send_expecting(&request, &[StatusCode::OK, StatusCode::NOT_FOUND])
        .await?;
    Ok(response.status() == StatusCode::OK)
}

/// Starts an upload session, with a mount request when the blob has a source repository.
/// A 201 means the registry mounted it; a 202 (also the spec's response when it declines a
/// mount) opens a session that the bytes are then sent to.
async fn mount_or_upload(
    api: &RegistryApi,
    repository: &str,
    blob: &PushBlob,
    upload: UploadMode,
) -> Result<BlobResult> {
    let mut url = url::Url::parse(&api.url(&format!("/v2/{repository}/blobs/uploads/"))).map_err(
        |error| Error::Transport {
            registry: api.registry.clone(),
            reason: format!("invalid upload URL: {error}"),
        },
    )?;
    let mut scopes = push_scopes(repository);
    if let Some(from) = &blob.mount_from {
        url.query_pairs_mut()
            .append_pair("mount", &blob.digest)
            .append_pair("from", from);
        scopes.push(repository_scope(from, "pull"));
    }
    let request =
        ApiRequest::new(Method::POST, url.to_string(), scopes).header(header::CONTENT_LENGTH, "0");
    let response = api
        .send_expecting(&request, &[StatusCode::CREATED, StatusCode::ACCEPTED])
        .await?;
    if response.status() == StatusCode::CREATED && blob.mount_from.is_some() {
        return Ok(BlobResult::Mounted);
    }
    if blob.mount_from.is_some() {
        tracing::info!(registry = %api.registry, repository, digest = %blob.digest, "registry declined the mount, uploading");
    }
    let location = api.location(&request, &response)?;
    match upload {
        UploadMode::Monolithic => upload_monolithic(api, repository, blob, location).await?,
        UploadMode::Chunked(chunk_size) => {
            upload_chunked(api, repository, blob, location, chunk_size.max(1)).await?;
        }
    }
    Ok(BlobResult::Uploaded)
}

/// Closes an upload session with a `PUT` carrying the digest and `body`.
async fn finish_upload(
    api: &RegistryApi,
    repository: &str,
    blob: &PushBlob,
    mut location: url::Url,
    body: RequestBody,
) -> Result<()> {
    location
        .query_pairs_mut()
        .append_pair("digest", &blob.digest);
    let request = ApiRequest::new(Method::PUT, location.to_string(), push_scopes(repository))
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(body)
        .without_retry();
    api.send_expecting(&request, &[StatusCode::CREATED]).await?;
    Ok(())
}

async fn upload_monolithic(
    api: &RegistryApi,
    repository: &str,
    blob: &PushBlob,
    location: url::Url,
) -> Result<()> {
    let body = blob.body.range(0, blob.size);
    finish_upload(api, repository, blob, location, body).await
}

/// Sends the blob in `PATCH` requests of at most `chunk_size` bytes, following the
/// `Location` each response returns, then closes the session with an empty `PUT`.
async fn upload_chunked(
    api: &RegistryApi,
    repository: &str,
    blob: &PushBlob,
    mut location: url::Url,
    chunk_size: u64,
) -> Result<()> {
    let mut start = 0;
    while start < blob.size {
        let length = chunk_size.min(blob.size - start);
        let end = start + length - 1;
        let request = ApiRequest::new(Method::PATCH, location.to_string(), push_scopes(repository))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_RANGE, format!("{start}-{end}"))
            .body(blob.body.range(start, length))
            .without_retry();
        let response = api
            .send_expecting(&request, &[StatusCode::ACCEPTED])
            .await?;
        location = api.location(&request, &response)?;
        start += length;
    }
    finish_upload(api, repository, blob, location, RequestBody::Empty).await
}

/// Puts the manifest under `tag` (a tag or the digest) and checks the digest the registry
/// computed, when it returns one.
async fn put_manifest(
    api: &RegistryApi,
    repository: &str,
    tag: &str,
    image: &LoadedImage,
    digest: &str,
) -> Result<()> {
    let url = api.url(&format!("/v2/{repository}/manifests/{tag}"));
    let media_type = image.rendered.manifest_descriptor.media_type.clone();
    let body = Bytes::from(image.rendered.manifest_json.clone());
    let request = ApiRequest::new(Method::PUT, url, push_scopes(repository))
        .header(header::CONTENT_TYPE, media_type)
        .body(RequestBody::Bytes(body));
    let response = api.send_expecting(&request, &[StatusCode::CREATED]).await?;
    let stored = header_text(
        response.headers(),
        HeaderName::from_static("docker-content-digest"),
    );
    if let Some(stored) = stored.filter(|stored| stored != digest) {
        return Err(Error::ManifestDigest {
            registry: api.registry.clone(),
            reference: format!("{repository}:{tag}"),
            expected: digest.to_owned(),
            actual: stored,
        });
    }
    api.counters.manifest_puts.fetch_add(1, Ordering::Relaxed);
    tracing::info!(registry = %api.registry, repository, tag, %digest, "manifest pushed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(text: &str) -> ImageReference {
        text.parse().expect("valid reference")
    }

    #[test]
    fn tags_of_one_repository_share_group() {
        let groups = group_by_repository(&[
            reference("r.example/app:1"),
            reference("r.example/app:2"),
            reference("r.example/other:1"),
            reference("r.example/app:1"),
        ]);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].2, ["1", "2"]);
        assert_eq!(groups[1].1, "other");
    }

    #[test]
    fn byte_body_range_is_clamped() {
        let body = BlobBody::Bytes(Bytes::from_static(b"0123456789"));
        let RequestBody::BlobBytes(slice) = body.range(8, 5) else {
            panic!("expected bytes");
        };
        assert_eq!(&slice[..], b"89");
    }
}
