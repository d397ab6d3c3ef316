//! The fuzz targets' seed inputs and every input that once crashed one (`fuzz/seeds/<target>/`,
//! `fuzz/regressions/<target>/`), replayed through the same entry points the fuzzer calls
//! (`ws_core::fuzz_support`) on every test run. `scripts/fuzz` runs the fuzzer itself.

use std::path::PathBuf;

use ws_core::fuzz_support;

/// Every file under `fuzz/{seeds,regressions}/<target>/`.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut inputs = Vec::new();
    for kind in ["seeds", "regressions"] {
        let Ok(dir) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        for entry in dir {
            let path = entry.expect("a readable directory").path();
            let data = std::fs::read(&path).expect("a readable input");
            inputs.push((path, data));
        }
    }
    inputs.sort();
    inputs
}

fn replay(target: &str, run: fn(&[u8])) {
    let inputs = inputs(target);
    assert!(
        inputs.len() >= 5,
        "fuzz/seeds/{target} holds at least 5 inputs"
    );
    for (path, data) in inputs {
        eprintln!("{}", path.display());
        run(&data);
    }
}

#[test]
fn envelope_inputs_replay_without_a_panic() {
    replay("envelope", fuzz_support::envelope);
}

#[test]
fn dispatch_inputs_replay_without_a_panic() {
    replay("dispatch", fuzz_support::dispatch);
}

#[test]
fn connection_inputs_replay_without_a_panic() {
    replay("connection", |data| {
        fuzz_support::connection(data);
    });
    // The pipe reaches the server: the first seed is eight whole text frames.
    let (_, first) = &inputs("connection")[0];
    assert_eq!(fuzz_support::connection(first), 8);
}

#[test]
fn redis_peer_inputs_replay_without_a_panic() {
    replay("redis_peer", fuzz_support::redis_peer_input);
}
