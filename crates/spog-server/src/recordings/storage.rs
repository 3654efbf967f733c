//! Where recordings are kept once sealed (SPEC 8.3): the data directory or S3-compatible object
//! storage, both behind `object_store`, so that everything above writes, reads and deletes
//! objects one way. A recording sealed to one backend stays readable from it after the
//! configuration moves to the other (`spog recordings copy-to-storage` moves them).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio_util::io::StreamReader;

use crate::config::Config;

/// Which storage holds a sealed recording (its `storage` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Local,
    S3,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::S3 => "s3",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "local" => Some(Backend::Local),
            "s3" => Some(Backend::S3),
            _ => None,
        }
    }
}

/// `recordings_storage` as read: `local`, or a bucket and a prefix in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Local,
    S3 { bucket: String, prefix: String },
}

impl Location {
    pub fn parse(value: &str) -> Result<Self, String> {
        if value == "local" {
            return Ok(Location::Local);
        }
        let Some(rest) = value.strip_prefix("s3://") else {
            return Err("recordings_storage must be `local` or `s3://bucket/prefix`".into());
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err("recordings_storage names no bucket (`s3://bucket/prefix`)".into());
        }
        Ok(Location::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }
}

/// One place objects are kept, keys relative to its root.
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// The directory of local objects (they are moved in by a rename).
    root: Option<PathBuf>,
    prefix: String,
    /// What a key is shown under in `file_path`: a directory or `s3://bucket[/prefix]`.
    shown: String,
}

/// The local objects, and S3's when configured; new recordings seal to `current`.
pub struct Storage {
    pub current: Backend,
    local: Objects,
    s3: Option<Objects>,
}

impl Storage {
    /// The storages `config` names; nothing is contacted yet ([`Self::probe`] does).
    pub fn open(config: &Config) -> Result<Self, String> {
        let root = config.data_dir.join("recordings");
        crate::private_files::create_dir(&root)
            .map_err(|e| format!("creating {}: {e}", root.display()))?;
        let local = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| format!("opening {}: {e}", root.display()))?;
        let local = Objects {
            store: Arc::new(local),
            shown: absolute(&root).display().to_string(),
            root: Some(root),
            prefix: String::new(),
        };
        let (current, s3) = match Location::parse(&config.recordings_storage)? {
            Location::Local => (Backend::Local, None),
            Location::S3 { bucket, prefix } => {
                (Backend::S3, Some(s3_objects(config, &bucket, prefix)?))
            }
        };
        Ok(Self { current, local, s3 })
    }

    /// The objects of `backend`; an error when a recording names S3 but none is configured.
    pub fn objects(&self, backend: Backend) -> io::Result<&Objects> {
        match backend {
            Backend::Local => Ok(&self.local),
            Backend::S3 => self.s3.as_ref().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "the recording is in object storage, and recordings_storage names none",
                )
            }),
        }
    }

    /// Where new recordings are sealed to.
    pub fn current(&self) -> &Objects {
        match (&self.current, &self.s3) {
            (Backend::S3, Some(s3)) => s3,
            _ => &self.local,
        }
    }

    /// Writes, reads and deletes an object in the current storage, so that a wrong endpoint,
    /// bucket or credential stops the start with a clear message instead of losing
    /// recordings later.
    pub async fn probe(&self) -> Result<(), String> {
        let objects = self.current();
        let key = format!(".spog-probe/{}", uuid::Uuid::now_v7());
        let body = Bytes::from_static(b"spog storage probe");
        let fail = |step: &str, error: io::Error| {
            format!(
                "recordings_storage {}: cannot {step} a probe object: {error}",
                objects.shown
            )
        };
        objects
            .put(&key, body.clone())
            .await
            .map_err(|e| fail("write", e))?;
        let read: Vec<Bytes> = objects
            .get(&key)
            .await
            .map_err(|e| fail("read", e))?
            .try_collect()
            .await
            .map_err(|e| fail("read", e))?;
        if read.concat() != body {
            return Err(fail("read back", io::Error::other("it differs")));
        }
        objects.delete(&key).await.map_err(|e| fail("delete", e))
    }
}

fn s3_objects(config: &Config, bucket: &str, prefix: String) -> Result<Objects, String> {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_region(&config.s3_region)
        .with_allow_http(config.s3_allow_http)
        .with_virtual_hosted_style_request(config.s3_virtual_hosted_style);
    if let Some(endpoint) = &config.s3_endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    match (&config.s3_access_key_id, &config.s3_secret_access_key) {
        (Some(id), Some(secret)) => {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret.expose());
        }
        (None, None) => {}
        _ => {
            return Err(
                "s3_access_key_id and s3_secret_access_key go together (or neither, for the \
                 standard AWS credentials)"
                    .into(),
            );
        }
    }
    let store = builder
        .build()
        .map_err(|e| format!("recordings_storage: {e}"))?;
    let shown = match prefix.as_str() {
        "" => format!("s3://{bucket}"),
        prefix => format!("s3://{bucket}/{prefix}"),
    };
    Ok(Objects {
        store: Arc::new(store),
        root: None,
        prefix,
        shown,
    })
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

fn io_error(error: object_store::Error) -> io::Error {
    match error {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, error),
        error => io::Error::other(error),
    }
}

impl Objects {
    fn key(&self, key: &str) -> Key {
        match self.prefix.as_str() {
            "" => Key::from(key),
            prefix => Key::from(format!("{prefix}/{key}")),
        }
    }

    /// Where `key` is, as `file_path` shows it.
    pub fn shown(&self, key: &str) -> String {
        format!("{}/{key}", self.shown)
    }

    pub async fn put(&self, key: &str, body: Bytes) -> io::Result<()> {
        self.store
            .put(&self.key(key), PutPayload::from(body))
            .await
            .map(|_| ())
            .map_err(io_error)
    }

    /// Uploads the file at `path` as `key`, a part at a time (multipart beyond one part), so
    /// memory stays bounded whatever its size. Returns the bytes uploaded.
    pub async fn put_file(&self, key: &str, path: &Path) -> io::Result<u64> {
        self.put_reader(key, tokio::fs::File::open(path).await?)
            .await
    }

    /// Copies `key` into `to` under the same key, streamed as [`Self::put_file`] does.
    /// Returns the bytes copied.
    pub async fn copy_to(&self, key: &str, to: &Objects) -> io::Result<u64> {
        to.put_reader(key, StreamReader::new(self.get(key).await?))
            .await
    }

    async fn put_reader(&self, key: &str, mut reader: impl AsyncRead + Unpin) -> io::Result<u64> {
        let mut writer = BufWriter::new(self.store.clone(), self.key(key));
        let copied = match tokio::io::copy(&mut reader, &mut writer).await {
            Ok(copied) => copied,
            Err(error) => {
                let _ = writer.abort().await;
                return Err(error);
            }
        };
        writer.shutdown().await?;
        Ok(copied)
    }

    /// Moves the local file at `path` in as `key`: a rename into the data directory, or an
    /// upload after which the file is removed.
    pub async fn move_file(&self, key: &str, path: &Path) -> io::Result<()> {
        match &self.root {
            Some(root) => {
                let (from, to) = (path.to_owned(), root.join(key));
                tokio::task::spawn_blocking(move || {
                    if let Some(dir) = to.parent() {
                        crate::private_files::create_dir(dir)?;
                    }
                    std::fs::rename(from, to)
                })
                .await?
            }
            None => {
                self.put_file(key, path).await?;
                tokio::fs::remove_file(path).await
            }
        }
    }

    /// The bytes of `key`, as they arrive; `NotFound` when there is no such object.
    pub async fn get(
        &self,
        key: &str,
    ) -> io::Result<impl Stream<Item = io::Result<Bytes>> + Send + 'static + use<>> {
        let result = self.store.get(&self.key(key)).await.map_err(io_error)?;
        Ok(result.into_stream().map_err(io_error))
    }

    /// The object's size; `NotFound` when there is none.
    pub async fn size(&self, key: &str) -> io::Result<u64> {
        let meta = self.store.head(&self.key(key)).await.map_err(io_error)?;
        Ok(meta.size)
    }

    /// Deletes `key`; a missing object is already deleted.
    pub async fn delete(&self, key: &str) -> io::Result<()> {
        match self.store.delete(&self.key(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(io_error(error)),
        }
    }

    /// The keys under `prefix` (relative, as given to [`Self::put`]), in order.
    pub async fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let full = self.key(prefix);
        let strip = match self.prefix.as_str() {
            "" => 0,
            prefix => prefix.len() + 1,
        };
        let mut keys: Vec<String> = self
            .store
            .list(Some(&full))
            .map_ok(|meta| meta.location.as_ref()[strip..].to_owned())
            .try_collect()
            .await
            .map_err(io_error)?;
        keys.sort();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(Location::parse("local"), Ok(Location::Local));
        assert_eq!(
            Location::parse("s3://rec/a/b/"),
            Ok(Location::S3 {
                bucket: "rec".into(),
                prefix: "a/b".into()
            })
        );
        assert_eq!(
            Location::parse("s3://rec"),
            Ok(Location::S3 {
                bucket: "rec".into(),
                prefix: String::new()
            })
        );
        assert!(Location::parse("s3://").is_err());
        assert!(Location::parse("/var/rec").is_err());
    }
}
