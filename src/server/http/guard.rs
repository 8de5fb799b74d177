//! What stands in front of every HTTP route ([`guard`]), in this order: `--max-in-flight` (429 at
//! the headers; the probes and the page are exempt and take no place), the bearer token (401;
//! every route but `/`, `/v2/health/live` and `/v2/health/ready`), and the call's deadline — the
//! client's `X-Request-Timeout` (seconds, decimals allowed) and, on the inference routes,
//! `--request-timeout`; past it the call is answered 504 and its work dropped at every stage, as
//! over gRPC. The request id and the trace span come from
//! [`crate::server::layers::request_id::RequestIdLayer`], outside this.

use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::errors::HttpError;
use super::HttpState;
use crate::server::call::deadline::call_deadline;
use crate::server::metrics::names;

/// The client's timeout header: seconds (`2.5`), like `--request-timeout`.
pub const TIMEOUT_HEADER: &str = "x-request-timeout";

/// Longest timeout a client may ask for: a day.
const MAX_CLIENT_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Routes without a token and without an in-flight place: the probes and the static page.
fn is_open_route(path: &str) -> bool {
    matches!(path, "/" | "/v2/health/live" | "/v2/health/ready")
}

/// Routes that run the model (the server's `--request-timeout` applies to them).
pub fn is_inference_route(path: &str) -> bool {
    path == "/v1/classify" || (path.starts_with("/v2/models/") && path.ends_with("/infer"))
}

/// Parse `X-Request-Timeout`: a non-negative decimal number of seconds, at most a day.
pub fn parse_timeout(value: &str) -> Result<Duration, String> {
    let seconds: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("{TIMEOUT_HEADER} {value:?} is not a number of seconds"))?;
    if !seconds.is_finite() || seconds < 0.0 || seconds > MAX_CLIENT_TIMEOUT.as_secs_f64() {
        return Err(format!(
            "{TIMEOUT_HEADER} {value:?} is not between 0 and {} seconds",
            MAX_CLIENT_TIMEOUT.as_secs()
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The middleware of every route.
pub async fn guard(State(state): State<HttpState>, mut request: Request, next: Next) -> Response {
    let arrived = Instant::now();
    let path = request.uri().path().to_string();
    if is_open_route(&path) {
        return next.run(request).await;
    }
    let Ok(place) = std::sync::Arc::clone(&state.places).try_acquire_owned() else {
        metrics::counter!(names::CALLS_REFUSED_TOTAL, "reason" => names::refused::IN_FLIGHT)
            .increment(1);
        return HttpError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many calls in flight: the server takes {} at once (--max-in-flight); retry later",
                state.max_in_flight
            ),
        )
        .into_response();
    };
    let authorization = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    if let Err(status) = state.authenticate.check_authorization(authorization) {
        let mut response = HttpError::from(status).into_response();
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    let client = match request.headers().get(TIMEOUT_HEADER) {
        None => None,
        Some(v) => match v
            .to_str()
            .map_err(|_| "not ASCII".to_string())
            .and_then(parse_timeout)
        {
            Ok(t) => Some(t),
            Err(why) => return HttpError::bad_request(why).into_response(),
        },
    };
    let server = state
        .pipeline
        .config()
        .request_timeout
        .filter(|_| is_inference_route(&path));
    let deadline = call_deadline(client, server, arrived);
    if let Some(deadline) = deadline {
        request.extensions_mut().insert(deadline);
    }
    metrics::gauge!(names::CALLS_IN_FLIGHT).increment(1.0);
    let answer = match deadline {
        None => next.run(request).await,
        Some(deadline) => {
            match tokio::time::timeout_at(deadline.at.into(), next.run(request)).await {
                Ok(answer) => answer,
                Err(_) => {
                    HttpError::from(deadline.status("before the call was answered")).into_response()
                }
            }
        }
    };
    metrics::gauge!(names::CALLS_IN_FLIGHT).decrement(1.0);
    drop(place);
    answer
}

/// 404 for a path no route serves.
pub async fn not_found(request: Request) -> Response {
    HttpError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route {} (see GET / and docs/api.md)",
            crate::server::log_text::untrusted(request.uri().path())
        ),
    )
    .into_response()
}

/// 405 for a route asked with another method.
pub async fn method_not_allowed(request: Request) -> Response {
    HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not served on {}",
            request.method(),
            crate::server::log_text::untrusted(request.uri().path())
        ),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_timeouts_are_seconds() {
        assert_eq!(parse_timeout("2.5").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_timeout("0").unwrap(), Duration::ZERO);
        for bad in ["", "-1", "abc", "1e9", "NaN", "inf"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
        assert!(is_inference_route("/v2/models/m/versions/1/infer"));
        assert!(is_inference_route("/v1/classify"));
        assert!(!is_inference_route("/v2/models/m/ready"));
    }
}
