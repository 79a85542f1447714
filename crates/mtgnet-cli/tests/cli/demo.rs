//! `mtgnet demo`.

use crate::util::run;

#[test]
fn demo_runs_every_section_and_exits_0() {
    for flags in [&["demo"][..], &["demo", "--plain"][..]] {
        let out = run(flags);
        assert_eq!(out.code, Some(0), "{out:?}");
        for section in [
            "single calls",
            "batch",
            "notification",
            "pipeline",
            "remote error",
            "warning",
            "throughput",
        ] {
            assert!(
                out.stdout.contains(section),
                "no {section:?} section: {}",
                out.stdout
            );
        }
        assert!(out.stdout.contains("error 42: boom"), "{}", out.stdout);
        assert!(out.stdout.contains("warning 7: careful"), "{}", out.stdout);
    }
}
