#![doc = include_str!("../README.md")]

mod clock;
mod data;
mod faults;
mod inspect;
mod mock;
mod node;
mod scripts;

#[cfg(test)]
mod tests;

pub use mock::MockBackend;
