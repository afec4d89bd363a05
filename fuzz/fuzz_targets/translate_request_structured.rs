//! As `translate_request`, on bodies built from structured input with the
//! wire formats' own keys and words (`tollgate_fuzz::json`), which reach the
//! translators' deeper branches sooner than raw JSON text does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_fuzz::json::JsonObject;

fuzz_target!(|body: JsonObject| {
    tollgate_fuzz::check_request_translations(&body.0);
});
