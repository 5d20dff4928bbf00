//! Shared machinery of the integration tests: nodes (mock or real
//! redis-server) behind one interface, timing presets, and the conformance
//! scenarios that every backend runs.
#![allow(dead_code, unreachable_pub, unused_macros, unused_imports)]

pub mod backend_checks;
pub mod clients;
pub mod cluster_node;
pub mod mock_node;
pub mod node;
pub mod real_node;
pub mod runner;
pub mod scenarios;
pub mod server_checks;
pub mod time;
pub mod timing;

pub use node::Env;
