//! Test support for deja (dev-only): a deterministic mock OpenAI-compatible upstream that
//! counts calls, and conformance suites every backend runs.

pub mod conformance;
pub mod mock_upstream;
pub mod redis_server;
