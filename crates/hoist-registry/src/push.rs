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

/// A destination repository and the token scopes of every request to it: `pull,push` on
/// it and `pull` on each repository a blob is mounted from, so that one token serves the
/// whole push of the repository.
struct PushTarget {
    repository: String,
    scopes: Vec<String>,
}

impl PushTarget {
    fn new(repository: &str, blobs: &[PushBlob]) -> Self {
        let mut scopes = push_scopes(repository);
        for from in blobs.iter().filter_map(|blob| blob.mount_from.as_deref()) {
            let scope = repository_scope(from, "pull");
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        Self {
            repository: repository.to_owned(),
            scopes,
        }
    }
}

/// How a missing blob got into the repository.
enum BlobResult {
    Mounted,
    Uploaded,
}

impl Client {
    /// Pushes `image` to every destination: its blobs to every destination repository
    /// first, then its manifest to each tag (or digest) named.
    ///
    /// `mount_from` maps a layer digest to a reference it came from (a base image layer);
    /// when that reference is in the same registry but another repository, the layer is
    /// mounted from there instead of uploaded, with an upload when the registry declines.
    ///
    /// The first manifest is only sent after every blob is confirmed present with `HEAD` in
    /// every destination repository, so a failure leaves no tag pointing at an incomplete
    /// image and, unless a manifest `PUT` itself fails, no tag at all. Destinations of the
    /// same repository share the blob work, so each extra tag costs one manifest `PUT`.
    ///
    /// Before any request, [`check_push_destinations`] rejects a destination with both a
    /// tag and a digest, or with a digest other than the image's.
    pub async fn push(
        &self,
        image: &LoadedImage,
        destinations: &[ImageReference],
        mount_from: &BTreeMap<String, ImageReference>,
    ) -> Result<PushOutcome> {
        let digest = image.rendered.manifest_descriptor.digest.to_string();
        check_push_destinations(&digest, destinations)?;

        let mut ready = Vec::new();
        for (registry, repository, tags) in group_by_repository(destinations) {
            let api = self.api(&registry).await?;
            let blobs = blobs_of(image, &registry, &repository, mount_from);
            let target = PushTarget::new(&repository, &blobs);
            self.push_blobs(&api, &target, &blobs).await?;
            ready.push((api, target, tags));
        }

        for (api, target, tags) in &ready {
            for tag in tags {
                put_manifest(api, target, tag, image, &digest).await?;
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
        target: &PushTarget,
        blobs: &[PushBlob],
    ) -> Result<()> {
        let concurrency = self.options.max_concurrency.max(1);
        let upload = self.options.upload;
        futures::stream::iter(blobs)
            .map(|blob| push_blob(api, target, blob, upload))
            .buffer_unordered(concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

/// Checks that every destination can take the image whose manifest digest is `digest`.
/// Each destination names a tag or a digest but not both (see
/// [`ImageReference::check_push_destination`]), and a digest must equal `digest`. A
/// registry rejects a manifest put under another digest only after every blob was
/// uploaded, so [`Client::push`] calls this before its first request.
pub fn check_push_destinations(digest: &str, destinations: &[ImageReference]) -> Result<()> {
    for destination in destinations {
        destination.check_push_destination()?;
        if let Some(expected) = destination.digest()
            && expected != digest
        {
            return Err(Error::DestinationDigest {
                destination: destination.to_string(),
                expected: expected.to_owned(),
                actual: digest.to_owned(),
            });
        }
    }
    Ok(())
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
    target: &PushTarget,
    blob: &PushBlob,
    upload: UploadMode,
) -> Result<()> {
    let repository = target.repository.as_str();
    if blob_exists(api, target, &blob.digest).await? {
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
        let outcome = mount_or_upload(api, target, blob, upload).await;
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
    if !blob_exists(api, target, &blob.digest).await? {
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
async fn blob_exists(api: &RegistryApi, target: &PushTarget, digest: &str) -> Result<bool> {
    let repository = &target.repository;
    if let Some(oci) = api.oci_for(&target.scopes).await? {
        return api
            .oci_blob_exists(oci, repository, digest, &target.scopes)
            .await;
    }
    let url = api.url(&format!("/v2/{repository}/blobs/{digest}"));
    let request = ApiRequest::new(Method::HEAD, url, target.scopes.clone());
    let response = api
        .send_expecting(&request, &[StatusCode::OK, StatusCode::NOT_FOUND])
        .await?;
    Ok(response.status() == StatusCode::OK)
}

/// Mounts the blob from its source repository when it has one, and uploads it otherwise
/// or when the registry declines the mount.
async fn mount_or_upload(
    api: &RegistryApi,
    target: &PushTarget,
    blob: &PushBlob,
    upload: UploadMode,
) -> Result<BlobResult> {
    let repository = target.repository.as_str();
    let mount_with_session = match (api.oci_for(&target.scopes).await?, &blob.mount_from) {
        (Some(oci), Some(from)) => {
            if api
                .oci_mount(oci, repository, from, &blob.digest, &target.scopes)
                .await?
            {
                return Ok(BlobResult::Mounted);
            }
            tracing::info!(registry = %api.registry, repository, digest = %blob.digest, "registry declined the mount, uploading");
            None
        }
        // hoist's own requests ask for the mount on the POST that opens the session.
        (None, from) => from.as_deref(),
        (Some(_), None) => None,
    };
    let Some(location) = start_upload(api, target, blob, mount_with_session).await? else {
        return Ok(BlobResult::Mounted);
    };
    match upload {
        UploadMode::Monolithic => upload_monolithic(api, target, blob, location).await?,
        UploadMode::Chunked(chunk_size) => {
            upload_chunked(api, target, blob, location, chunk_size.max(1)).await?;
        }
    }
    Ok(BlobResult::Uploaded)
}

/// Opens an upload session, with a mount request when `mount_from` names a repository.
/// Returns `None` when the registry mounted the blob (201), else the session's URL (202,
/// also the spec's status when the registry declines a mount).
async fn start_upload(
    api: &RegistryApi,
    target: &PushTarget,
    blob: &PushBlob,
    mount_from: Option<&str>,
) -> Result<Option<url::Url>> {
    let repository = target.repository.as_str();
    let mut url = url::Url::parse(&api.url(&format!("/v2/{repository}/blobs/uploads/"))).map_err(
        |error| Error::Transport {
            registry: api.registry.clone(),
            reason: format!("invalid upload URL: {error}"),
        },
    )?;
    if let Some(from) = mount_from {
        url.query_pairs_mut()
            .append_pair("mount", &blob.digest)
            .append_pair("from", from);
    }
    let request = ApiRequest::new(Method::POST, url.to_string(), target.scopes.clone())
        .header(header::CONTENT_LENGTH, "0");
    let response = api
        .send_expecting(&request, &[StatusCode::CREATED, StatusCode::ACCEPTED])
        .await?;
    if response.status() == StatusCode::CREATED && mount_from.is_some() {
        return Ok(None);
    }
    if mount_from.is_some() {
        tracing::info!(registry = %api.registry, repository, digest = %blob.digest, "registry declined the mount, uploading");
    }
    api.location(&request, &response).map(Some)
}

/// Closes an upload session with a `PUT` carrying the digest and `body`.
async fn finish_upload(
    api: &RegistryApi,
    target: &PushTarget,
    blob: &PushBlob,
    mut location: url::Url,
    body: RequestBody,
) -> Result<()> {
    location
        .query_pairs_mut()
        .append_pair("digest", &blob.digest);
    let request = ApiRequest::new(Method::PUT, location.to_string(), target.scopes.clone())
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(body)
        .without_retry();
    api.send_expecting(&request, &[StatusCode::CREATED]).await?;
    Ok(())
}

async fn upload_monolithic(
    api: &RegistryApi,
    target: &PushTarget,
    blob: &PushBlob,
    location: url::Url,
) -> Result<()> {
    let body = blob.body.range(0, blob.size);
    finish_upload(api, target, blob, location, body).await
}

/// Sends the blob in `PATCH` requests of at most `chunk_size` bytes, following the
/// `Location` each response returns, then closes the session with an empty `PUT`.
async fn upload_chunked(
    api: &RegistryApi,
    target: &PushTarget,
    blob: &PushBlob,
    mut location: url::Url,
    chunk_size: u64,
) -> Result<()> {
    let mut start = 0;
    while start < blob.size {
        let length = chunk_size.min(blob.size - start);
        let end = start + length - 1;
        let request = ApiRequest::new(Method::PATCH, location.to_string(), target.scopes.clone())
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
    finish_upload(api, target, blob, location, RequestBody::Empty).await
}

/// Puts the manifest under `tag` (a tag or the digest) and checks the digest the registry
/// stored, when its response names one.
async fn put_manifest(
    api: &RegistryApi,
    target: &PushTarget,
    tag: &str,
    image: &LoadedImage,
    digest: &str,
) -> Result<()> {
    let repository = target.repository.as_str();
    let media_type = image.rendered.manifest_descriptor.media_type.clone();
    let body = Bytes::from(image.rendered.manifest_json.clone());
    // NOTE: `push_manifest_raw` panics on a 201 without `Location` (as ECR sends) when the
    // reference is a digest, so a digest destination stays on hoist's own request.
    let oci = if tag.starts_with("sha256:") {
        None
    } else {
        api.oci_for(&target.scopes).await?
    };
    let stored = match oci {
        Some(oci) => {
            let location = api
                .oci_put_manifest(oci, repository, tag, &body, &media_type, &target.scopes)
                .await?;
            digest_in_location(&location)
        }
        None => {
            let url = api.url(&format!("/v2/{repository}/manifests/{tag}"));
            let request = ApiRequest::new(Method::PUT, url, target.scopes.clone())
                .header(header::CONTENT_TYPE, media_type)
                .body(RequestBody::Bytes(body));
            let response = api.send_expecting(&request, &[StatusCode::CREATED]).await?;
            header_text(
                response.headers(),
                HeaderName::from_static("docker-content-digest"),
            )
        }
    };
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

/// Returns the digest a manifest's `Location` ends with, such as
/// `/v2/app/manifests/sha256:<hex>`, when it names one.
fn digest_in_location(location: &str) -> Option<String> {
    let path = location.split(['?', '#']).next().unwrap_or_default();
    path.rsplit('/')
        .next()
        .filter(|last| last.starts_with("sha256:"))
        .map(ToOwned::to_owned)
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
    fn destination_digest_must_match_image() {
        let image = format!("sha256:{}", "1".repeat(64));
        let other = format!("sha256:{}", "2".repeat(64));
        let matching = [
            reference("r.example/app:v1"),
            reference(&format!("r.example/app@{image}")),
        ];
        assert!(check_push_destinations(&image, &matching).is_ok());

        let wrong = [
            reference("r.example/app:v1"),
            reference(&format!("r.example/app@{other}")),
        ];
        let error = check_push_destinations(&image, &wrong).unwrap_err();
        assert!(matches!(error, Error::DestinationDigest { .. }), "{error}");
        let message = error.to_string();
        assert!(
            message.contains(&format!("r.example/app@{other}")),
            "{message}"
        );
        assert!(message.contains(&image), "{message}");

        let both = [reference(&format!("r.example/app:v1@{image}"))];
        let error = check_push_destinations(&image, &both).unwrap_err();
        assert!(matches!(error, Error::InvalidReference { .. }), "{error}");
    }

    #[test]
    fn manifest_location_names_digest() {
        let digest = format!("sha256:{}", "b".repeat(64));
        assert_eq!(
            digest_in_location(&format!("http://r.example/v2/app/manifests/{digest}")),
            Some(digest.clone())
        );
        assert_eq!(
            digest_in_location(&format!("/v2/app/manifests/{digest}?ns=x")),
            Some(digest)
        );
        assert_eq!(digest_in_location("/v2/app/manifests/v1"), None);
    }

    #[test]
    fn mount_sources_join_target_scopes() {
        let blob = |mount_from: Option<&str>| PushBlob {
            digest: String::new(),
            size: 0,
            body: BlobBody::Bytes(Bytes::new()),
            mount_from: mount_from.map(ToOwned::to_owned),
        };
        let target = PushTarget::new(
            "app",
            &[
                blob(Some("base")),
                blob(None),
                blob(Some("base")),
                blob(Some("other")),
            ],
        );
        assert_eq!(
            target.scopes,
            [
                "repository:app:pull,push",
                "repository:base:pull",
                "repository:other:pull"
            ]
        );
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
