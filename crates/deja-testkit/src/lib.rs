//! Test support for deja (dev-only): deterministic mock upstreams that count calls (an
//! OpenAI-compatible one, and Anthropic's Messages API), and conformance suites every
//! backend runs.

pub mod conformance;
pub mod memcached_server;
pub mod mock_anthropic;
pub mod mock_upstream;
pub mod redis_server;
