//! `GET /`: a page to try the model in a browser — choose or drop an image, see the top 5 with
//! their labels, probability bars and where the time went, with a field for the bearer token when
//! tokens are on. One HTML file with its script and style inline, served from the binary (no CDN,
//! no build step, no framework); it calls `GET /v1/model` and `POST /v1/classify`.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The page.
pub const PAGE_HTML: &str = include_str!("page.html");

/// `GET /`.
pub async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 img-src blob: data:; connect-src 'self'",
            ),
        ],
        PAGE_HTML,
    )
        .into_response()
}
