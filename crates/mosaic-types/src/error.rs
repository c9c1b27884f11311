//! The domain error every Mosaic crate returns. It carries a Salesforce-style
//! error code, a human message and the fields it concerns; the server maps
//! codes to HTTP statuses at the edge.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum ErrorCode {
    REQUIRED_FIELD_MISSING,
    INVALID_FIELD,
    INVALID_FIELD_FOR_INSERT_UPDATE,
    INVALID_TYPE_ON_FIELD_IN_RECORD,
    STRING_TOO_LONG,
    NUMBER_OUTSIDE_VALID_RANGE,
    INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST,
    INVALID_EMAIL_ADDRESS,
    INVALID_CROSS_REFERENCE_KEY,
    DUPLICATE_VALUE,
    NOT_FOUND,
    ENTITY_IS_DELETED,
    INVALID_TYPE,
    INVALID_ID_FIELD,
    MALFORMED_ID,
    MALFORMED_QUERY,
    JSON_PARSER_ERROR,
    UNSUPPORTED_MEDIA_TYPE,
    REQUEST_TOO_LARGE,
    INVALID_SESSION_ID,
    INSUFFICIENT_ACCESS,
    FIELD_CUSTOM_VALIDATION_EXCEPTION,
    CONFLICT,
    LIMIT_EXCEEDED,
    REQUEST_LIMIT_EXCEEDED,
    MULTIPLE_CHOICES,
    METHOD_NOT_ALLOWED,
    INVALID_INPUT,
    ALL_OR_NONE_OPERATION_ROLLED_BACK,
    DELETE_FAILED,
    /// A record could not leave the recycle bin (its parent is gone or
    /// still binned).
    UNDELETE_FAILED,
    /// A replication range (`updated` / `deleted`) that is malformed, too
    /// long or outside what is kept.
    INVALID_REPLICATION_DATE,
    /// A replication range matching more ids than one answer carries.
    EXCEEDED_ID_LIMIT,
    IDEMPOTENCY_KEY_REUSED,
    NOT_IMPLEMENTED,
    SERVICE_UNAVAILABLE,
    /// A lock could not be taken in time (deadlock, serialization failure,
    /// lock timeout): the operation changed nothing and may be retried.
    UNABLE_TO_LOCK_ROW,
    /// The request's deadline passed before it finished.
    REQUEST_RUNNING_TOO_LONG,
    UNKNOWN_EXCEPTION,
    /// A Bulk API job request that is invalid (operation, object, options).
    INVALIDJOB,
    /// A Bulk API job asked for a change its state does not allow.
    INVALIDJOBSTATE,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            REQUIRED_FIELD_MISSING => "REQUIRED_FIELD_MISSING",
            INVALID_FIELD => "INVALID_FIELD",
            INVALID_FIELD_FOR_INSERT_UPDATE => "INVALID_FIELD_FOR_INSERT_UPDATE",
            INVALID_TYPE_ON_FIELD_IN_RECORD => "INVALID_TYPE_ON_FIELD_IN_RECORD",
            STRING_TOO_LONG => "STRING_TOO_LONG",
            NUMBER_OUTSIDE_VALID_RANGE => "NUMBER_OUTSIDE_VALID_RANGE",
            INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST => "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            INVALID_EMAIL_ADDRESS => "INVALID_EMAIL_ADDRESS",
            INVALID_CROSS_REFERENCE_KEY => "INVALID_CROSS_REFERENCE_KEY",
            DUPLICATE_VALUE => "DUPLICATE_VALUE",
            NOT_FOUND => "NOT_FOUND",
            ENTITY_IS_DELETED => "ENTITY_IS_DELETED",
            INVALID_TYPE => "INVALID_TYPE",
            INVALID_ID_FIELD => "INVALID_ID_FIELD",
            MALFORMED_ID => "MALFORMED_ID",
            MALFORMED_QUERY => "MALFORMED_QUERY",
            JSON_PARSER_ERROR => "JSON_PARSER_ERROR",
            UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
            REQUEST_TOO_LARGE => "REQUEST_TOO_LARGE",
            INVALID_SESSION_ID => "INVALID_SESSION_ID",
            INSUFFICIENT_ACCESS => "INSUFFICIENT_ACCESS",
            FIELD_CUSTOM_VALIDATION_EXCEPTION => "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            CONFLICT => "CONFLICT",
            LIMIT_EXCEEDED => "LIMIT_EXCEEDED",
            REQUEST_LIMIT_EXCEEDED => "REQUEST_LIMIT_EXCEEDED",
            MULTIPLE_CHOICES => "MULTIPLE_CHOICES",
            METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
            INVALID_INPUT => "INVALID_INPUT",
            ALL_OR_NONE_OPERATION_ROLLED_BACK => "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            DELETE_FAILED => "DELETE_FAILED",
            UNDELETE_FAILED => "UNDELETE_FAILED",
            INVALID_REPLICATION_DATE => "INVALID_REPLICATION_DATE",
            EXCEEDED_ID_LIMIT => "EXCEEDED_ID_LIMIT",
            IDEMPOTENCY_KEY_REUSED => "IDEMPOTENCY_KEY_REUSED",
            NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
            SERVICE_UNAVAILABLE => "SERVICE_UNAVAILABLE",
            UNABLE_TO_LOCK_ROW => "UNABLE_TO_LOCK_ROW",
            REQUEST_RUNNING_TOO_LONG => "REQUEST_RUNNING_TOO_LONG",
            UNKNOWN_EXCEPTION => "UNKNOWN_EXCEPTION",
            INVALIDJOB => "INVALIDJOB",
            INVALIDJOBSTATE => "INVALIDJOBSTATE",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A domain error: code, message, and the fields it concerns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct MosaicError {
    pub code: ErrorCode,
    pub message: String,
    pub fields: Vec<String>,
}

pub type MosaicResult<T> = Result<T, MosaicError>;

impl MosaicError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        MosaicError {
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub fn field(code: ErrorCode, field: impl Into<String>, message: impl Into<String>) -> Self {
        MosaicError {
            code,
            message: message.into(),
            fields: vec![field.into()],
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(ErrorCode::NOT_FOUND, what)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::INVALID_INPUT, message)
    }

    /// An internal failure (storage, I/O). The message is for logs; the edge
    /// shows clients a generic text.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UNKNOWN_EXCEPTION, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::SERVICE_UNAVAILABLE, message)
    }
}
