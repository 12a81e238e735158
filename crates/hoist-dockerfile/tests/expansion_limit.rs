//! The limit on the bytes that resolution produces over a whole build,
//! [`MAX_TOTAL_EXPANDED_BYTES`]: expanded words in every stage and copies of
//! `ONBUILD` triggers.

use hoist_dockerfile::instructions::instructions;
use hoist_dockerfile::parser::parse;
use hoist_dockerfile::stages::{
    BuildOptions, BuildPlan, MAX_TOTAL_EXPANDED_BYTES, Platform, StageError, StageErrorKind,
    resolve,
};

fn options() -> BuildOptions {
    let platform = Platform {
        os: "linux".to_owned(),
        architecture: "amd64".to_owned(),
        variant: String::new(),
    };
    BuildOptions {
        build_args: Default::default(),
        target: None,
        target_platform: platform.clone(),
        build_platform: platform,
    }
}

fn plan(text: &str) -> Result<BuildPlan, StageError> {
    let file = parse(text, "Dockerfile").expect("test Dockerfile parses");
    let typed = instructions(&file).expect("test Dockerfile has valid instructions");
    resolve("Dockerfile", file.escape, &typed, &options())
}

/// Returns ARG lines that make `$a` 1 MiB: 64 bytes doubled 14 times. The
/// lines produce 64 + 128 + ... + 2^20 = 2 MiB - 64 bytes in total.
fn one_mib_arg() -> String {
    let mut text = format!("ARG a={}\n", "a".repeat(64));
    for _ in 0..14 {
        text.push_str("ARG a=$a$a\n");
    }
    text
}

/// Returns a file of `FROM scratch`, [`one_mib_arg`] on lines 2 to 16 and
/// `labels` lines of `LABEL l=$a`. Each label produces 2^20 + 1 bytes.
fn amplifying_dockerfile(labels: usize) -> String {
    let mut text = format!("FROM scratch\n{}", one_mib_arg());
    text.push_str(&"LABEL l=$a\n".repeat(labels));
    text
}

#[test]
fn limit_is_64_mib() {
    assert_eq!(MAX_TOTAL_EXPANDED_BYTES, 64 * 1024 * 1024);
}

#[test]
fn amplified_labels_stop_at_limit() {
    let error = plan(&amplifying_dockerfile(100_000)).expect_err("past the limit");

    assert_eq!(*error.kind, StageErrorKind::ExpansionTooLarge);
    // `scratch` and the ARGs produce 2 MiB - 57 bytes and each label
    // 2^20 + 1, so 61 labels stay below 64 MiB and the 62nd, on line
    // 16 + 62, crosses it.
    assert_eq!(error.line, 78);
    let message = error.to_string();
    assert!(message.starts_with("Dockerfile:78: "), "{message}");
    assert!(message.contains("67108864 bytes"), "{message}");
}

#[test]
fn labels_just_below_limit_resolve() {
    let plan = plan(&amplifying_dockerfile(61)).expect("below the limit");

    assert_eq!(plan.stages[0].instructions.len(), 15 + 61);
}

#[test]
fn limit_counts_every_stage() {
    let mut text = one_mib_arg();
    for _ in 0..70 {
        text.push_str("FROM scratch\nARG a\nLABEL l=$a\n");
    }

    let error = plan(&text).expect_err("past the limit over all stages");

    assert_eq!(*error.kind, StageErrorKind::ExpansionTooLarge);
    let line = text
        .lines()
        .nth(error.line - 1)
        .expect("error line is in the file");
    assert_eq!(line, "LABEL l=$a");
}

#[test]
fn onbuild_copies_count_toward_limit() {
    let mut text = "FROM scratch AS base\n".to_owned();
    for _ in 0..100 {
        text.push_str(&format!("ONBUILD RUN {}\n", "x".repeat(60_000)));
    }
    text.push_str(&"FROM base\n".repeat(2_000));

    let error = plan(&text).expect_err("past the limit through triggers");

    assert_eq!(*error.kind, StageErrorKind::ExpansionTooLarge);
    let line = text
        .lines()
        .nth(error.line - 1)
        .expect("error line is in the file");
    assert_eq!(line, "FROM base");
}

#[test]
fn large_ordinary_dockerfile_resolves() {
    let mut text = "ARG VERSION=1.2.3\nFROM scratch AS build\n".to_owned();
    text.push_str(&format!("ENV LONG={}\n", "v".repeat(1_000)));
    for index in 0..20_000 {
        text.push_str(&format!(
            "COPY src/${{VERSION}}/file{index} /app/$LONG/\nLABEL step{index}=\"$VERSION\"\n"
        ));
    }
    text.push_str("FROM scratch\nCOPY --from=build /app /app\n");

    let plan = plan(&text).expect("an ordinary large file resolves");

    assert_eq!(plan.stages.len(), 2);
    assert_eq!(plan.stages[0].instructions.len(), 1 + 40_000);
}
