//! OpenAI wire types and their mapping to deja's engine: request parsing with OpenAI-style
//! errors ([`error`]), the chat cache key ([`chat`]), SSE record/replay and conversion
//! between streamed and non-streamed answers ([`sse`]), and the embeddings endpoint's
//! per-input cache keys and response encoding ([`embeddings`]); and Anthropic's Messages
//! API, its key and its named-event streams ([`anthropic`]); and OpenAI's Responses API, its
//! key and its named-event streams ([`responses`]).
//!
//! This crate does no I/O: it turns bytes into typed requests and keys, and recorded
//! answers back into bytes. The server decides what to do with them.

pub mod anthropic;
pub mod chat;
pub mod embeddings;
pub mod error;
pub mod responses;
pub mod sse;

mod json;

pub use error::{error_body, WireError};
