#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| atelier_fuzz::prompt_screen(data));
