//! A mock OpenAI-compatible upstream.
