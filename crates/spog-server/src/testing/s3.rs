//! A real S3-compatible server on 127.0.0.1 for tests and benchmarks: moto's server (PyPI
//! `moto[server]`), one per caller, stopped when dropped. Without it, the tests that need it
//! say loudly that they are skipped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::config::{Config, Secret};

pub struct S3Server {
    pub port: u16,
    child: Child,
}

/// Why an S3 server cannot run here, if it cannot.
pub fn missing() -> Option<String> {
    let found = Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!found).then(|| "moto_server is not installed (pip install 'moto[server]')".to_owned())
}

impl S3Server {
    /// A server listening on a free port; `None` (after saying so) without moto.
    pub async fn start() -> Option<S3Server> {
        if let Some(reason) = missing() {
            eprintln!("\n*** object storage test SKIPPED: {reason} ***\n");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let server = S3Server { port, child };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client.get(server.endpoint()).send().await.is_ok() {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("moto_server did not answer on port {port} within 10 s");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` (path-style, as the service is configured).
    pub async fn create_bucket(&self, bucket: &str) {
        let response = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint()))
            .header("content-length", "0")
            .send()
            .await
            .expect("moto answers");
        assert!(response.status().is_success(), "creating bucket {bucket}");
    }

    /// `config` keeping recordings in `bucket` (created now) under `prefix`.
    pub async fn configure(&self, config: &mut Config, bucket: &str, prefix: &str) {
        self.create_bucket(bucket).await;
        config.recordings_storage = format!("s3://{bucket}/{prefix}");
        config.s3_endpoint = Some(self.endpoint());
        config.s3_allow_http = true;
        config.s3_access_key_id = Some("test".to_owned());
        config.s3_secret_access_key = Some(Secret::new("test"));
    }

    /// A client of `bucket`, as someone with access to it (not the service) uses it.
    fn bucket(&self, bucket: &str) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .expect("an S3 client")
    }

    /// The object at `key` of `bucket`, as stored.
    pub async fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let got = self.bucket(bucket).get(&Path::from(key)).await.ok()?;
        Some(got.bytes().await.expect("the object").to_vec())
    }

    /// Replaces (or creates) the object at `key`.
    pub async fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.bucket(bucket)
            .put(&Path::from(key), PutPayload::from(body))
            .await
            .expect("writing an object");
    }

    pub async fn delete_object(&self, bucket: &str, key: &str) {
        self.bucket(bucket)
            .delete(&Path::from(key))
            .await
            .expect("deleting an object");
    }

    /// The keys of `bucket` under `prefix`.
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        self.bucket(bucket)
            .list(Some(&Path::from(prefix)))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .expect("listing a bucket")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
