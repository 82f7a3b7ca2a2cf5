//! [`Delayed`]: any store with a fixed latency added per call.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::error::Result;
use crate::ports::{
    ByteChunks, CopyReceipt, Destination, ListCursor, MultipartUpload, ObjectHead, ObjectPage,
    ObjectRef, ObjectStore, UploadedPart, VersionPage, VersionedKey,
};

/// An [`ObjectStore`] whose every call waits `delay` first: a fixed latency per request, so a
/// test on tokio's paused clock reads how many round trips a step makes one after another
/// (and a bench models a store that serves requests in parallel).
#[derive(Debug)]
pub struct Delayed<O> {
    /// The store that answers.
    pub inner: Arc<O>,
    /// Slept before each call.
    pub delay: Duration,
}

impl<O: ObjectStore> Delayed<O> {
    async fn wait(&self) {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }
}

impl<O: ObjectStore> ObjectStore for Delayed<O> {
    async fn head(&self, o: &ObjectRef) -> Result<Option<ObjectHead>> {
        self.wait().await;
        self.inner.head(o).await
    }
    async fn get_bytes(&self, o: &ObjectRef, max: u64) -> Result<Bytes> {
        self.wait().await;
        self.inner.get_bytes(o, max).await
    }
    async fn get_stream(&self, o: &ObjectRef) -> Result<ByteChunks> {
        self.wait().await;
        self.inner.get_stream(o).await
    }
    async fn get_range(&self, o: &ObjectRef, r: Range<u64>) -> Result<ByteChunks> {
        self.wait().await;
        self.inner.get_range(o, r).await
    }
    async fn get_tags(&self, o: &ObjectRef) -> Result<BTreeMap<String, String>> {
        self.wait().await;
        self.inner.get_tags(o).await
    }
    async fn put_bytes(&self, d: &Destination, body: Bytes) -> Result<Option<String>> {
        self.wait().await;
        self.inner.put_bytes(d, body).await
    }
    async fn copy(&self, s: &ObjectRef, d: &Destination) -> Result<()> {
        self.wait().await;
        self.inner.copy(s, d).await
    }
    async fn copy_with_sha256(&self, s: &ObjectRef, d: &Destination) -> Result<CopyReceipt> {
        self.wait().await;
        self.inner.copy_with_sha256(s, d).await
    }
    async fn list_objects(&self, b: &str, p: &str, c: Option<&str>) -> Result<ObjectPage> {
        self.wait().await;
        self.inner.list_objects(b, p, c).await
    }
    async fn create_multipart(&self, d: &Destination) -> Result<MultipartUpload> {
        self.wait().await;
        self.inner.create_multipart(d).await
    }
    async fn upload_part(&self, u: &MultipartUpload, n: i32, body: Bytes) -> Result<UploadedPart> {
        self.wait().await;
        self.inner.upload_part(u, n, body).await
    }
    async fn upload_part_copy(
        &self,
        u: &MultipartUpload,
        n: i32,
        s: &ObjectRef,
        r: Range<u64>,
    ) -> Result<UploadedPart> {
        self.wait().await;
        self.inner.upload_part_copy(u, n, s, r).await
    }
    async fn complete_multipart(&self, u: &MultipartUpload, parts: &[UploadedPart]) -> Result<()> {
        self.wait().await;
        self.inner.complete_multipart(u, parts).await
    }
    async fn abort_multipart(&self, u: &MultipartUpload) -> Result<()> {
        self.wait().await;
        self.inner.abort_multipart(u).await
    }
    async fn list_multipart_uploads(
        &self,
        b: &str,
        p: &str,
    ) -> Result<Vec<crate::ports::OpenUpload>> {
        self.wait().await;
        self.inner.list_multipart_uploads(b, p).await
    }
    async fn list_versions(&self, b: &str, p: &str, c: Option<&ListCursor>) -> Result<VersionPage> {
        self.wait().await;
        self.inner.list_versions(b, p, c).await
    }
    async fn delete_versions(&self, b: &str, o: &[VersionedKey]) -> Result<()> {
        self.wait().await;
        self.inner.delete_versions(b, o).await
    }
}
