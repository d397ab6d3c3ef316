//! What the typed client refuses to compile: a reply read as another type, a message of the wrong
//! direction. Regenerate the `.stderr` files only on purpose, with `TRYBUILD=overwrite`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
