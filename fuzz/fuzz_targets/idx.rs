//! IDX reader: any bytes, raw or gzipped, parse to what the header says or to an error.
#![no_main]

#[path = "../checks/idx.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
