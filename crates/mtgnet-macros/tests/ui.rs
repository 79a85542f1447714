//! Each mistake in a service trait is a compile error at its token.

#[test]
fn incorrect_service_traits_fail_to_compile_with_a_message_at_the_span() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/incorrect/*.rs");
}
