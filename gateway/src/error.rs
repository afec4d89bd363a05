//! The gateway's edge error: every rejection Tollgate makes itself, rendered
//! in OpenAI's error shape with the right status, or in Anthropic's for
//! Anthropic clients (see the edge middleware in `http::middleware`).

use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use router::wire::openai::{error_body, RequestError};

/// A low-cardinality label for an error, for metrics and logs. It rides on
/// the response as an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorLabel(pub &'static str);

/// An error answered to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    param: Option<String>,
    message: String,
}

impl ApiError {
    fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            param: None,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// An error of any status, type and code.
    pub fn custom(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::new(status, kind, code, message)
    }

    /// The message shown to the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The metric label (OpenAI's `code`).
    pub fn label(&self) -> &'static str {
        self.code
    }

    /// 401: no credentials, or the wrong ones.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            message,
        )
    }

    /// 403: the key may not use this model.
    pub fn model_not_allowed(model: &str) -> Self {
        let mut e = Self::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "model_not_allowed",
            format!("This API key may not use the model '{model}'."),
        );
        e.param = Some("model".into());
        e
    }

    /// The same error, its message followed by why.
    pub fn because(mut self, why: &str) -> Self {
        if let Some(stop) = self.message.strip_suffix('.') {
            self.message = format!("{stop}: {why}.");
        } else {
            self.message = format!("{}: {why}.", self.message);
        }
        self
    }

    /// 403: only the master key may do this.
    pub fn master_only() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "master_key_required",
            "This endpoint needs the master key.",
        )
    }

    /// 503: something the gateway needs is unavailable for now.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            code,
            message,
        )
    }

    /// 400 for an admin request the gateway cannot act on.
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_value",
            message,
        );
        e.param = param.map(str::to_owned);
        e
    }

    /// 404 for a thing the admin API does not have.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            message,
        )
    }

    /// 409: a name already taken.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "conflict",
            message,
        )
    }

    /// 404: a model Tollgate does not serve.
    pub fn model_not_found(model: &str) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            format!("The model '{model}' does not exist or you do not have access to it. List the available models with GET /v1/models."),
        );
        e.param = Some("model".into());
        e
    }

    /// 404: a path Tollgate does not serve.
    pub fn unknown_route(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown_url",
            format!("Unknown request URL: {method} {path}."),
        )
    }

    /// 405: a known path with the wrong method.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            format!("{method} is not allowed on {path}."),
        )
    }

    /// 408: the request body did not arrive within `timeout` of its head.
    pub fn request_timeout(timeout: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "request_timeout",
            format!(
                "The request body did not arrive within {}; send it whole, then retry.",
                humantime::format_duration(timeout)
            ),
        )
    }

    /// A body that could not be read: 413 over the limit, 400 otherwise.
    pub fn from_body_rejection(rejection: BytesRejection, limit: usize) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
                format!("The request body is larger than this gateway's limit of {limit} bytes."),
            )
        } else {
            Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_body",
                format!(
                    "The request body could not be read: {}",
                    rejection.body_text()
                ),
            )
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        let mut err = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request",
            e.to_string(),
        );
        err.code = match e {
            RequestError::NotJson(_) | RequestError::NotObject => "invalid_json",
            RequestError::Missing(_) => "missing_required_parameter",
            RequestError::Invalid { .. } => "invalid_value",
            RequestError::Unsupported { .. } => "unsupported_parameter",
        };
        err.param = e.param().map(str::to_owned);
        err
    }
}

impl ApiError {
    /// The error in Anthropic's shape, with Anthropic's error type for the status.
    pub fn into_anthropic_response(self) -> Response {
        let kind = router::wire::anthropic::error_type(self.status.as_u16());
        let body = router::wire::anthropic::error_body(kind, &self.message);
        let mut resp = (self.status, Json(body)).into_response();
        resp.extensions_mut().insert(ErrorLabel(self.code));
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = error_body(
            &self.message,
            self.kind,
            self.param.as_deref(),
            Some(self.code),
        );
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        resp.extensions_mut().insert(ErrorLabel(self.code));
        // Kept for the middleware that re-renders errors for Anthropic clients.
        resp.extensions_mut().insert(self);
        resp
    }
}

impl From<billing::tenancy::TenancyError> for ApiError {
    fn from(e: billing::tenancy::TenancyError) -> Self {
        use billing::tenancy::TenancyError as T;
        match e {
            T::NotFound(..) => Self::not_found(e.to_string()),
            T::Conflict(m) => Self::conflict(m),
            T::Invalid(m) => Self::invalid(None, m),
            T::Db(db) => {
                tracing::error!(error = %db, "admin operation failed");
                Self::unavailable(
                    "database_unavailable",
                    "The database cannot be reached right now.",
                )
            }
        }
    }
}

impl From<billing::DbError> for ApiError {
    fn from(e: billing::DbError) -> Self {
        tracing::error!(error = %e, "database query failed");
        Self::unavailable(
            "database_unavailable",
            "The database cannot be reached right now.",
        )
    }
}
