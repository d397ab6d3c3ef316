//! Compile-time behaviour of the macros, and of the typed client (`ws-client`) built on what they
//! generate: what compiles, and the exact error (with its span) for each mistake. Review every `.stderr`
//! change like code; regenerate only on purpose with `TRYBUILD=overwrite`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/ws_messages/pass/*.rs");
    t.pass("tests/ui/on/pass/*.rs");
    t.compile_fail("tests/ui/ws_messages/fail/*.rs");
    t.compile_fail("tests/ui/on/fail/*.rs");
    t.compile_fail("tests/ui/client/fail/*.rs");
}
