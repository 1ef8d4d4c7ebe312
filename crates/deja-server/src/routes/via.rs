//! Which API an OpenAI-format request came in through ([`Via`]; not
//! [`crate::answers::Api`], which wire format an answer is in): OpenAI's own (`/v1/...`),
//! or Azure OpenAI's, by deployment (`/openai/deployments/{deployment}/...`) or through its
//! v1 API (`/openai/v1/...`). The chat, embeddings and Responses routes serve all three
//! alike; what differs is here: the upstream their misses go to, what the key holds besides
//! the request (so no two APIs, and no two deployments, share an entry), where the model is
//! named, and whether the staleness job may ask again.
//!
//! This module does not route (`crate::router` and [`super::azure`] do) nor read requests.

use std::borrow::Cow;

use crate::error::ApiError;
use crate::state::AppState;
use crate::upstream::Upstream;

/// The API a request came in through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via<'a> {
    /// OpenAI's API under `/v1/`, to `[upstream]`.
    OpenAi,
    /// Azure OpenAI's deployment routes, to `[azure]`: the deployment (from the path,
    /// percent-decoded, never holding a NUL or a `/`) names the model, and the body may
    /// leave `model` out.
    AzureDeployment(&'a str),
    /// Azure OpenAI's v1 API, to `[azure]`: the body's `model` names the deployment.
    AzureV1,
}

impl<'a> Via<'a> {
    /// Where misses go; an error naming what to configure when that is Azure and
    /// `azure.base_url` is unset (then nothing is sent anywhere).
    pub fn upstream(self, app: &AppState) -> Result<&Upstream, ApiError> {
        match self {
            Via::OpenAi => Ok(app.upstream()),
            Via::AzureDeployment(_) | Via::AzureV1 => app.azure().ok_or_else(azure_not_configured),
        }
    }

    /// What the request's key is scoped by: the tenant and the query string (Azure's
    /// `api-version`; see [`crate::tenant::key_scope`]), and for Azure the API and the
    /// deployment. OpenAI's scope is what it always was, so its entries stay reachable.
    pub fn key_scope<'t>(self, tenant: &'t str, query: Option<&str>) -> Cow<'t, str> {
        match self {
            Via::OpenAi => crate::tenant::key_scope(tenant, query),
            Via::AzureDeployment(deployment) => crate::tenant::api_key_scope(
                tenant,
                &format!("azure/deployments/{deployment}"),
                query,
            )
            .into(),
            Via::AzureV1 => crate::tenant::api_key_scope(tenant, "azure/v1", query).into(),
        }
    }

    /// The model named by the path (Azure's deployment), if any: then the body may leave
    /// `model` out, and this is the model the request is stored and counted under (in the
    /// metrics and the ledger). A `model` in the body too is keyed as well.
    pub fn path_model(self) -> Option<&'a str> {
        match self {
            Via::AzureDeployment(deployment) => Some(deployment),
            Via::OpenAi | Via::AzureV1 => None,
        }
    }

    /// Whether the request may be recorded with its entry for the staleness job, which
    /// re-asks `[upstream]` at OpenAI's paths only (a recording is the body alone, without
    /// the path, deployment or `api-version` it was sent with).
    pub fn recorded_for_staleness(self) -> bool {
        matches!(self, Via::OpenAi)
    }
}

/// The answer of every Azure route while `[azure]` has no `base_url`.
pub fn azure_not_configured() -> ApiError {
    ApiError::NotConfigured {
        message: "Azure OpenAI is not configured in this deja: set base_url in the [azure] section of the config (or DEJA_AZURE_BASE_URL) to the resource endpoint, e.g. https://RESOURCE.openai.azure.com".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_api_and_deployment_has_its_own_scope() {
        let q = Some("api-version=2024-10-21");
        let scopes = [
            Via::OpenAi.key_scope("key:x", q),
            Via::AzureV1.key_scope("key:x", q),
            Via::AzureDeployment("a").key_scope("key:x", q),
            Via::AzureDeployment("b").key_scope("key:x", q),
        ];
        for (i, a) in scopes.iter().enumerate() {
            for b in &scopes[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(Via::OpenAi.key_scope("key:x", None), "key:x");
        assert_eq!(Via::AzureDeployment("a").path_model(), Some("a"));
        assert_eq!(Via::AzureV1.path_model(), None);
        assert!(Via::OpenAi.recorded_for_staleness());
        assert!(!Via::AzureV1.recorded_for_staleness());
    }
}
