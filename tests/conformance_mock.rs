//! The conformance scenarios on `redsem-mock`, under
//! `futures::executor::block_on` (no async runtime at all).

mod common;

use common::mock_node::mock_env;
use common::scenarios::*;

macro_rules! scenario_tests {
    ($($name:ident: $nodes:expr => $path:path,)*) => {$(
        #[test]
        fn $name() {
            futures::executor::block_on($path(mock_env($nodes)));
        }
    )*};
}

single_node_scenarios!(scenario_tests);
semaphore_scenarios!(scenario_tests);
multi_semaphore_scenarios!(scenario_tests);
redlock_scenarios!(scenario_tests);
