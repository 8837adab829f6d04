//! Fuzzes the reference parser: it must never panic, and whatever it accepts must print to a
//! string that parses back to the same reference (both normalized and familiar forms).
#![no_main]
use barge_image::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Reference::parse(s) {
        let again = Reference::parse(&r.to_string());
        assert_eq!(again.as_ref(), Ok(&r), "normalized form of {s:?} does not round-trip");
        let fam = Reference::parse(&r.familiar());
        assert_eq!(fam.as_ref(), Ok(&r), "familiar form of {s:?} does not round-trip");
    }
});
