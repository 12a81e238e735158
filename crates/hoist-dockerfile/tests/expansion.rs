//! Every expansion modifier on unset, empty and set variables.

use std::collections::BTreeMap;

use hoist_dockerfile::shell::{ExpandErrorKind, Lexer};

fn env() -> BTreeMap<String, String> {
    [
        ("SET", "dir/sub/file.tar.gz"),
        ("EMPTY", ""),
        ("SPACED", "a  b"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect()
}

fn expand(word: &str) -> Result<String, ExpandErrorKind> {
    Lexer::new('\\')
        .process_word(word, &env())
        .map_err(|error| error.kind)
}

#[test]
fn modifiers_on_unset_empty_and_set() {
    let cases = [
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${SET:-d}", "dir/sub/file.tar.gz"),
        ("${UNSET-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${SET-d}", "dir/sub/file.tar.gz"),
        ("${UNSET:+a}", ""),
        ("${EMPTY:+a}", ""),
        ("${SET:+a}", "a"),
        ("${UNSET+a}", ""),
        ("${EMPTY+a}", "a"),
        ("${SET+a}", "a"),
        ("${EMPTY?msg}", ""),
        ("${SET:?msg}", "dir/sub/file.tar.gz"),
        ("${UNSET#*/}", ""),
        ("${EMPTY#*/}", ""),
        ("${SET#*/}", "sub/file.tar.gz"),
        ("${SET##*/}", "file.tar.gz"),
        ("${SET%.*}", "dir/sub/file.tar"),
        ("${SET%%.*}", "dir/sub/file"),
        ("${UNSET%.*}", ""),
        ("${SET/\\//-}", "dir-sub/file.tar.gz"),
        ("${SET//\\//-}", "dir-sub-file.tar.gz"),
        ("${SET//?/x}", "xxxxxxxxxxxxxxxxxxx"),
        ("${SET/#/x}", "dir/sub/file.tar.gz"),
        ("${EMPTY//a/b}", ""),
        ("${SET#\\*}", "dir/sub/file.tar.gz"),
        ("\"$SPACED\"", "a  b"),
    ];
    for (word, expected) in cases {
        assert_eq!(expand(word).as_deref(), Ok(expected), "{word}");
    }
}

#[test]
fn required_variables_report_name() {
    assert_eq!(
        expand("${UNSET?give it}"),
        Err(ExpandErrorKind::Required {
            name: "UNSET".to_owned(),
            message: "give it".into()
        })
    );
    assert_eq!(
        expand("${EMPTY:?}"),
        Err(ExpandErrorKind::Required {
            name: "EMPTY".to_owned(),
            message: "is not allowed to be empty".into()
        })
    );
    assert_eq!(
        expand("${UNSET:?}"),
        Err(ExpandErrorKind::Required {
            name: "UNSET".to_owned(),
            message: "is not allowed to be unset".into()
        })
    );
}

#[test]
fn malformed_substitutions_fail() {
    assert_eq!(expand("${SET/a"), Err(ExpandErrorKind::MissingSlash));
    assert_eq!(expand("${SET#x"), Err(ExpandErrorKind::MissingBrace));
    assert!(matches!(
        expand("${SET#\\q}"),
        Err(ExpandErrorKind::InvalidPattern { .. })
    ));
    assert_eq!(
        expand("${SET:=x}"),
        Err(ExpandErrorKind::UnsupportedModifier(":=".into()))
    );
}

#[test]
fn deep_nesting_is_an_error() {
    let word = format!("{}x{}", "${A:-".repeat(200), "}".repeat(200));
    assert_eq!(expand(&word), Err(ExpandErrorKind::TooDeep));
}

#[test]
fn unquoted_expansion_splits_words() {
    let words = Lexer::new('\\')
        .process_words("x$SPACED \"$SPACED\"", &env())
        .unwrap();
    assert_eq!(words, ["xa", "b", "a  b"]);
}

#[test]
fn skip_unset_keeps_references() {
    let lexer = Lexer {
        skip_unset: true,
        ..Lexer::new('\\')
    };
    let result = lexer.process_word("$UNSET ${UNSET} ${UNSET:-x} $SET", &env());
    assert_eq!(
        result.unwrap(),
        "$UNSET ${UNSET} ${UNSET:-x} dir/sub/file.tar.gz"
    );
}

#[test]
fn nested_replacements_are_bounded() {
    let depth = 40;
    let word = format!("{}x{}", "${SPACED//?/".repeat(depth), "}".repeat(depth));
    let started = std::time::Instant::now();
    assert_eq!(expand(&word), Err(ExpandErrorKind::TooLong));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
