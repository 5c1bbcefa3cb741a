//! Weight loading: any bytes load into a small model with the right shapes, or change nothing.
#![no_main]

#[path = "../checks/safetensors.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
