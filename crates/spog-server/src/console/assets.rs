//! The console's static files, embedded in the binary: our own under `assets/`, third-party
//! packages from `web/node_modules` (installed by build.rs) under `vendor/`. Pages link them
//! under `/assets/<fingerprint>/…`, where the fingerprint changes whenever any file does, so
//! browsers may cache them forever; ES modules importing each other by relative path stay
//! under the same fingerprint.

use std::borrow::Cow;
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Own;

#[derive(RustEmbed)]
#[folder = "../../web/node_modules/"]
#[include = "htmx.org/dist/htmx.min.js"]
#[include = "asciinema-player/dist/bundle/asciinema-player.min.js"]
#[include = "asciinema-player/dist/bundle/asciinema-player.css"]
// The web terminal's xterm.js and its fit addon as ES modules, imported by `js/terminal.js`.
#[include = "@xterm/xterm/lib/xterm.mjs"]
#[include = "@xterm/xterm/css/xterm.css"]
#[include = "@xterm/addon-fit/lib/addon-fit.mjs"]
struct Vendor;

const VENDOR_PREFIX: &str = "vendor/";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// A file and the strong ETag of its contents.
struct Asset {
    data: Cow<'static, [u8]>,
    etag: String,
}

fn find(path: &str) -> Option<Asset> {
    let file = match path.strip_prefix(VENDOR_PREFIX) {
        Some(vendored) => Vendor::get(vendored),
        None => Own::get(path),
    }?;
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    Some(Asset {
        data: file.data,
        etag,
    })
}

/// One hash over every embedded file's path and contents.
static FINGERPRINT: LazyLock<String> = LazyLock::new(|| {
    let mut hasher = Sha256::new();
    let own = Own::iter().map(|p| (p.clone(), Own::get(&p)));
    let vendor =
        Vendor::iter().map(|p| (Cow::Owned(format!("{VENDOR_PREFIX}{p}")), Vendor::get(&p)));
    let mut files: Vec<_> = own.chain(vendor).collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, file) in files {
        hasher.update(path.as_bytes());
        if let Some(file) = file {
            hasher.update(file.metadata.sha256_hash());
        }
    }
    hex::encode(&hasher.finalize()[..6])
});

/// Where pages find the assets: `/assets/<fingerprint>`.
pub fn base() -> String {
    format!("/assets/{}", *FINGERPRINT)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        // ES modules are served as JavaScript whatever their extension (`nosniff` refuses others).
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// `GET /assets/{fingerprint}/{*path}`: long-cached under the current fingerprint; under an
/// older one (a page from before an upgrade) the current file, revalidated each time.
pub async fn serve(
    Path((fingerprint, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(asset) = find(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let cache = if fingerprint == *FINGERPRINT {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let etag = HeaderValue::from_str(&asset.etag).expect("hex is a valid header value");
    let cached = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sent| {
            sent.split(',')
                .any(|tag| tag.trim() == asset.etag || tag.trim() == "*")
        });
    let mut response = if cached {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(CONTENT_TYPE, HeaderValue::from_static(content_type(&path)))],
            asset.data,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(ETAG, etag);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_and_vendored_files_are_embedded() {
        assert!(find("console.css").is_some());
        assert!(find("js/console.js").is_some());
        let htmx = find("vendor/htmx.org/dist/htmx.min.js").expect("htmx is embedded");
        assert!(htmx.data.len() > 10_000);
        assert!(
            find("vendor/htmx.org/package.json").is_none(),
            "only what pages use"
        );
        let xterm = find("vendor/@xterm/xterm/lib/xterm.mjs").expect("xterm.js is embedded");
        assert!(xterm.data.len() > 100_000);
        assert!(find("vendor/@xterm/addon-fit/lib/addon-fit.mjs").is_some());
        assert_eq!(
            content_type("x/addon-fit.mjs"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(base().len(), "/assets/".len() + 12);
    }
}
