//! Serde types of the two services' shapes, named as in `api-models/`.
//!
//! Request members are all `Option` so that a missing required member becomes a modeled
//! validation error (not a deserializer error) and JSON `null` reads as absent.

pub mod qldb;
