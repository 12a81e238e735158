//! The `hoist-dockerfile` command line.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::predicate;

fn command() -> Command {
    Command::cargo_bin("hoist-dockerfile").expect("binary is built")
}

fn corpus(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/hoist-dockerfile/tests/data/buildkit/buildkit-parser")
        .join(case)
}

fn write_dockerfile(directory: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = directory.path().join("Dockerfile");
    std::fs::write(&path, text).expect("temporary file is writable");
    path
}

#[test]
fn check_accepts_valid_file() {
    command()
        .arg("check")
        .arg(corpus("testfiles/docker/Dockerfile"))
        .assert()
        .success();
}

#[test]
fn check_rejects_negative_cases_with_lines() {
    let cases = [
        ("empty_dockerfile", ":1: file with no instructions"),
        ("only_comments", ":3: file with no instructions"),
        ("env_no_value", ":3: ENV must have two arguments"),
        ("shykes-nested-json", ":1: when using JSON array syntax"),
    ];
    for (case, message) in cases {
        let file = corpus(&format!("testfiles-negative/{case}/Dockerfile"));
        command()
            .arg("check")
            .arg(&file)
            .assert()
            .code(1)
            .stderr(predicate::str::starts_with(format!(
                "{}{message}",
                file.display()
            )));
    }
}

#[test]
fn check_reports_flag_errors() {
    let directory = tempfile::tempdir().unwrap();
    let file = write_dockerfile(&directory, "FROM scratch\nCOPY --chmod a b\n");
    command()
        .arg("check")
        .arg(&file)
        .assert()
        .code(1)
        .stderr(format!(
            "{}:2: missing a value on flag --chmod of COPY\n",
            file.display()
        ));
}

#[test]
fn check_reports_invalid_expanded_values() {
    let directory = tempfile::tempdir().unwrap();
    let cases = [
        (
            "FROM scratch\nEXPOSE 80/tcp abc\n",
            "2: invalid value \"abc\" for EXPOSE",
        ),
        (
            "FROM scratch\nARG S=SIGNOPE\nSTOPSIGNAL $S\n",
            "3: invalid value \"SIGNOPE\" for STOPSIGNAL",
        ),
        (
            "FROM scratch AS a\nCOPY --from=a x y\n",
            "2: circular dependency: --from=a",
        ),
    ];
    for (text, message) in cases {
        let file = write_dockerfile(&directory, text);
        command()
            .arg("check")
            .arg(&file)
            .assert()
            .code(1)
            .stderr(predicate::str::starts_with(format!(
                "{}:{message}",
                file.display()
            )));
    }
}

#[test]
fn check_accepts_valid_values() {
    let directory = tempfile::tempdir().unwrap();
    let text = "FROM scratch AS base\nEXPOSE 80/tcp 8000-8010/udp $PORT\nSTOPSIGNAL SIGTERM\n\
                FROM base\nCOPY --from=base --chmod=u+x a b\n\
                RUN --mount=type=tmpfs,target=/t,size=64m true\n";
    let file = write_dockerfile(&directory, text);
    command().arg("check").arg(&file).assert().success();
}

#[test]
fn dump_matches_buildkit_result() {
    let expected = std::fs::read_to_string(corpus("testfiles/flags/result")).unwrap();
    command()
        .arg("dump")
        .arg(corpus("testfiles/flags/Dockerfile"))
        .assert()
        .success()
        .stdout(expected);
}

#[test]
fn json_prints_expanded_stages() {
    let directory = tempfile::tempdir().unwrap();
    let file = write_dockerfile(
        &directory,
        "ARG BASE=scratch\nFROM $BASE AS build\nARG OUT\nENV OUT=$OUT\n\
         FROM scratch AS unused\nFROM scratch\nCOPY --from=build /a /b\n",
    );
    let output = command()
        .arg("json")
        .arg(&file)
        .args(["--build-arg", "OUT=/dist", "--platform", "linux/arm64"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let plan = &json["plan"];
    assert_eq!(plan["target"], 2);
    assert_eq!(plan["needed"], serde_json::json!([0, 2]));
    // The default PATH comes first.
    assert_eq!(plan["stages"][0]["env"][1]["value"], "/dist");
    assert_eq!(plan["stages"][2]["instructions"][0]["instruction"], "COPY");
}

#[test]
fn json_reports_unknown_target() {
    let directory = tempfile::tempdir().unwrap();
    let file = write_dockerfile(&directory, "FROM scratch AS a\n");
    command()
        .arg("json")
        .arg(&file)
        .args(["--target", "b"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "target stage \"b\" could not be found",
        ));
}

#[test]
fn missing_file_is_reported() {
    command()
        .args(["check", "/nonexistent/hoist/Dockerfile"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "failed to read /nonexistent/hoist/Dockerfile",
        ));
}

#[test]
fn oversized_file_is_rejected() {
    let directory = tempfile::tempdir().unwrap();
    let limit = 16 * 1024 * 1024;
    let text = format!("FROM scratch\n{}", "#".repeat(limit));
    let file = write_dockerfile(&directory, &text);
    command()
        .arg("check")
        .arg(&file)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "{}: file is larger than the limit of {limit} bytes",
            file.display()
        )));
}

#[test]
fn file_at_size_limit_is_read() {
    let directory = tempfile::tempdir().unwrap();
    let header = "FROM scratch\n";
    let limit = 16 * 1024 * 1024;
    let comment = format!("#{}\n", "x".repeat(1022));
    let mut text = String::from(header);
    text.push_str(&comment.repeat((limit - header.len()) / comment.len()));
    text.push_str(&"\n".repeat(limit - text.len()));
    assert_eq!(text.len(), limit);
    let file = write_dockerfile(&directory, &text);
    command().arg("check").arg(&file).assert().success();
}

#[test]
fn invalid_utf8_names_file_and_line() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("Dockerfile");
    std::fs::write(&file, b"FROM scratch\nLABEL a=b\nRUN echo \xff\n").unwrap();
    command()
        .arg("check")
        .arg(&file)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "{}:3: invalid UTF-8",
            file.display()
        )));
}

#[test]
fn invalid_options_are_usage_errors() {
    let directory = tempfile::tempdir().unwrap();
    let file = write_dockerfile(&directory, "FROM scratch\n");
    let cases = [
        (["--build-arg", "NOEQ"], "missing '='"),
        (["--build-arg", "=v"], "the name is empty"),
        (["--platform", "bogus"], "expected os/arch"),
    ];
    for (options, message) in cases {
        command()
            .arg("json")
            .arg(&file)
            .args(options)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(message));
    }
}

#[test]
fn build_arg_value_may_contain_equals() {
    let directory = tempfile::tempdir().unwrap();
    let file = write_dockerfile(&directory, "FROM scratch\nARG A\nENV B=$A\n");
    let output = command()
        .arg("json")
        .arg(&file)
        .args(["--build-arg", "A=x=y"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["plan"]["stages"][0]["env"][1]["value"], "x=y");
}
