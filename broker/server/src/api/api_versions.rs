//! ApiVersions: advertises exactly the implemented APIs and versions.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use super::{encode_response, supported_apis, PRODUCE_ADVERTISED_MIN};
use crate::broker::Broker;

/// The advertised version list.
pub(crate) fn api_version_list() -> Vec<ApiVersion> {
    supported_apis()
        .into_iter()
        .map(|(key, range)| {
            let min = if key == ApiKey::Produce {
                PRODUCE_ADVERTISED_MIN
            } else {
                range.min
            };
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(range.max)
        })
        .collect()
}

/// Handles ApiVersions.
pub(crate) async fn handle(
    _broker: &Arc<Broker>,
    _request: ApiVersionsRequest,
    _version: i16,
) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_version_list())
}

/// The v0-format UNSUPPORTED_VERSION reply to an ApiVersions request that is too new.
pub(crate) fn unsupported_version_response(correlation_id: i32) -> Result<Bytes, String> {
    let response = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_version_list());
    encode_response(correlation_id, 0, &response)
}
