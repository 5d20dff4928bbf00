#![doc = include_str!("../README.md")]

mod clock;
mod commands;
mod data;
mod faults;
mod inspect;
mod lua;
mod mock;
mod node;
mod zset;

#[cfg(test)]
mod tests;

pub use mock::MockBackend;
