//! Runs the unit tests of abi/stubs.rs, the stub generator that the ABI faces' build scripts
//! include (build scripts themselves are never compiled as tests).

#[path = "../../abi/stubs.rs"]
mod stubs;
