//! Conv ops: any settings on tiny tensors give an error, or PyTorch's shape and `A·x`.
#![no_main]

#[path = "../checks/conv_options.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|case: checks::Case| checks::check(&case));
