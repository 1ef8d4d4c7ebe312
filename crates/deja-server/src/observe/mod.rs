//! What the proxy records about the requests it serves, in one direction: a route fills in
//! a [`summary::RequestSummary`] and the consumers here receive it; the admin API, the
//! dashboard and `GET /metrics` read the consumers, and nothing here reads them back.
//!
//! - [`summary`]: the record itself (endpoint, outcome, what a hit saved).
//! - [`metrics`]: the Prometheus counters.
//! - [`ledger`]: the cost ledger, per UTC day and model, kept across restarts.
//! - [`insights`]: the dashboard's in-memory accounts (recent minutes, near-misses).
//! - [`served`]: the semantic hits a client's verdict may name.
//! - [`audit_budget`]: what the live audit spent today.

pub mod audit_budget;
pub mod insights;
pub mod ledger;
pub mod metrics;
pub mod served;
pub mod summary;
