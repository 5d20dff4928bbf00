//! The conformance scenarios on `redsem-mock`, on the mock's virtual clock:
//! no async runtime at all, and time passes only while a scenario waits
//! (see `common::time`), so a "hold past the lock timeout" costs no wall
//! time.

mod common;

use common::mock_node::virtual_mock_env;
use common::scenarios::*;

macro_rules! scenario_tests {
    ($($name:ident: $nodes:expr => $path:path,)*) => {$(
        #[test]
        fn $name() {
            let env = virtual_mock_env($nodes);
            env.time.clone().block_on($path(env));
        }
    )*};
}

single_node_scenarios!(scenario_tests);
semaphore_scenarios!(scenario_tests);
multi_semaphore_scenarios!(scenario_tests);
redlock_scenarios!(scenario_tests);
