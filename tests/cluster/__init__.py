"""interlock.cluster tests: a package, so that its module names (cluster.test_lock, ...) and
its conftest never collide with those of tests/."""
