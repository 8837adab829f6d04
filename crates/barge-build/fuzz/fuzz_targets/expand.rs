//! Fuzzes variable expansion and word splitting with both escape characters.
#![no_main]

use barge_build::Lexer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() > 2048 {
        return;
    }
    let word = String::from_utf8_lossy(data);
    let env = [
        ("A", "value"),
        ("EMPTY", ""),
        ("SP", "  a b  "),
        ("P", "/usr/local/bin:/usr/bin"),
    ];
    for esc in ['\\', '`'] {
        let lex = Lexer::new(esc);
        let one = lex.expand(&word, &env);
        let many = lex.expand_words(&word, &env);
        // Both walk the same input: they fail together.
        assert_eq!(one.is_ok(), many.is_ok(), "{word:?}");
        if let Ok(words) = many {
            assert!(words.iter().all(|w| !w.is_empty()));
        }
    }
});
