//! Where uploaded files live: a thin wrapper around the `object_store` crate, so the same code
//! writes to a local folder (the embedded default) or to any S3-compatible store.
//!
//! Objects are content-addressed: a file's name is its sha256 (`ab/cd/abcd…`), so the same
//! picture uploaded twice is stored once, and a name never points at other bytes than it did.
//! The local store writes to a staging file and renames it into place, so a crash leaves no
//! half-written object under a real name.

use std::{ops::Range, path::PathBuf, sync::Arc};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream::BoxStream};
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, aws::AmazonS3Builder, local::LocalFileSystem,
    path::Path, prefix::PrefixStore,
};

use crate::config::StorageSettings;

/// A parsed `storage.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `file://data/blobs` (relative to the working directory) or `file:///var/lib/gw/blobs`.
    Directory(PathBuf),
    /// `s3://bucket` or `s3://bucket/prefix`.
    S3 { bucket: String, prefix: String },
}

impl Location {
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err("file:// needs a folder, like file://data/blobs".into());
            }
            return Ok(Self::Directory(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            if !valid_bucket {
                return Err(format!("`{bucket}` is not an S3 bucket name (3–63 of a-z, 0-9, '-', '.')"));
            }
            return Ok(Self::S3 { bucket: bucket.to_owned(), prefix: prefix.trim_matches('/').to_owned() });
        }
        Err("must start with file:// or s3://".into())
    }
}

/// An error of the object store, with its cause.
#[derive(Debug, thiserror::Error)]
#[error("object storage: {context}")]
pub struct StorageError {
    context: String,
    #[source]
    source: object_store::Error,
}

impl StorageError {
    fn new(context: impl Into<String>, source: object_store::Error) -> Self {
        Self { context: context.into(), source }
    }

    /// The object is not there (deleted, or never written).
    pub fn is_not_found(&self) -> bool {
        matches!(self.source, object_store::Error::NotFound { .. })
    }
}

impl From<StorageError> for crate::error::AppError {
    fn from(err: StorageError) -> Self {
        crate::error::AppError::internal_from("object storage", err)
    }
}

/// The object store uploaded files are kept in. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    description: String,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("location", &self.description).finish()
    }
}

/// One stored object, as a listing shows it.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub sha256: String,
    pub last_modified: DateTime<Utc>,
}

/// The bytes of an object (or of a range of it), as a stream.
pub struct Fetched {
    pub range: Range<u64>,
    pub stream: BoxStream<'static, Result<Bytes, StorageError>>,
}

impl Storage {
    /// Opens the store `storage.url` names; a local folder is created when missing.
    pub fn open(settings: &StorageSettings) -> Result<Self, String> {
        match Location::parse(&settings.url)? {
            Location::Directory(path) => {
                std::fs::create_dir_all(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                let store = LocalFileSystem::new_with_prefix(&path).map_err(|e| e.to_string())?;
                // Emptied directories (after deletions) are removed too.
                let store = store.with_automatic_cleanup(true);
                Ok(Self { store: Arc::new(store), description: settings.url.clone() })
            }
            Location::S3 { bucket, prefix } => {
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(&bucket)
                    .with_region(&settings.s3_region)
                    .with_allow_http(settings.s3_allow_http);
                if !settings.s3_endpoint.is_empty() {
                    // MinIO and most city clouds answer path-style requests on their own host.
                    builder = builder.with_endpoint(&settings.s3_endpoint).with_virtual_hosted_style_request(false);
                }
                if !settings.s3_access_key_id.is_empty() {
                    builder = builder
                        .with_access_key_id(&settings.s3_access_key_id)
                        .with_secret_access_key(&settings.s3_secret_access_key);
                }
                let store = builder.build().map_err(|e| e.to_string())?;
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(store)
                } else {
                    Arc::new(PrefixStore::new(store, prefix.as_str()))
                };
                Ok(Self { store, description: settings.url.clone() })
            }
        }
    }

    fn path_of(sha256: &str) -> Path {
        let (a, b) = (sha256.get(0..2).unwrap_or("00"), sha256.get(2..4).unwrap_or("00"));
        Path::from(format!("{a}/{b}/{sha256}"))
    }

    /// Stores `bytes` under their sha256 (given: the caller computed it while producing them).
    /// Writing the same content again is harmless.
    pub async fn put(&self, sha256: &str, bytes: Bytes) -> Result<(), StorageError> {
        self.store
            .put(&Self::path_of(sha256), PutPayload::from_bytes(bytes))
            .await
            .map(|_| ())
            .map_err(|e| StorageError::new(format!("writing {sha256}"), e))
    }

    /// The object's bytes, or the `range` of them, as a stream.
    pub async fn get(&self, sha256: &str, range: Option<Range<u64>>) -> Result<Fetched, StorageError> {
        let options = GetOptions { range: range.map(GetRange::Bounded), ..Default::default() };
        let result = self
            .store
            .get_opts(&Self::path_of(sha256), options)
            .await
            .map_err(|e| StorageError::new(format!("reading {sha256}"), e))?;
        let range = result.range.clone();
        let context = format!("streaming {sha256}");
        let stream = result.into_stream().map(move |chunk| chunk.map_err(|e| StorageError::new(context.clone(), e)));
        Ok(Fetched { range, stream: stream.boxed() })
    }

    /// Removes the object; one already gone is no error.
    pub async fn delete(&self, sha256: &str) -> Result<(), StorageError> {
        match self.store.delete(&Self::path_of(sha256)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StorageError::new(format!("deleting {sha256}"), e)),
        }
    }

    /// Every object in the store whose name is a sha256 (anything else is not ours and is left).
    pub async fn list(&self) -> Result<Vec<StoredObject>, StorageError> {
        let mut listing = self.store.list(None);
        let mut objects = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| StorageError::new("listing", e))?;
            let Some(name) = meta.location.filename() else { continue };
            if name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()) {
                objects.push(StoredObject { sha256: name.to_owned(), last_modified: meta.last_modified });
            }
        }
        Ok(objects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_urls() {
        assert_eq!(Location::parse("file://data/blobs"), Ok(Location::Directory(PathBuf::from("data/blobs"))));
        assert_eq!(Location::parse("file:///var/lib/gw"), Ok(Location::Directory(PathBuf::from("/var/lib/gw"))));
        assert_eq!(
            Location::parse("s3://city-photos/gridwhistle/"),
            Ok(Location::S3 { bucket: "city-photos".into(), prefix: "gridwhistle".into() })
        );
        assert_eq!(Location::parse("s3://bucket"), Ok(Location::S3 { bucket: "bucket".into(), prefix: String::new() }));
        assert!(Location::parse("s3://Bad_Bucket").is_err());
        assert!(Location::parse("ftp://x").is_err());
        assert!(Location::parse("file://").is_err());
    }
}
