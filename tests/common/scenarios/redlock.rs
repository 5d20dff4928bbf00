//! (scenarios to be written)

/// Calls `$m! { name: nodes => path, ... }` with this file's scenarios.
macro_rules! redlock_scenarios {
    ($m:ident) => {
        $m! {}
    };
}

pub(crate) use redlock_scenarios;
