//! Every error message names the file, the line and the offending text.

use hoist_dockerfile::instructions::instructions;
use hoist_dockerfile::parser::parse;

/// Parses and types `text` and returns the error message.
fn error_message(text: &str) -> String {
    let outcome = parse(text, "app/Dockerfile")
        .map_err(|error| error.to_string())
        .and_then(|file| instructions(&file).map_err(|error| error.to_string()));
    match outcome {
        Ok(_) => panic!("expected an error for {text:?}"),
        Err(message) => message,
    }
}

fn render(cases: &[&str]) -> String {
    cases
        .iter()
        .map(|text| format!("{text:?}\n  => {}\n", error_message(text)))
        .collect()
}

#[test]
fn parse_error_messages() {
    insta::assert_snapshot!(render(&[
        "",
        "# only a comment\n\n",
        "# escape=x\nFROM a\n",
        "# escape=`\n# escape=\\\nFROM a\n",
        "FROM a\nENV PATH\n",
        "FROM a\nENV a=b c\n",
        "FROM a\nCMD [\"echo\", [\"nested\"]]\n",
        "FROM a\nRUN <<EOF\necho\n",
        "FROM a\nONBUILD ONBUILD ONBUILD ONBUILD ONBUILD ONBUILD ONBUILD ONBUILD ONBUILD RUN x\n",
    ]));
}

#[test]
fn instruction_error_messages() {
    insta::assert_snapshot!(render(&[
        "FROM a\nFETCH x\n",
        "FROM a\nCOPY --form=build a b\n",
        "FROM a\nCOPY --from a b\n",
        "FROM a\nCOPY --from=x --from=y a b\n",
        "FROM a\nCOPY --link=maybe a b\n",
        "FROM a\nCOPY a\n",
        "FROM a\nADD --from=x a b\n",
        "FROM --platform a\n",
        "FROM a AS 1st\n",
        "FROM a b c d\n",
        "FROM a\nRUN --network=bridge make\n",
        "FROM a\nRUN --security=root make\n",
        "FROM a\nRUN --mount=type=nfs,target=/x make\n",
        "FROM a\nRUN --mount=type=cache make\n",
        "FROM a\nRUN --mount=target=/x,colour=red make\n",
        "FROM a\nRUN --mount=type=cache,target=/x,mode=999 make\n",
        "FROM a\nRUN --mount=type=cache,target=/x,uid=-1 make\n",
        "FROM a\nRUN\n",
        "FROM a\nHEALTHCHECK --interval=5 CMD true\n",
        "FROM a\nHEALTHCHECK --timeout=10ns CMD true\n",
        "FROM a\nHEALTHCHECK --retries=many CMD true\n",
        "FROM a\nHEALTHCHECK CONNECT TCP 7000\n",
        "FROM a\nHEALTHCHECK --interval=5s NONE\n",
        "FROM a\nSHELL /bin/sh -c\n",
        "FROM a\nCMD --verbose true\n",
        "FROM a\nWORKDIR\n",
        "FROM a\nONBUILD FROM b\n",
        "FROM a\nLABEL =x\n",
    ]));
}
