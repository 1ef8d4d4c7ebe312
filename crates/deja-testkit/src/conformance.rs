//! Conformance suites for `EntryStore` and `VectorIndex` implementations.
