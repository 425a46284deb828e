//! The HTTP face of ssmd: awsJson1_1 over `POST /` exactly as SSM speaks it.
//!
//! For each request: the body is read (size-limited, chunked accepted), `X-Amz-Target` names
//! the operation (`UnknownOperationException` otherwise), the SigV4 signature is verified, the
//! JSON is parsed (`SerializationException`), and the operation runs through
//! `ssmd_api::Service::call`. Every response carries `x-amzn-RequestId`; errors are the
//! `{"__type": ...}` envelope with the model's status. A panic inside an operation becomes an
//! opaque `InternalServerError`, logged once with its request id.
//!
//! The agent's private operations, which the public model lacks (registration, RSA-signed
//! credentials, health pings), are routed to `node` first.
//!
//! `GET /health` answers 200 once the server is ready; `GET /metrics` serves Prometheus text.

pub mod auth;
pub mod node;

pub use ssmd_sigv4 as sigv4;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use http_body_util::BodyExt;
use metrics_exporter_prometheus::PrometheusHandle;
use ssmd_core::Clock;
use ssmd_model::{ApiError, ErrorCode, Operation};
use std::sync::Arc;
use std::time::Instant;

pub use auth::Authenticator;

/// The largest request body accepted (SSM's documents are at most 64 KB; JSON escaping and
/// the other members stay well within this).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The content type of awsJson1_1.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Everything a request handler needs.
pub struct AppState {
    /// Verifies signatures.
    pub auth: Authenticator,
    /// Runs operations.
    pub service: Arc<ssmd_api::Service>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Renders `/metrics`.
    pub metrics: Option<PrometheusHandle>,
}

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight requests finish
/// (for up to 30 s). A client that does not send a complete request head within
/// `header_timeout` (counted from the connection's start or its previous response) is
/// disconnected, so idle or stalled clients cannot hold connections forever.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
    header_timeout: std::time::Duration,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = hyper_util::service::TowerToHyperService::new(router.clone());
                let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(std::time::Duration::from_secs(30), graceful.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within 30 s of shutdown");
    }
    Ok(())
}

/// The router with every route ssmd serves.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", post(api))
        .route("/health", get(|| async { "ok" }))
        .route("/v1/control-channel/{id}", post(control_channel))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(axum::middleware::map_response(ensure_request_id))
        .with_state(state)
}

/// Every response carries `x-amzn-RequestId`, including health, metrics and unknown routes.
async fn ensure_request_id(mut r: Response) -> Response {
    if !r.headers().contains_key("x-amzn-requestid")
        && let Ok(v) = HeaderValue::from_str(&ssmd_core::ids::uuid())
    {
        r.headers_mut().insert("x-amzn-RequestId", v);
    }
    r
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = state.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    let mut r = Response::new(Body::from(text));
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    r
}

/// `ssmmessages` CreateControlChannel: refused (see `node`).
async fn control_channel() -> Response {
    let (status, body) = node::refuse_control_channel();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    r
}

async fn not_found(method: Method, uri: Uri) -> Response {
    let err = ApiError::new(ErrorCode::UnknownOperationException, format!("No route for {method} {}.", uri.path()));
    let mut r = error_response(&err, &ssmd_core::ids::uuid());
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

fn response(status: u16, body: Vec<u8>, request_id: &str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-RequestId", v);
    }
    r
}

fn error_response(err: &ApiError, request_id: &str) -> Response {
    response(err.code().status(), err.body(), request_id)
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(ApiError::new(
            ErrorCode::RequestEntityTooLargeException,
            format!("The request body exceeds the limit of {MAX_BODY_BYTES} bytes."),
        )),
        Err(_) => Err(ApiError::new(ErrorCode::SerializationException, "The request body could not be read.")),
    }
}

fn operation(headers: &HeaderMap) -> Result<Operation, ApiError> {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    let prefix = ssmd_model::generated::schema::TARGET_PREFIX;
    target.strip_prefix(prefix).and_then(|t| t.strip_prefix('.')).and_then(Operation::from_name).ok_or_else(|| {
        if target.is_empty() {
            ApiError::new(ErrorCode::UnknownOperationException, "The request has no X-Amz-Target header.")
        } else {
            ApiError::new(ErrorCode::UnknownOperationException, format!("Unknown operation {target}."))
        }
    })
}

async fn api(State(state): State<Arc<AppState>>, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let request_id = ssmd_core::ids::uuid();
    let start = Instant::now();
    let (op_name, result) = handle(&state, &uri, &headers, body).await;
    let (status, code, resp) = match result {
        Ok(bytes) => (200, "OK", response(200, bytes, &request_id)),
        Err(err) => {
            if let Some(detail) = err.internal_detail() {
                tracing::error!(request_id, operation = op_name, detail, "internal error");
            } else {
                tracing::debug!(request_id, operation = op_name, error = %err, "request refused");
            }
            (err.code().status(), err.code().name(), error_response(&err, &request_id))
        }
    };
    metrics::counter!("ssmd_requests_total", "operation" => op_name, "code" => code).increment(1);
    metrics::histogram!("ssmd_request_seconds", "operation" => op_name).record(start.elapsed().as_secs_f64());
    tracing::trace!(request_id, operation = op_name, status, "request served");
    resp
}

/// The public operations a managed node's own credentials may call: what the SSM Agent calls
/// (documents, parameters, associations, inventory, compliance). Anything else — SendCommand
/// above all — is refused, so a node that is taken over cannot act on the other nodes.
pub const NODE_OPERATIONS: &[&str] = &[
    "GetDocument",
    "DescribeDocument",
    "GetParameter",
    "GetParameters",
    "ListAssociations",
    "DescribeAssociation",
    "UpdateAssociationStatus",
    "PutInventory",
    "PutComplianceItems",
];

/// Refuses a managed node's credentials for an operation nodes do not call.
fn node_may_call(caller: &ssmd_model::Caller, op: &str) -> Result<(), ApiError> {
    match ssmd_api::nodes::caller_node(caller) {
        Some(_) if !NODE_OPERATIONS.contains(&op) => Err(ApiError::new(
            ErrorCode::AccessDeniedException,
            format!("User: {} is not authorized to perform: ssm:{op}", caller.arn),
        )),
        _ => Ok(()),
    }
}

/// A request body as JSON: empty means `{}`; anything unparsable is `SerializationException`.
pub(crate) fn parse_input(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(ErrorCode::SerializationException, format!("The request body is not valid JSON: {e}"))
    })
}

async fn handle(
    state: &Arc<AppState>,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> (&'static str, Result<Vec<u8>, ApiError>) {
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return ("unknown", Err(e)),
    };
    let parts =
        auth::RequestParts { method: "POST", path: uri.path(), query: uri.query().unwrap_or(""), headers, body: &body };
    if let Some(op) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).and_then(node::operation) {
        // In a task of its own, like every operation, so that a panic is contained.
        let (state, headers, body) = (state.clone(), headers.clone(), body.clone());
        let (path, query) = (uri.path().to_string(), uri.query().unwrap_or("").to_string());
        let task = tokio::spawn(async move {
            let parts =
                auth::RequestParts { method: "POST", path: &path, query: &query, headers: &headers, body: &body };
            node::handle(&state, op, &parts).await
        });
        let result = task.await.unwrap_or_else(|e| Err(ApiError::internal(format!("operation task failed: {e}"))));
        return (op, result);
    }
    let op = match operation(headers) {
        Ok(op) => op,
        Err(e) => return ("unknown", Err(e)),
    };
    let name = op.info().name;
    let caller = match state.auth.authenticate(&parts, state.clock.now_ms()).await {
        Ok(c) => c,
        Err(e) => return (name, Err(e)),
    };
    if let Err(e) = node_may_call(&caller, name) {
        return (name, Err(e));
    }
    let input = match parse_input(&body) {
        Ok(v) => v,
        Err(e) => return (name, Err(e)),
    };
    let service = state.service.clone();
    // The operation runs in its own task so that a panic is contained and reported as an
    // InternalServerError instead of dropping the connection.
    let task = tokio::spawn(async move { service.call(&caller, op, input).await });
    let result = match task.await {
        Ok(r) => r,
        Err(e) => Err(ApiError::internal(format!("operation task failed: {e}"))),
    };
    (name, result)
}
